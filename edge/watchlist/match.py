"""Top-k matching of a frame's face embeddings against a gallery.

The pass over the gallery dominates: it reads every row for every frame. A small gallery is scored exactly in one
float32 product. A large one is scanned as int8 (per-row scale, a quarter of float32's bytes) by ONNX Runtime's
integer kernel; each score is then known within a bound, and only the subjects that could still be among the top
k are re-scored exactly from the stored rows, so every reported score is the exact one. A gallery may be stored as
bfloat16 (the upper half of each float32): half the memory, scores within about 1e-3 of float32.
Match a frame's faces together: the pass over the gallery costs about the same for one probe or eight. On a
Jetson whose embedder runs on TensorRT, the pass is the GPU's (edge.runtime.gallery_trt), proven or redone here.
"""

import itertools
from dataclasses import dataclass, field
from functools import cached_property
from typing import Protocol

import numpy as np

from edge.runtime.int8gemm import GALLERY_ZERO, Int8Product

INT8_MIN_ROWS = 4096  # below this, one float32 product costs less than the integer kernel's call
BLOCK_ROWS = 65536    # int8 rows per integer product (8 MiB at 128-d): its int32 scores stay small
SAMPLE_STRIDE = 64    # a probe's first floor: the k-th best of every 64th score, never above the k-th best of all
ARGMAX_TOP_K = 4      # up to this k, k argmax passes beat a partition


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

    def rows(self, index: np.ndarray | slice) -> np.ndarray:
        """Stored rows as float32 (widened from bfloat16 when stored so)."""
        rows = self.embeddings[index]
        return from_bfloat16(rows) if rows.dtype == np.uint16 else rows

    @cached_property
    def _runs(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(start of each subject's run of rows, its subject); None when every subject has one row, in order."""
        m = len(self.owner)
        if m == self.size and np.array_equal(self.owner, np.arange(m)):
            return None
        starts = np.flatnonzero(np.r_[True, self.owner[1:] != self.owner[:-1]]) if m else np.zeros(0, np.int64)
        return starts, self.owner[starts]

    @cached_property
    def _subject_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """(first row, row count) per subject; a subject without rows has count 0."""
        first, count = np.zeros(self.size, np.int64), np.zeros(self.size, np.int64)
        if self._runs is None:
            return np.arange(self.size), np.ones(self.size, np.int64)
        starts, subjects = self._runs
        first[subjects] = starts
        count[subjects] = np.diff(np.r_[starts, len(self.owner)])
        return first, count

    @cached_property
    def _int8(self) -> "Int8Gallery":
        return Int8Gallery.of(self)

    def prepare(self) -> None:
        """Build what matching a large gallery needs (its 8-bit copy: 0.8 s at 1,000,000 rows here), so that the
        first frame matched against a new list does not pay for it on the inference thread."""
        if len(self.owner) >= INT8_MIN_ROWS:
            self._int8  # noqa: B018  (a cached property: reading it builds it)

    def subject_scores(self, row_scores: np.ndarray) -> np.ndarray:
        """(N, S) best score per subject from (N, M) row scores; -inf for a subject without rows."""
        if self._runs is None:
            return row_scores
        out = np.full((len(row_scores), self.size), -np.inf, np.float32)
        starts, subjects = self._runs
        out[:, subjects] = np.maximum.reduceat(row_scores, starts, axis=1)
        return out


@dataclass(frozen=True)
class Int8Block:
    """Rows [start, stop) of the int8 gallery and the subjects they belong to, in order: one row each (`runs`
    None), or runs of rows starting at `runs` within the block."""

    start: int
    stop: int
    subjects: np.ndarray
    runs: np.ndarray | None

    def subject_scores(self, approx: np.ndarray) -> np.ndarray:
        """(n subjects, N) best approximate score of each of the block's subjects."""
        return approx if self.runs is None else np.maximum.reduceat(approx, self.runs, axis=0)


@dataclass(frozen=True)
class Int8Gallery:
    """A gallery's rows as int8 on one scale (stored + GALLERY_ZERO as uint8), scanned in blocks cut between
    subjects.

    With g = S q_g + e_g (|e_g| <= S / 2 per element) and p = s q_p + e_p likewise, every score is known within
    |g.p - S s q_g.q_p| <= S/2 |p|_1 + s/2 |g|_1 + D S s / 4; a subject more than twice that bound below the k-th
    best cannot be in the top k. One scale for all rows makes the integer product itself the score, up to a
    factor and an offset per probe (the stored shift adds GALLERY_ZERO x the probe's element sum to all its
    scores alike): candidates are picked on the int32 results, with no pass in floating point.
    """

    rows: np.ndarray  # (M, D) uint8
    scale: float
    max_l1: float
    blocks: tuple[Int8Block, ...]
    product: Int8Product

    @classmethod
    def of(cls, gallery: Gallery) -> "Int8Gallery":
        m, dim, runs = len(gallery.owner), gallery.dim, gallery._runs
        if runs is None:
            cuts = list(range(0, m, BLOCK_ROWS))
        else:  # at the first run starting at or after each block's nominal start (a subject is never split)
            at = np.minimum(np.searchsorted(runs[0], np.arange(0, m, BLOCK_ROWS)), len(runs[0]) - 1)
            cuts = np.unique(np.r_[0, runs[0][at]]).tolist()
        spans = list(itertools.pairwise([*cuts, m]))
        largest = max((float(np.abs(gallery.rows(slice(a, b))).max()) for a, b in spans), default=1.0)
        scale = max(largest, 1e-30) / 127
        quantized, blocks, max_l1 = np.empty((m, dim), np.uint8), [], 0.0
        for a, b in spans:
            rows = gallery.rows(slice(a, b))
            quantized[a:b] = (np.rint(rows / scale) + GALLERY_ZERO).astype(np.uint8)
            max_l1 = max(max_l1, float(np.abs(rows).sum(axis=1).max()))
            if runs is None:
                blocks.append(Int8Block(a, b, np.arange(a, b), None))
            else:
                i, j = np.searchsorted(runs[0], [a, b])
                blocks.append(Int8Block(a, b, runs[1][i:j], runs[0][i:j] - a))
        return cls(quantized, scale, max_l1, tuple(blocks), Int8Product(dim))

    def candidates(self, probes: np.ndarray, k: int, live: np.ndarray) -> list[np.ndarray]:
        """Per probe, the live subjects that may be among its k best: one pass, block by block, each probe's
        running k-th best setting what it keeps from the next block."""
        n, dim = probes.shape
        scale = np.maximum(np.abs(probes).max(axis=1), 1e-30) / 127
        quantized = np.rint(probes / scale[:, None]).astype(np.int8)
        probes_t = np.ascontiguousarray(quantized.T)
        bound = (self.scale / 2 * np.abs(probes).sum(axis=1) + scale / 2 * self.max_l1
                 + dim * self.scale * scale / 4 + 1e-5)  # and float32 rounding in the exact re-scoring
        margin = np.ceil(2 * bound / (self.scale * scale)).astype(np.int64)  # in product units
        pool_ids: list[np.ndarray] = [np.zeros(0, np.int64)] * n
        pool_scores: list[np.ndarray] = [np.zeros(0, np.int64)] * n
        kth: list[int | None] = [None] * n
        everyone_live = bool(live.all())
        for block in self.blocks:
            ids = block.subjects
            scores = block.subject_scores(self.product(self.rows[block.start:block.stop], probes_t))
            scores = np.ascontiguousarray(scores.T)  # (N, subjects): one probe's scores contiguous
            if not everyone_live:
                scores[:, ~live[ids]] = np.iinfo(np.int32).min
            for p in range(n):
                row = scores[p]
                floor = kth[p] if kth[p] is not None else _first_floor(row, k)
                kept = np.flatnonzero(row >= floor - margin[p])
                if not everyone_live:
                    kept = kept[live[ids[kept]]]
                ids_p = np.concatenate((pool_ids[p], ids[kept]))
                scores_p = np.concatenate((pool_scores[p], row[kept].astype(np.int64)))
                if len(scores_p) >= k:
                    kth[p] = _kth_best(scores_p, k)
                    held = scores_p >= kth[p] - margin[p]
                    ids_p, scores_p = ids_p[held], scores_p[held]
                pool_ids[p], pool_scores[p] = ids_p, scores_p
        return pool_ids


def _first_floor(row: np.ndarray, k: int) -> int:
    """A floor no higher than the k-th best of all, before a probe has one: the k-th best of a sample of the row
    when the sample holds k values, of the whole row when it holds k, else the lowest int32 (keep everything)."""
    sample = row[::SAMPLE_STRIDE]
    if len(sample) >= k:
        return _kth_best(sample, k)
    return _kth_best(row, k) if len(row) >= k else int(np.iinfo(np.int32).min)


def _kth_best(values: np.ndarray, k: int) -> int:
    """The k-th largest value (the smallest when there are fewer)."""
    kk = min(k, len(values))
    return int(np.partition(values, -kk)[-kk])


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


def match(gallery: Gallery, probes: np.ndarray, now: float, k: int = 2,
          search: "RowSearch | None" = None) -> list[MatchResult]:
    """Score each probe (N, D, L2-normalised) against every subject (best cosine of its embeddings).

    Subjects whose own expiry has passed are masked out and can never be returned. Every score returned is exact
    (as the stored rows give it), whichever kernel found the candidates: `search` (the GPU's pass, holding this
    gallery) for a large gallery where its result is proven, else the CPU's 8-bit scan.
    """
    probes = np.ascontiguousarray(probes, dtype=np.float32)
    live = gallery.expires > now
    if gallery.size == 0 or len(probes) == 0 or not live.any():
        return [MatchResult(()) for _ in range(len(probes))]
    k = min(k, gallery.size)
    if len(gallery.owner) < INT8_MIN_ROWS:
        scores = gallery.subject_scores(probes @ gallery.rows(slice(None)).T)
        scores[:, ~live] = -np.inf
        top = _top(scores, k)
        return [_result(gallery, idx, row) for idx, row in zip(top, np.take_along_axis(scores, top, 1), strict=True)]
    found = _searched(gallery, probes, k, live, search) if search is not None else [None] * len(probes)
    rest = [i for i, r in enumerate(found) if r is None]
    if rest:
        for i, subjects in zip(rest, gallery._int8.candidates(probes[rest], k, live), strict=True):
            exact = _exact(gallery, probes[i], subjects)
            order = np.lexsort((subjects, -exact))[:k]
            found[i] = _result(gallery, subjects[order], exact[order])
    return [r for r in found if r is not None]


class RowSearch(Protocol):
    """A faster pass over a large gallery's rows (edge.runtime.gallery_trt on a Jetson's GPU): each probe's best
    rows by an approximate score, within `error_bound` of the exact one."""

    error_bound: float
    max_probes: int

    def holds(self, owner: object) -> bool: ...

    def top_rows(self, probes: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


def _searched(gallery: Gallery, probes: np.ndarray, k: int, live: np.ndarray,
              search: RowSearch) -> list[MatchResult | None]:
    """Results from `search`'s best rows where they provably are the k best subjects, else None (the CPU scans).

    Every row left out scored at most the last one returned, so its exact score is at most that plus the error
    bound; when the k-th best of the re-scored subjects is above that, none left out could rank higher."""
    if not search.holds(gallery):
        return [None] * len(probes)
    if len(probes) > search.max_probes:  # a crowd, or a frame's faces with their tracks' aggregates: in slices
        step = search.max_probes
        return [r for at in range(0, len(probes), step)
                for r in _searched(gallery, probes[at:at + step], k, live, search)]
    scores, rows = search.top_rows(probes)
    out: list[MatchResult | None] = []
    for probe, approx, index in zip(probes, scores, rows, strict=True):
        owners = gallery.owner[index]
        subjects = np.unique(owners[live[owners]])
        if len(subjects) < k:
            out.append(None)
            continue
        exact = _exact(gallery, probe, subjects)
        order = np.lexsort((subjects, -exact))[:k]
        proven = exact[order[-1]] > approx[-1] + search.error_bound
        out.append(_result(gallery, subjects[order], exact[order]) if proven else None)
    return out


def _exact(gallery: Gallery, probe: np.ndarray, subjects: np.ndarray) -> np.ndarray:
    """Exact best score of each of these subjects, from its stored rows."""
    first, count = gallery._subject_rows
    n = count[subjects]
    offsets = np.r_[0, np.cumsum(n)[:-1]]  # where each subject's rows start among those gathered
    rows = np.repeat(first[subjects] - offsets, n) + np.arange(int(n.sum()))
    scores = gallery.rows(rows) @ probe
    return np.maximum.reduceat(scores, offsets) if len(scores) else np.full(len(subjects), -np.inf)


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best per row, best first (ties: lower index first)."""
    if k <= ARGMAX_TOP_K:
        return _top_by_argmax(scores, k)
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def _result(gallery: Gallery, idx: np.ndarray, scores: np.ndarray) -> MatchResult:
    return MatchResult(tuple(Candidate(int(i), gallery.subject_ids[i], float(s))
                             for i, s in zip(idx, scores, strict=True) if np.isfinite(s)))


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
