"""A greedy tracker with motion. A track holds what the decision needs, in memory only, and dies with its track.

Faces move between detection rounds (a walker crosses a face width in a few frames; at stride 3 the box of the
last round often no longer overlaps the face), and a body camera moves all of them at once. So each track keeps
a constant-velocity estimate of its box, and association runs in two passes: by IoU with the predicted boxes,
then, for what is left, by the distance of centres relative to the face's size, from the prediction or from
the prediction moved with the camera (the shift most faces agree on), whichever is nearer. Measured with
`edge eval stream` (docs/evaluation.md, "Video, per track"): the IoU-only tracker split a crossing into about 15.
"""

from dataclasses import dataclass, field

import numpy as np

from edge.vision.detect import Detections
from edge.vision.quality import Quality


@dataclass
class Evidence:
    """One embedding of a track's face and what the watchlist said about it, and about the track's aggregate then.

    The aligned crop is kept only while the face could become part of an alert: when it scored at or above the
    threshold, or, under the `aggregate` rule, while it is the track's latest look (that rule alerts on it); it
    lives as long as the track at most and is never written anywhere unless an alert carries it.
    """

    frame: int
    probe: Quality
    subject_index: int | None
    score: float
    margin: float
    crop: np.ndarray | None
    pooled_subject: int | None = None
    """The aggregate's best candidate after this look (None: no aggregate, the `votes` rule)."""
    pooled_score: float = -1.0
    pooled_margin: float = 0.0


@dataclass
class Track:
    """A face followed across frames. Embeddings and crops never leave it unless it matches."""

    id: int
    box: np.ndarray
    landmarks: np.ndarray
    score: float
    first_frame: int
    last_round: int
    hits: int = 1
    missed: int = 0
    best_quality: float = 0.0
    """Best probe quality embedded so far: a clearly better face is embedded again."""
    last_embed_frame: int = -(10**9)
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4, np.float32))
    """Box change per detection round (x1, y1, x2, y2), smoothed: where the face will be next round."""
    evidence: list[Evidence] = field(default_factory=list)
    pooled: np.ndarray | None = None
    """Quality-weighted sum of the track's embeddings (the `aggregate` rule): memory only, dropped with the looks."""
    alerted: set[str] = field(default_factory=set)

    @property
    def matched(self) -> bool:
        return bool(self.alerted)

    def pool(self, embedding: np.ndarray, weight: float) -> np.ndarray:
        """Add a unit embedding to the aggregate with `weight` (its probe quality); the aggregate, re-normalised."""
        added = np.asarray(embedding, np.float32) * max(weight, 1e-3)
        self.pooled = added if self.pooled is None else self.pooled + added
        return self.pooled / max(float(np.linalg.norm(self.pooled)), 1e-12)

    def drop_looks(self) -> None:
        """Forget every embedding, crop and match result (the track ended, or the watchlist they refer to did)."""
        self.evidence.clear()
        self.pooled = None

    def predicted(self, round_: int) -> np.ndarray:
        """The box expected at detection round `round_`."""
        return self.box + self.velocity * (round_ - self.last_round)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of boxes a (N,4) and b (M,4)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (area_a[:, None] + area_b[None, :] - inter + 1e-9)


VELOCITY_SMOOTHING = 0.5  # weight of the newest displacement in a track's velocity
MAX_CENTRE_SHIFT = 1.0  # second pass: centres at most this many face widths apart (after camera motion)
MAX_SIZE_RATIO = 1.6  # second pass: widths at most this ratio apart
SHIFT_SEARCH = 3.0  # the camera's motion between two rounds: looked for up to this many face widths
MAX_SHIFT_CANDIDATES = 24  # shifts tried (each against every track and face): bounds a crowd's cost


class Tracker:
    """Associates each round's detections with live tracks: IoU with the predicted boxes, best pairs first, then
    the nearest centres for what is left."""

    def __init__(self, iou: float = 0.3, max_missed: int = 10) -> None:
        self.iou = iou
        self.max_missed = max_missed
        self.tracks: dict[int, Track] = {}
        self._next_id = 1
        self._round = 0

    def update(self, det: Detections, frame: int) -> tuple[list[tuple[Track, int]], list[Track]]:
        """Feed one detection round. Returns (track, detection index) pairs seen now, and tracks that died."""
        self._round += 1
        live = list(self.tracks.values())
        predicted = np.array([t.predicted(self._round) for t in live], np.float32).reshape(-1, 4)
        pairs = _by_overlap(iou_matrix(predicted, det.boxes), self.iou)
        coasting = {i for i, t in enumerate(live) if t.missed}  # unseen last round: only a box overlap continues it
        pairs += _by_distance(predicted, det.boxes, {t for t, _ in pairs} | coasting, {d for _, d in pairs})
        seen: list[tuple[Track, int]] = []
        for ti, di in pairs:
            track = live[ti]
            step = (det.boxes[di] - track.box) / max(1, self._round - track.last_round)
            track.velocity = (VELOCITY_SMOOTHING * step + (1 - VELOCITY_SMOOTHING) * track.velocity).astype(np.float32)
            track.box, track.landmarks, track.score = det.boxes[di], det.landmarks[di], float(det.scores[di])
            track.last_round, track.missed = self._round, 0
            track.hits += 1
            seen.append((track, di))
        used_t, used_d = {t for t, _ in pairs}, sorted(d for _, d in pairs)
        # A second box on a face that already continued a track (NMS keeps boxes overlapping less than its
        # threshold) must not start a duplicate track, or one person would yield two decisions.
        duplicate = np.zeros(len(det), bool)
        if used_d:
            duplicate = iou_matrix(det.boxes, det.boxes[used_d]).max(axis=1) >= self.iou
        for di in range(len(det)):
            if di not in used_d and not duplicate[di]:
                track = Track(self._next_id, det.boxes[di], det.landmarks[di], float(det.scores[di]), frame,
                              self._round)
                self._next_id += 1
                self.tracks[track.id] = track
                seen.append((track, di))
        dead = []
        for ti, track in enumerate(live):
            if ti not in used_t:
                track.missed += 1
                if track.missed > self.max_missed:
                    dead.append(self.tracks.pop(track.id))
        return seen, dead

    @property
    def round(self) -> int:
        return self._round

    def close(self) -> list[Track]:
        """End every track (end of source); returns them so the caller can count and forget them."""
        dead = list(self.tracks.values())
        self.tracks.clear()
        return dead


