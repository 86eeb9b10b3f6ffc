"""The matcher's use of a faster row search (the Jetson GPU's, edge.runtime.gallery_trt): every result exact, a
search's rows used only where they provably hold the k best, the CPU's scan otherwise.

`Float16Search` is the GPU engine's network computed by numpy (rows stored as float16, widened, multiplied in
float32, top TOP_ROWS), so the matcher's proof is exercised on what the GPU returns; the engine itself runs only
where TensorRT and a GPU are (the last test, skipped here; `scripts/gpu-check` runs it on a device).
"""

import numpy as np
import pytest
from watchlist_helpers import unit_rows

from edge.runtime.gallery_trt import ERROR_BOUND, MAX_PROBES, TOP_ROWS
from edge.watchlist.match import INT8_MIN_ROWS, Gallery, match


class Float16Search:
    error_bound = ERROR_BOUND
    max_probes = MAX_PROBES

    def __init__(self, gallery: Gallery) -> None:
        self.gallery, self.rows16 = gallery, gallery.rows(slice(None)).astype(np.float16)
        self.calls = 0

    def holds(self, owner: object) -> bool:
        return owner is self.gallery

    def top_rows(self, probes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.calls += 1
        scores = probes.astype(np.float16).astype(np.float32) @ self.rows16.astype(np.float32).T
        order = np.argsort(-scores, axis=1, kind="stable")[:, :TOP_ROWS]
        return np.take_along_axis(scores, order, axis=1), order


def gallery_and_probes() -> tuple[Gallery, np.ndarray, np.ndarray]:
    """4,600 subjects of 1-3 rows; probes near enrolled rows (a face of a listed person) and strangers."""
    counts = np.random.default_rng(20).integers(1, 4, 4600)
    rows = unit_rows(int(counts.sum()), seed=21)
    owner = np.repeat(np.arange(len(counts)), counts)
    gallery = Gallery.from_subjects([(f"s{i}", "", r) for i, r in enumerate(np.split(rows, np.cumsum(counts)[:-1]))])
    near = rows[[3, 500, 9000]] + 0.05 * unit_rows(3, seed=22)
    probes = np.concatenate([near / np.linalg.norm(near, axis=1, keepdims=True), unit_rows(5, seed=23)])
    assert len(gallery.owner) >= INT8_MIN_ROWS
    return gallery, probes.astype(np.float32), owner


def exact_top(gallery: Gallery, owner: np.ndarray, probes: np.ndarray, k: int) -> list[list[int]]:
    scores = probes @ gallery.rows(slice(None)).T
    best = np.full((len(probes), gallery.size), -np.inf, np.float32)
    np.maximum.at(best.T, owner, scores.T)
    return [np.argsort(-row, kind="stable")[:k].tolist() for row in best]


def test_a_search_that_finds_the_best_rows_gives_the_exact_top_k_and_is_used() -> None:
    gallery, probes, owner = gallery_and_probes()
    search = Float16Search(gallery)
    results = match(gallery, probes, now=0.0, k=2, search=search)
    assert [[c.subject_index for c in r.candidates] for r in results] == exact_top(gallery, owner, probes, 2)
    assert [r.best.subject_id for r in results[:3]] == [f"s{owner[3]}", f"s{owner[500]}", f"s{owner[9000]}"]
    assert search.calls == 1
    assert "_int8" not in gallery.__dict__  # every probe's top 2 proven from the search: the CPU scanned nothing
    exact = match(gallery, probes, now=0.0, k=2)  # the CPU's scan alone: the same subjects, the same scores
    assert [[c.subject_index for c in r.candidates] for r in results] == \
           [[c.subject_index for c in r.candidates] for r in exact]
    np.testing.assert_allclose([[c.score for c in r.candidates] for r in results],
                               [[c.score for c in r.candidates] for r in exact], atol=1e-6)


def test_more_probes_than_the_engine_takes_are_searched_in_slices() -> None:
    """A crowd's faces with their tracks' aggregates can pass MAX_PROBES: the search takes them in slices rather
    than leaving the whole frame to the CPU's scan."""
    gallery, probes, owner = gallery_and_probes()
    many = np.concatenate([probes] * (MAX_PROBES // len(probes) + 1))
    assert len(many) > MAX_PROBES
    search = Float16Search(gallery)
    results = match(gallery, many, now=0.0, k=2, search=search)
    assert search.calls == 2 and "_int8" not in gallery.__dict__
    assert [[c.subject_index for c in r.candidates] for r in results] == exact_top(gallery, owner, many, 2)


@pytest.mark.parametrize("crowd", ["one subject's many rows", "near-identical subjects"])
def test_where_the_best_rows_prove_nothing_the_cpu_scans(crowd: str) -> None:
    """The GPU's TOP_ROWS rows all belong to one subject (no runner-up among them), or to subjects tied closer than
    the float16 bound: its rows are not used, and the result is still the exact top k."""
    probe = unit_rows(1, seed=30)[0]
    if crowd == "one subject's many rows":
        crowded = [probe + 0.02 * unit_rows(3 * TOP_ROWS, seed=31)]
    else:
        crowded = [probe + 1e-4 * r for r in unit_rows(3 * TOP_ROWS, seed=32)[:, None, :]]
    crowded = [c / np.linalg.norm(c, axis=-1, keepdims=True) for c in crowded]
    others = list(unit_rows(INT8_MIN_ROWS, seed=33)[:, None, :])
    per_subject = [*crowded, *others]
    gallery = Gallery.from_subjects([(f"s{i}", "", r) for i, r in enumerate(per_subject)])
    owner = np.repeat(np.arange(len(per_subject)), [len(r) for r in per_subject])
    results = match(gallery, probe[None].astype(np.float32), now=0.0, k=2, search=Float16Search(gallery))
    assert [[c.subject_index for c in r.candidates] for r in results] == \
        exact_top(gallery, owner, probe[None].astype(np.float32), 2)


def test_a_search_holding_another_gallery_is_not_asked() -> None:
    gallery, probes, owner = gallery_and_probes()
    other, _, _ = gallery_and_probes()
    search = Float16Search(other)
    results = match(gallery, probes, now=0.0, k=2, search=search)
    assert search.calls == 0
    assert [[c.subject_index for c in r.candidates] for r in results] == exact_top(gallery, owner, probes, 2)


def test_expired_subjects_found_by_a_search_are_never_returned() -> None:
    gallery, probes, owner = gallery_and_probes()
    expired = {int(owner[3]), int(owner[500])}
    timed = Gallery(gallery.embeddings, gallery.owner, gallery.subject_ids,
                    np.array([50.0 if i in expired else np.inf for i in range(gallery.size)]), gallery.labels)
    results = match(timed, probes, now=100.0, k=2, search=Float16Search(timed))
    assert not expired & {c.subject_index for r in results for c in r.candidates}
    assert results[2].best.subject_index == owner[9000]


def test_the_gpu_engine_returns_what_its_network_computes(tmp_path) -> None:
    """On a machine with TensorRT and a GPU: the engine's best rows are the float16 network's (scores within
    float32 rounding) and the matcher's results with it are exact."""
    pytest.importorskip("tensorrt", reason="tensorrt is not installed (JetPack's python3-libnvinfer): no GPU path")
    pytest.importorskip("pycuda.driver", reason="pycuda is not installed: no GPU path")
    from edge.runtime.gallery_trt import TensorRTRowSearch

    gallery, probes, owner = gallery_and_probes()
    search = TensorRTRowSearch(gallery.dim, tmp_path)
    try:
        search.load(gallery.rows, len(gallery.owner), gallery)
        scores, rows = search.top_rows(probes)
        twin_scores, twin_rows = Float16Search(gallery).top_rows(probes)
        np.testing.assert_allclose(scores, twin_scores, atol=1e-5)
        assert (rows[:, 0] == twin_rows[:, 0]).all()
        results = match(gallery, probes, now=0.0, k=2, search=search)
        assert [[c.subject_index for c in r.candidates] for r in results] == exact_top(gallery, owner, probes, 2)
    finally:
        search.close()
