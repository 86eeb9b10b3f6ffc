"""Per-crossing figures of a run of the pipeline over generated video whose truth is known.

A crossing is one person walking through once. Each tracker track is given to the crossing whose true face box it
overlaps (IoU >= MIN_IOU) in most of the frames it was detected in; a track that overlaps none is a ghost. An
alert belongs to its track's crossing: on a listed person's crossing it is correct when it names them and a
wrong-person alert otherwise; on a passer's crossing, or on a ghost, it is a false alert. The curve replays the
decision rule in use at every threshold from each track's looks (the best candidate and score of each embedding and
of the track's aggregate after it), so it comes from the same run.
"""

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np

from edge.config.track import DecisionRule

MIN_IOU = 0.3


@dataclass(frozen=True)
class CrossingTruth:
    """A crossing as scored: its id, whom it shows (None: a passer, on no list), and its first frame."""

    id: int
    subject_id: str | None
    start: int


@dataclass(frozen=True)
class Sighting:
    """A tracker track detected in a frame, at this box."""

    frame: int
    track: int
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class Look:
    """One embedding of a track's face: the best candidate on the list (None: empty list) and its score, and the
    best candidate and score of the track's aggregate after it (None: the `votes` rule, no aggregate)."""

    track: int
    frame: int
    subject_id: str | None
    score: float
    pooled_subject_id: str | None = None
    pooled_score: float = -1.0


@dataclass(frozen=True)
class Raised:
    """An alert the pipeline raised."""

    track: int
    frame: int
    subject_id: str
    score: float


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def assign(sightings: list[Sighting], truth: dict[int, list[tuple[int, tuple[float, ...]]]]
           ) -> tuple[dict[int, int | None], dict[int, set[int]]]:
    """Each track's crossing (None: a ghost), and for each crossing every track that overlapped it at least once.

    `truth`: per frame, (crossing id, true face box) of every face in it.
    """
    votes: dict[int, Counter[int]] = defaultdict(Counter)
    overlapping: dict[int, set[int]] = defaultdict(set)
    for s in sightings:
        best = max(((_iou(s.box, box), cid) for cid, box in truth.get(s.frame, [])), default=(0.0, -1))
        votes[s.track]  # a track that never overlaps anyone is still a track (a ghost)
        if best[0] >= MIN_IOU:
            votes[s.track][best[1]] += 1
            overlapping[best[1]].add(s.track)
    owner = {t: (v.most_common(1)[0][0] if v else None) for t, v in votes.items()}
    return owner, dict(overlapping)


def score(crossings: list[CrossingTruth], sightings: list[Sighting],
          truth: dict[int, list[tuple[int, tuple[float, ...]]]], alerts: list[Raised], fps: float) -> dict[str, object]:
    """The operating figures of one run (see docs/evaluation.md, "Video, per track")."""
    owner, overlapping = assign(sightings, truth)
    by_id = {c.id: c for c in crossings}
    listed = [c for c in crossings if c.subject_id is not None]
    passers = [c for c in crossings if c.subject_id is None]
    first_correct: dict[int, int] = {}
    per_crossing: dict[int, list[str]] = defaultdict(list)
    wrong = false = ghosts = 0
    for a in sorted(alerts, key=lambda a: a.frame):
        cid = owner.get(a.track)
        if cid is None:
            ghosts += 1
            false += 1
            continue
        per_crossing[cid].append(a.subject_id)
        who = by_id[cid].subject_id
        if who is None:
            false += 1
        elif a.subject_id != who:
            wrong += 1
        else:
            first_correct.setdefault(cid, a.frame)
    delays = [(frame - by_id[cid].start) / fps for cid, frame in first_correct.items()]
    duplicates = [len(names) - len(set(names)) for names in per_crossing.values()]
    fragments = [len(tracks) for tracks in overlapping.values()]
    return {
        "listed_tracks": len(listed),
        "passer_tracks": len(passers),
        "crossings_seen": len(overlapping),
        "tracker_tracks": len(owner),
        "ghost_tracks": sum(1 for c in owner.values() if c is None),
        "track_fnir": _ratio(len(listed) - len(first_correct), len(listed)),
        "correct_alerts": len(first_correct),
        "false_alerts": false,
        "ghost_alerts": ghosts,
        "false_alerts_per_1000_passers": _ratio(1000 * false, len(passers)),
        "wrong_person_alerts": wrong,
        "duplicate_alerts_per_crossing": _ratio(sum(duplicates), len(duplicates)),
        "tracks_per_crossing": _ratio(sum(fragments), len(fragments)),
        "median_seconds_to_alert": round(statistics.median(delays), 3) if delays else None,
    }