def _by_overlap(overlap: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """(track, detection) pairs by IoU at least `threshold`, best first, each used once."""
    pairs: list[tuple[int, int]] = []
    used_t: set[int] = set()
    used_d: set[int] = set()
    for flat in np.argsort(-overlap, axis=None):
        ti, di = divmod(int(flat), overlap.shape[1])
        if overlap[ti, di] < threshold:
            break
        if ti not in used_t and di not in used_d:
            used_t.add(ti)
            used_d.add(di)
            pairs.append((ti, di))
    return pairs


def _centres(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, :2] + boxes[:, 2:]) / 2


def _camera_shift(predicted: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """The camera's own motion since the predictions: the shift of face centres that most tracks agree on (at
    least two, each then within half a face width of a detection), from the candidate shift of each track to its
    nearest detection within SHIFT_SEARCH face widths; zero when no two agree (one face moving is just a walker)."""
    none = np.zeros(4, np.float32)
    if len(predicted) < 2 or len(boxes) < 2:
        return none
    width = np.maximum(predicted[:, 2] - predicted[:, 0], 1.0)
    offsets = _centres(boxes)[None] - _centres(predicted)[:, None]  # (tracks, detections, 2)
    gaps = np.linalg.norm(offsets, axis=2)
    nearest = gaps.argmin(axis=1)  # one candidate per track (its nearest face): a crowd costs tracks^2 x faces
    near = gaps[np.arange(len(gaps)), nearest] <= SHIFT_SEARCH * width
    candidates = offsets[np.arange(len(gaps)), nearest][near]
    if len(candidates) == 0:
        return none
    candidates = candidates[::-(-len(candidates) // MAX_SHIFT_CANDIDATES)]  # a crowd: an even sample of them
    # for each candidate shift, how many tracks land within half their width of some detection
    landed = np.linalg.norm(offsets[None] - candidates[:, None, None], axis=3) <= 0.5 * width[None, :, None]
    support = landed.any(axis=2).sum(axis=1)
    best = int(np.lexsort((np.linalg.norm(candidates, axis=1), -support))[0])
    if support[best] < 2:
        return none
    dx, dy = candidates[best]
    return np.array([dx, dy, dx, dy], np.float32)


def _by_distance(predicted: np.ndarray, boxes: np.ndarray, used_t: set[int], used_d: set[int]) -> list[tuple[int, int]]:
    """Pairs of the tracks and detections left, by centre distance in face widths (at most MAX_CENTRE_SHIFT, sizes
    within MAX_SIZE_RATIO), nearest first: a face that moved further than its box between two rounds, on its own
    or with the camera (`_camera_shift`, sought only when something is left to pair), whichever is nearer."""
    tracks = [t for t in range(len(predicted)) if t not in used_t]
    dets = [d for d in range(len(boxes)) if d not in used_d]
    if not tracks or not dets:
        return []
    shift = _camera_shift(predicted, boxes)
    width_t = np.maximum(predicted[tracks, 2] - predicted[tracks, 0], 1.0)
    width_d = np.maximum(boxes[dets, 2] - boxes[dets, 0], 1.0)
    gap = np.minimum(*(np.linalg.norm(_centres(p[tracks])[:, None] - _centres(boxes[dets])[None], axis=2)
                       for p in (predicted, predicted + shift)))
    ratio = np.maximum(width_t[:, None] / width_d[None], width_d[None] / width_t[:, None])
    cost = np.where(ratio <= MAX_SIZE_RATIO, gap / width_t[:, None], np.inf)
    pairs: list[tuple[int, int]] = []
    taken_t: set[int] = set()
    taken_d: set[int] = set()
    for flat in np.argsort(cost, axis=None):
        i, j = divmod(int(flat), cost.shape[1])
        if cost[i, j] > MAX_CENTRE_SHIFT:
            break
        if i not in taken_t and j not in taken_d:
            taken_t.add(i)
            taken_d.add(j)
            pairs.append((tracks[i], dets[j]))
    return pairs
