"""The chunked matcher against a brute-force reference, in float32 and bfloat16 storage."""

import numpy as np
import pytest
from watchlist_helpers import unit_rows

from edge.watchlist.match import BLOCK_ROWS, INT8_MIN_ROWS, Gallery, from_bfloat16, match, to_bfloat16


def reference(subject_rows: list[np.ndarray], probes: np.ndarray) -> np.ndarray:
    """(N, S) best cosine per subject, -inf for a subject without rows."""
    return np.stack([np.max(probes @ r.T, axis=1) if len(r) else np.full(len(probes), -np.inf)
                     for r in subject_rows], axis=1)


def ragged_gallery(bfloat16: bool = False) -> tuple[Gallery, list[np.ndarray]]:
    """Subjects of 1 to 5 rows, one longer than a chunk, so runs straddle every chunk boundary."""
    counts = np.random.default_rng(1).integers(1, 6, 1500)
    counts[700] = INT8_MIN_ROWS + 300
    rows = unit_rows(int(counts.sum()), seed=2)
    per_subject = np.split(rows, np.cumsum(counts)[:-1])
    subjects = [(f"s{i}", f"L{i}", r) for i, r in enumerate(per_subject)]
    return Gallery.from_subjects(subjects, bfloat16=bfloat16), per_subject


@pytest.mark.parametrize("k", [2, 7])  # the argmax path and the partition path
def test_top_k_equals_brute_force(k: int) -> None:
    gallery, per_subject = ragged_gallery()
    probes = np.concatenate([unit_rows(5, seed=3), per_subject[700][[5, 2100]], per_subject[1499][:1]])
    expected = reference(per_subject, probes)
    results = match(gallery, probes, now=0.0, k=k)
    for row, result in zip(expected, results, strict=True):
        order = np.argsort(-row, kind="stable")[:k]
        assert [c.subject_index for c in result.candidates] == order.tolist()
        np.testing.assert_allclose([c.score for c in result.candidates], row[order], atol=1e-5)
        assert result.margin == pytest.approx(row[order[0]] - row[order[1]], abs=1e-5)
    assert [r.best.subject_id for r in results[5:]] == ["s700", "s700", "s1499"]


def test_bfloat16_storage_scores_within_tolerance() -> None:
    gallery, per_subject = ragged_gallery(bfloat16=True)
    assert gallery.embeddings.dtype == np.uint16
    probes = unit_rows(8, seed=4)
    expected = reference(per_subject, probes)
    for row, result in zip(expected, match(gallery, probes, now=0.0, k=4), strict=True):
        best = int(np.argmax(row))
        gap = row[best] - np.partition(row, -2)[-2]
        assert abs(result.best.score - row[best]) < 2e-3 or gap < 4e-3
        chosen = [c.subject_index for c in result.candidates]
        np.testing.assert_allclose([c.score for c in result.candidates], row[chosen], atol=2e-3)


def test_bfloat16_round_trip_is_rounded_to_nearest() -> None:
    x = unit_rows(1000, seed=5)
    back = from_bfloat16(to_bfloat16(x))
    assert np.all(np.abs(back - x) <= np.abs(x) * 2.0**-8 + 1e-30)
    assert np.abs(back - x).mean() < np.abs(x).mean() * 2.0**-9  # nearest, not truncation
    exact = np.array([1.0, -0.5, 0.0, 2.0**-10], np.float32)
    assert np.array_equal(from_bfloat16(to_bfloat16(exact)), exact)


def test_expired_subjects_never_returned() -> None:
    rows = unit_rows(4, seed=6)
    gallery = Gallery.from_subjects([(f"s{i}", "", rows[i:i + 1]) for i in range(4)], expires=[100, 200, 1e11, 50])
    results = match(gallery, rows, now=150.0, k=4)
    assert (results[1].best.subject_id, results[2].best.subject_id) == ("s1", "s2")
    assert {c.subject_id for r in results for c in r.candidates} == {"s1", "s2"}
    assert all(len(r.candidates) == 2 for r in results)
    assert all(r.best is None for r in match(gallery, rows, now=1e12))


