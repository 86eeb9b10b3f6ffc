"""Top-k matching of a frame's face embeddings against a gallery: one pass over the gallery, pure numpy.

The gallery is scanned in chunks small enough to stay in the CPU cache, so memory stays bounded
whatever the gallery size. A gallery may be stored as bfloat16 (the upper half of each float32):
half the memory and half the memory traffic, widened back to float32 one chunk at a time (two cheap
integer passes; numpy's float16 cast is ten times slower). Scores then move by at most about 1e-3.
Match a frame's faces together: the pass over the gallery costs the same for one probe or sixteen.
"""

import itertools
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

CHUNK_ROWS = 2048  # rows widened at a time: 1.5 MiB of 192-d float32, about one L2 cache
BLOCK_ROWS = 512   # rows per matrix product: small enough for OpenBLAS's unpacked small-matrix kernels
ARGMAX_TOP_K = 4   # up to this k, k argmax passes beat a partition


def to_bfloat16(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bits (uint16), rounded to nearest even."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounded = bits + (np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1)))
    return (rounded >> np.uint32(16)).astype(np.uint16)


def from_bfloat16(bits: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """bfloat16 bits (uint16) -> float32, into `out` when given (same shape, float32, contiguous)."""
    out = np.empty(bits.shape, np.float32) if out is None else out
    wide = out.view(np.uint32)
    np.copyto(wide, bits)
    np.left_shift(wide, 16, out=wide)
    return out


@dataclass(frozen=True)
class Gallery:
    """Enrolled embeddings, several per subject allowed.

    `embeddings` (M, D) L2-normalised, either float32 or uint16 holding bfloat16 (see to_bfloat16),
    grouped so that each subject's rows are contiguous; `owner` (M,) the subject index of each row;
    `subject_ids` the ids by subject index; `expires` (S,) POSIX seconds per subject (inf: no expiry
    of its own).
    """

    embeddings: np.ndarray
    owner: np.ndarray
    subject_ids: tuple[str, ...]
    expires: np.ndarray
    labels: tuple[str, ...] = field(default=())

    @property
    def size(self) -> int:
        return len(self.subject_ids)

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])

    @classmethod
    def from_subjects(cls, subjects: list[tuple[str, str, np.ndarray]], expires: list[float] | None = None,
                      bfloat16: bool = False) -> "Gallery":
        """Build from (subject id, label, (k, D) embeddings) triples."""
        if not subjects:
            return cls.empty()
        rows = [np.asarray(e, dtype=np.float32).reshape(-1, np.asarray(e).shape[-1]) for _, _, e in subjects]
        owner = np.concatenate([np.full(len(r), i, dtype=np.int32) for i, r in enumerate(rows)])
        emb = np.ascontiguousarray(np.concatenate(rows))
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        exp = np.full(len(subjects), np.inf) if expires is None else np.asarray(expires, dtype=np.float64)
        return cls(to_bfloat16(emb) if bfloat16 else emb, owner, tuple(s for s, _, _ in subjects), exp,
                   tuple(lb for _, lb, _ in subjects))

    @classmethod
    def empty(cls, dim: int = 192) -> "Gallery":
        return cls(np.zeros((0, dim), np.float32), np.zeros(0, np.int32), (), np.zeros(0), ())

    @cached_property
    def _chunks(self) -> tuple[tuple[int, int, np.ndarray | None, np.ndarray | None], ...]:
        """(start, stop, run starts within the chunk, subject of each run) per chunk, cut between subjects.

        Runs are None when every subject has one row in subject order: scores then go straight
        into the per-subject table.
        """
        m = len(self.owner)
        if m == 0:
            return ()
        if m == self.size and np.array_equal(self.owner, np.arange(m)):
            return tuple((a, min(a + CHUNK_ROWS, m), None, None) for a in range(0, m, CHUNK_ROWS))
        starts = np.flatnonzero(np.r_[True, self.owner[1:] != self.owner[:-1]])
        cuts = np.unique(np.r_[np.searchsorted(starts, np.arange(0, m, CHUNK_ROWS)), len(starts)])
        bounds = np.r_[starts, m]
        return tuple((int(bounds[i]), int(bounds[j]), starts[i:j] - starts[i], self.owner[starts[i:j]])
                     for i, j in itertools.pairwise(cuts))


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
    live = gallery.expires > now
    if gallery.size == 0 or len(probes) == 0 or not live.any():
        return [MatchResult(()) for _ in range(len(probes))]
    scores = np.ascontiguousarray(subject_scores(gallery, probes).T)  # (N, S)
    scores[:, ~live] = -np.inf
    k = min(k, gallery.size)
    if k <= ARGMAX_TOP_K:
        top = _top_by_argmax(scores, k)
    else:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
        top = np.take_along_axis(part, order, axis=1)
    best = np.take_along_axis(scores, top, axis=1)
    return [
        MatchResult(tuple(Candidate(int(i), gallery.subject_ids[i], float(s))
                          for i, s in zip(idx, row, strict=True) if np.isfinite(s)))
        for idx, row in zip(top, best, strict=True)
    ]


def subject_scores(gallery: Gallery, probes: np.ndarray) -> np.ndarray:
    """(S, N) best cosine of each subject's rows for each probe, one cache-sized chunk at a time."""
    probes_t = np.ascontiguousarray(np.asarray(probes, dtype=np.float32).T)  # (D, N)
    out = np.empty((gallery.size, probes_t.shape[1]), np.float32)
    if not gallery._chunks or gallery._chunks[0][2] is not None:
        out.fill(-np.inf)  # a subject without rows never scores
    bfloat16 = gallery.embeddings.dtype == np.uint16
    longest = max((b - a for a, b, _, _ in gallery._chunks), default=0)  # a subject with many rows makes a longer chunk
    buffer = np.empty((longest if bfloat16 else 0, gallery.dim), np.float32)
    rows_out = np.empty((0, probes_t.shape[1]), np.float32)
    for a, b, runs, subjects in gallery._chunks:
        rows = from_bfloat16(gallery.embeddings[a:b], buffer[: b - a]) if bfloat16 else gallery.embeddings[a:b]
        if runs is None:
            target = out[a:b]
        else:
            if len(rows_out) < b - a:
                rows_out = np.empty((b - a, probes_t.shape[1]), np.float32)
            target = rows_out[: b - a]
        for c in range(0, b - a, BLOCK_ROWS):
            np.matmul(rows[c:c + BLOCK_ROWS], probes_t, out=target[c:c + BLOCK_ROWS])
        if runs is not None:
            out[subjects] = np.maximum.reduceat(target, runs, axis=0)
    return out


def _top_by_argmax(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best per row, best first, by k argmax passes (scores is scratch: modified)."""
    rows = np.arange(len(scores))
    top = np.empty((len(scores), k), np.int64)
    saved = np.empty((len(scores), k), np.float32)
    for j in range(k):
        top[:, j] = scores.argmax(axis=1)
        saved[:, j] = scores[rows, top[:, j]]
        scores[rows, top[:, j]] = -np.inf
    for j in reversed(range(k)):  # an all -inf row repeats an index: its first pass saw the true score
        scores[rows, top[:, j]] = saved[:, j]
    return top
