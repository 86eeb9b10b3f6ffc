"""Greedy IoU tracker. A track holds what the decision needs, in memory only, and dies with its track."""

from dataclasses import dataclass, field

import numpy as np

from edge.vision.detect import Detections
from edge.vision.quality import Quality


@dataclass
class Evidence:
    """One embedding of a track's face and what the watchlist said about it.

    The aligned crop is kept only when the face scored at or above the threshold, i.e. could become part of
    an alert; it lives as long as the track and is never written anywhere unless an alert carries it.
    """

    frame: int
    probe: Quality
    subject_index: int | None
    score: float
    margin: float
    crop: np.ndarray | None


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
    evidence: list[Evidence] = field(default_factory=list)
    alerted: set[str] = field(default_factory=set)

    @property
    def matched(self) -> bool:
        return bool(self.alerted)


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


class Tracker:
    """Associates each round's detections with live tracks by IoU, best pairs first."""

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
        overlap = iou_matrix(np.array([t.box for t in live]).reshape(-1, 4), det.boxes)
        seen: list[tuple[Track, int]] = []
        used_t: set[int] = set()
        used_d: set[int] = set()
        for flat in np.argsort(-overlap, axis=None):
            ti, di = divmod(int(flat), overlap.shape[1])
            if overlap[ti, di] < self.iou:
                break
            if ti in used_t or di in used_d:
                continue
            used_t.add(ti)
            used_d.add(di)
            track = live[ti]
            track.box, track.landmarks, track.score = det.boxes[di], det.landmarks[di], float(det.scores[di])
            track.last_round, track.missed = self._round, 0
            track.hits += 1
            seen.append((track, di))
        # A second box on a face that already continued a track (NMS keeps boxes overlapping less than its
        # threshold) must not start a duplicate track, or one person would yield two decisions.
        duplicate = np.zeros(len(det), bool)
        if used_d:
            duplicate = iou_matrix(det.boxes, det.boxes[sorted(used_d)]).max(axis=1) >= self.iou
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
