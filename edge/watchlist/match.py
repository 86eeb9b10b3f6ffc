"""Top-k matching of a frame's face embeddings against a gallery: one matrix product, pure numpy."""

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Gallery:
    """Enrolled embeddings, several per subject allowed.

    `embeddings` (M, D) float32 L2-normalised, grouped so that each subject's rows are contiguous;
    `owner` (M,) the subject index of each row; `subject_ids` the ids by subject index;
    `expires` (S,) POSIX seconds per subject (inf: no expiry of its own).
    """

    embeddings: np.ndarray
    owner: np.ndarray
    subject_ids: tuple[str, ...]
    expires: np.ndarray
    labels: tuple[str, ...] = field(default=())

    @property
    def size(self) -> int:
        return len(self.subject_ids)

    @classmethod
    def from_subjects(cls, subjects: list[tuple[str, str, np.ndarray]], expires: list[float] | None = None) -> "Gallery":
        """Build from (subject id, label, (k, D) embeddings) triples."""
        if not subjects:
            return cls.empty()
        rows = [np.asarray(e, dtype=np.float32).reshape(-1, np.asarray(e).shape[-1]) for _, _, e in subjects]
        owner = np.concatenate([np.full(len(r), i, dtype=np.int32) for i, r in enumerate(rows)])
        emb = np.ascontiguousarray(np.concatenate(rows))
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        exp = np.full(len(subjects), np.inf) if expires is None else np.asarray(expires, dtype=np.float64)
        return cls(emb, owner, tuple(s for s, _, _ in subjects), exp, tuple(lb for _, lb, _ in subjects))

    @classmethod
    def empty(cls, dim: int = 192) -> "Gallery":
        return cls(np.zeros((0, dim), np.float32), np.zeros(0, np.int32), (), np.zeros(0), ())


@dataclass(frozen=True)
class Candidate:
    subject_index: int
    subject_id: str
    score: float


@dataclass(frozen=True)
class MatchResult:
    """Top-k candidates for one probe, best first, and the margin of the best to the runner-up."""

    candidates: tuple[Candidate, ...]

    @property
    def best(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else None

    @property
    def margin(self) -> float:
        if not self.candidates:
            return 0.0
        runner_up = self.candidates[1].score if len(self.candidates) > 1 else -1.0
        return self.candidates[0].score - runner_up


def match(gallery: Gallery, probes: np.ndarray, now: float, k: int = 2) -> list[MatchResult]:
    """Score each probe (N, D, L2-normalised) against every subject (best cosine of its embeddings).

    Subjects whose own expiry has passed are masked out and can never be returned.
    """
    probes = np.asarray(probes, dtype=np.float32)
    if gallery.size == 0 or len(probes) == 0:
        return [MatchResult(()) for _ in range(len(probes))]
    scores = probes @ gallery.embeddings.T  # (N, M)
    starts = np.flatnonzero(np.r_[True, gallery.owner[1:] != gallery.owner[:-1]])
    per_subject = np.maximum.reduceat(scores, starts, axis=1) if len(starts) < scores.shape[1] else scores
    per_subject = np.where(gallery.expires[None, :] > now, per_subject, -np.inf)
    k = min(k, gallery.size)
    top = np.argpartition(-per_subject, k - 1, axis=1)[:, :k]
    results = []
    for row, idx in zip(per_subject, top, strict=True):
        order = idx[np.argsort(-row[idx])]
        results.append(MatchResult(tuple(
            Candidate(int(i), gallery.subject_ids[i], float(row[i])) for i in order if np.isfinite(row[i])
        )))
    return results