def test_contiguous_but_unordered_owner_and_subject_without_rows() -> None:
    rows = unit_rows(4, seed=7)
    gallery = Gallery(rows, np.array([2, 2, 0, 3], np.int32), ("a", "b", "c", "d"), np.full(4, np.inf))
    results = match(gallery, rows, now=0.0, k=4)
    assert [r.best.subject_id for r in results] == ["c", "c", "a", "d"]
    assert all("b" not in {c.subject_id for c in r.candidates} for r in results)
    assert results[0].candidates[0].score == pytest.approx(1.0, abs=1e-6)


def test_empty_inputs() -> None:
    assert match(Gallery.empty(), unit_rows(2, seed=8), now=0.0) == [match(Gallery.empty(), unit_rows(1, 0), 0)[0]] * 2
    assert match(Gallery.from_subjects([("a", "A", unit_rows(1, 9))]), np.zeros((0, 192), np.float32), 0.0) == []
    single = match(Gallery.from_subjects([("a", "A", unit_rows(1, 9))]), unit_rows(1, 9), 0.0)[0]
    assert single.best.subject_id == "a" and single.margin == pytest.approx(2.0, abs=1e-5)  # runner-up is -1


def test_int8_search_returns_the_exact_top_k_even_among_near_ties() -> None:
    """The integer pass only finds candidates; every score and the order come from the stored rows. A crowd of 300
    rows within the int8 bound of the probe (cosines 1 down to about 0.955) still comes out in exact order."""
    probe = unit_rows(1, seed=10)[0]
    near = probe + np.linspace(0.01, 0.3, 300)[:, None] * unit_rows(300, seed=11)
    near /= np.linalg.norm(near, axis=1, keepdims=True)
    rows = np.concatenate([unit_rows(BLOCK_ROWS + 5000, seed=12), near]).astype(np.float32)
    order = np.random.default_rng(13).permutation(len(rows))
    gallery = Gallery.from_subjects([(f"s{i}", "", rows[j:j + 1]) for i, j in enumerate(order)])
    assert len(gallery.owner) >= INT8_MIN_ROWS
    exact = rows[order].astype(np.float64) @ probe.astype(np.float64)
    for k in (2, 10):
        result = match(gallery, probe[None], now=0.0, k=k)[0]
        got = [c.subject_index for c in result.candidates]
        np.testing.assert_allclose([c.score for c in result.candidates], np.sort(exact)[::-1][:k], atol=1e-6)
        np.testing.assert_allclose([c.score for c in result.candidates], exact[got], atol=1e-6)


def test_int8_search_never_returns_an_expired_subject() -> None:
    rows = unit_rows(INT8_MIN_ROWS + 100, seed=14)
    gallery = Gallery.from_subjects([(f"s{i}", "", rows[i:i + 1]) for i in range(len(rows))],
                                    expires=[50.0 if i % 2 else 1e11 for i in range(len(rows))])
    results = match(gallery, rows[:6], now=100.0, k=3)
    assert [r.best.subject_id for r in results[::2]] == ["s0", "s2", "s4"]  # the live ones find themselves
    assert all(c.subject_index % 2 == 0 for r in results for c in r.candidates)
    assert all(len(r.candidates) == 3 for r in results)


@pytest.mark.parametrize("people, rows_each, k", [(64, 70, 2), (40, 120, 2), (64, 70, 3), (3, 1500, 5)])
def test_int8_search_with_few_subjects_of_many_rows_keeps_every_runner_up(people: int, rows_each: int,
                                                                          k: int) -> None:
    """Few subjects in the first block, each with many rows: the first floor must not rise above the k-th best."""
    rows = unit_rows(people * rows_each, seed=15)
    per_subject = np.split(rows, people)
    gallery = Gallery.from_subjects([(f"s{i}", "", r) for i, r in enumerate(per_subject)])
    assert len(gallery.owner) >= INT8_MIN_ROWS
    probes = rows[::rows_each][:8] + 0.3 * unit_rows(8, seed=16)[: min(8, people)]
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    expected = reference(per_subject, probes)
    for row, result in zip(expected, match(gallery, probes, now=0.0, k=k), strict=True):
        order = np.argsort(-row, kind="stable")[:k]
        assert [c.subject_index for c in result.candidates] == order.tolist()
        np.testing.assert_allclose([c.score for c in result.candidates], row[order], atol=1e-5)
