"""The decision per track: whom a track alerts on, from its looks (embeddings) so far.

Two rules (`[track] decision`). `votes`: `min_evidence` looks from distinct frames each name the same subject at or
above the threshold. `aggregate` (the default): the quality-weighted mean of the track's embeddings names the
subject at or above the threshold, after at least `min_evidence` looks from distinct frames, the latest of which
names that subject too. Noise of single looks (blur, a turned head, a bad frame) averages out of the mean, so a
person whose looks each fall just short is still found; measured in docs/evaluation.md, "Decisions over a whole
track".
"""

from dataclasses import dataclass

import numpy as np

from edge.config.track import DecisionRule
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


def decide(track: Track, threshold: float, min_evidence: int, subject_ids: tuple[str, ...],
           rule: DecisionRule = "aggregate") -> tuple[int, list[int]] | None:
    """The subject this track now alerts on, with the indices of the looks behind it, or None.

    Each subject alerts once per track (by subject id, so a watchlist update does not alert again on a person
    already alerted).
    """
    if rule == "votes":
        return decide_votes(track, threshold, min_evidence, subject_ids)
    return decide_aggregate(track, threshold, min_evidence, subject_ids)


def decide_aggregate(track: Track, threshold: float, min_evidence: int,
                     subject_ids: tuple[str, ...]) -> tuple[int, list[int]] | None:
    """The subject the track's aggregate (after its latest look) names at or above the threshold, once
    `min_evidence` looks from distinct frames are pooled and the latest look's own best candidate is that subject
    (a face that no longer looks like them, e.g. another walker taken over by the track, does not alert); with
    the looks that named the subject."""
    if not track.evidence:
        return None
    latest = track.evidence[-1]
    subject = latest.pooled_subject
    if (subject is None or latest.pooled_score < threshold or latest.subject_index != subject
            or subject_ids[subject] in track.alerted or len({ev.frame for ev in track.evidence}) < min_evidence):
        return None
    return subject, [i for i, ev in enumerate(track.evidence) if ev.subject_index == subject]


def decide_votes(track: Track, threshold: float, min_evidence: int,
                 subject_ids: tuple[str, ...]) -> tuple[int, list[int]] | None:
    """The subject that `min_evidence` looks from distinct frames each name at or above the threshold, with them.

    A subject counts when a look's best candidate is that subject at or above the threshold.
    """
    votes: dict[int, list[int]] = {}
    for i, ev in enumerate(track.evidence):
        if ev.subject_index is not None and ev.score >= threshold:
            votes.setdefault(ev.subject_index, []).append(i)
    for subject, idx in sorted(votes.items(), key=lambda kv: -len(kv[1])):
        if subject_ids[subject] not in track.alerted and len({track.evidence[i].frame for i in idx}) >= min_evidence:
            return subject, idx
    return None
