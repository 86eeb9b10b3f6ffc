"""Debounced decision per track: an alert only when enough embeddings from distinct frames agree."""

from dataclasses import dataclass

import numpy as np

from edge.track.tracker import Track
from edge.vision.quality import Quality


@dataclass(frozen=True)
class Threshold:
    """The threshold in force and the false-alarm rate per passer-by it stands for (None: not calibrated).

    `fpir_bound`: the rate is at most `fpir` (the threshold lies above what the calibration could measure).
    `policy`: which rule set the value, in words (alerts carry it, so a reviewer knows why this threshold).
    """

    value: float
    fpir: float | None
    mode: str
    policy: str
    fpir_bound: bool = False


@dataclass(frozen=True)
class Alert:
    """A candidate match for a person to adjudicate. Only ever made for a face that matched a subject."""

    track_id: int
    frame: int
    timestamp: float
    subject_index: int
    subject_id: str
    label: str
    score: float
    threshold: Threshold
    margin: float
    runner_up: str | None
    quality: Quality
    box: tuple[float, float, float, float]
    crop: np.ndarray
    evidence: int


def decide(track: Track, threshold: float, min_evidence: int,
           subject_ids: tuple[str, ...]) -> tuple[int, list[int]] | None:
    """The subject this track now alerts on, with the indices of agreeing evidence, or None.

    A subject counts when an embedding's best candidate is that subject at or above the threshold;
    `min_evidence` such embeddings (from distinct frames) must agree, and each subject alerts once per track
    (by subject id, so a watchlist update does not alert again on a person already alerted).
    """
    votes: dict[int, list[int]] = {}
    for i, ev in enumerate(track.evidence):
        if ev.subject_index is not None and ev.score >= threshold:
            votes.setdefault(ev.subject_index, []).append(i)
    for subject, idx in sorted(votes.items(), key=lambda kv: -len(kv[1])):
        if subject_ids[subject] not in track.alerted and len({track.evidence[i].frame for i in idx}) >= min_evidence:
            return subject, idx
    return None
