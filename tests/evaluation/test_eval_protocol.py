"""LFW protocol logic on synthetic scores with known answers, and pairs.txt parsing on the real file."""

from pathlib import Path

import numpy as np
import pytest

from edge.errors import EdgeError
from edge.evaluation.lfw import best_threshold, parse_pairs, ten_fold
from edge.evaluation.verify import auc, threshold_at_rate


def test_best_threshold_picks_the_most_accurate_cut_lowest_on_ties() -> None:
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    same = np.array([False, False, True, False, True, True])
    # cutting at 0.25 or at 0.45 both misclassify one pair; the lower cut wins
    assert best_threshold(scores, same) == pytest.approx(0.25)
    # inverted labels: no cut beats accepting (or rejecting) everything, 3 of 6; the lowest wins
    assert best_threshold(scores, ~same) < 0.1


def test_best_threshold_handles_ties_in_scores() -> None:
    scores = np.array([0.5, 0.5, 0.5, 0.9])
    same = np.array([False, False, True, True])
    t = best_threshold(scores, same)
    assert 0.5 < t < 0.9  # a tie cannot be split: reject all three 0.5s, accept 0.9 (3 of 4 right)


def test_ten_fold_chooses_on_nine_folds_and_scores_the_tenth() -> None:
    rng = np.random.default_rng(0)
    folds = np.repeat(np.arange(10), 20)
    same = np.tile(np.r_[np.ones(10, bool), np.zeros(10, bool)], 10)
    scores = np.where(same, rng.uniform(0.6, 0.9, 200), rng.uniform(0.0, 0.3, 200))
    # fold 3 holds one impostor scoring above every genuine pair: only that fold loses exactly one pair
    scores[3 * 20 + 15] = 0.95
    result = ten_fold(scores, same, folds)
    expected = np.ones(10)
    expected[3] = 19 / 20
    np.testing.assert_allclose(result.accuracies, expected)
    assert result.mean == pytest.approx(0.995)
    clean = scores[same].min(), np.delete(scores[~same], np.flatnonzero(scores[~same] > 0.9)).max()
    assert all(clean[1] < t < clean[0] for t in result.thresholds)


def test_threshold_at_rate_allows_at_most_that_fraction() -> None:
    negatives = np.arange(1000) / 1000.0  # 0.000 .. 0.999
    t = threshold_at_rate(negatives, 1e-2)
    assert (negatives >= t).sum() == 10
    t = threshold_at_rate(negatives, 1e-3)
    assert t is not None and (negatives >= t).sum() == 1
    assert threshold_at_rate(negatives[:50], 1e-2) is None  # 50 negatives cannot measure 1 in 100


def test_auc_is_the_probability_a_genuine_pair_outscores_an_impostor() -> None:
    scores = np.array([0.9, 0.4, 0.5, 0.1])
    same = np.array([True, True, False, False])
    assert auc(scores, same) == pytest.approx(0.75)  # 0.9 beats both, 0.4 beats only 0.1


def test_parse_pairs_slice_keeps_both_classes_in_every_fold(data_dir: Path) -> None:
    pairs = parse_pairs(data_dir / "lfw_meta" / "pairs.txt", data_dir / "lfw", per_class=2)
    assert len(pairs) == 40
    assert sorted({p.fold for p in pairs}) == list(range(10))
    for fold in range(10):
        assert [p.same for p in pairs if p.fold == fold] == [True, True, False, False]
    assert pairs[0].a.name == "Abel_Pacheco_0001.jpg" and pairs[0].b.name == "Abel_Pacheco_0004.jpg"
    full = parse_pairs(data_dir / "lfw_meta" / "pairs.txt", data_dir / "lfw")
    assert len(full) == 6000 and sum(p.same for p in full) == 3000


def test_parse_pairs_refuses_malformed_files_and_missing_images(tmp_path: Path, data_dir: Path) -> None:
    bad = tmp_path / "pairs.txt"
    bad.write_text("1\t1\nAbel_Pacheco\t1\n Someone\t1\tElse\t1\n")
    with pytest.raises(EdgeError, match="line 2 should be a matched"):
        parse_pairs(bad, data_dir / "lfw")
    bad.write_text("1\t1\nNobody_Here\t1\t2\nAbel_Pacheco\t1\tDean_Barker\t1\n")
    with pytest.raises(EdgeError, match="are not under"):
        parse_pairs(bad, data_dir / "lfw")
    bad.write_text("pairs\n")
    with pytest.raises(EdgeError, match="first line"):
        parse_pairs(bad, data_dir / "lfw")