def decision_scores(looks: list[Look], min_evidence: int, rule: DecisionRule) -> dict[int, dict[str, float]]:
    """Per track, per subject: the highest threshold at which the decision rule in use would have alerted on them.

    `votes`: the `min_evidence`-th best score among the track's looks whose best candidate was that subject.
    `aggregate`: the best aggregate score naming that subject after a look that named them too, once
    `min_evidence` looks from distinct frames were pooled (`edge.track.decision.decide_aggregate`, at every
    threshold at once).
    """
    if rule == "aggregate":
        return _aggregate_scores(looks, min_evidence)
    scores: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for look in looks:
        if look.subject_id is not None:
            scores[look.track][look.subject_id].append(look.score)
    decisions = {t: {s: sorted(v, reverse=True)[min_evidence - 1] for s, v in subj.items() if len(v) >= min_evidence}
                 for t, subj in scores.items()}
    return {t: d for t, d in decisions.items() if d}


def _aggregate_scores(looks: list[Look], min_evidence: int) -> dict[int, dict[str, float]]:
    frames: dict[int, set[int]] = defaultdict(set)
    decisions: dict[int, dict[str, float]] = defaultdict(dict)
    for look in sorted(looks, key=lambda lk: lk.frame):
        frames[look.track].add(look.frame)
        subject = look.pooled_subject_id
        if subject is None or subject != look.subject_id or len(frames[look.track]) < min_evidence:
            continue
        known = decisions[look.track]
        known[subject] = max(known.get(subject, -1.0), look.pooled_score)
    return {t: d for t, d in decisions.items() if d}


def curve(crossings: list[CrossingTruth], owner: dict[int, int | None], decisions: dict[int, dict[str, float]],
          thresholds: np.ndarray) -> list[dict[str, float]]:
    """track_fnir, false alerts per 1000 passers and wrong-person alerts at each threshold, from one run.

    A track takes its periodic looks only until it alerts. So a track's first alert is replayed exactly at and
    below the run's own threshold (until then it had every look it would have had); above it, a track that
    alerted stopped looking and might have reached the higher threshold later, so there the curve may count too
    few alerts (correct and false), and below it too few further alerts after a track's first.
    """
    by_id = {c.id: c for c in crossings}
    n_listed = sum(1 for c in crossings if c.subject_id is not None)
    n_passers = len(crossings) - n_listed
    rows = []
    for t in thresholds:
        hit: set[int] = set()
        false = wrong = 0
        for track, subjects in decisions.items():
            cid = owner.get(track)
            who = by_id[cid].subject_id if cid is not None else None
            for subject, s in subjects.items():
                if s < t:
                    continue
                if who is None:
                    false += 1
                elif subject == who:
                    hit.add(cid)  # type: ignore[arg-type]
                else:
                    wrong += 1
        rows.append({"threshold": round(float(t), 4), "track_fnir": _ratio(n_listed - len(hit), n_listed),
                     "false_alerts_per_1000_passers": _ratio(1000 * false, n_passers), "wrong_person_alerts": wrong})
    return rows


def _ratio(num: float, den: int) -> float | None:
    return round(num / den, 4) if den else None
