"""`edge eval quality`: the error-versus-reject curve and the rule that reads a limit off it, on hand-made data
whose answer is known; then the command end to end on a small real watchlist built from LFW."""

import json
from pathlib import Path

import numpy as np
import pytest

from edge.cli import main
from edge.evaluation.edc import choose, edc, ideal
from edge.evaluation.quality_eval import FACTORS, GAIN_RANGE, MAX_BLUR, SIZE_RANGE, darken, shots


def _faces(n: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A quality that predicts misses (below 0.2 a face misses 80 % of the time, above it 5 %) and one drawn
    independently of them."""
    rng = np.random.default_rng(seed)
    good = rng.uniform(0, 1, n)
    miss = rng.random(n) < np.where(good < 0.2, 0.8, 0.05)
    return good, rng.uniform(0, 1, n), miss


def test_a_factor_that_predicts_misses_gives_a_falling_curve_and_a_random_one_a_flat_curve() -> None:
    good, noise, miss = _faces()
    base = miss.mean()
    falling, flat = edc(good, miss), edc(noise, miss)
    assert falling[0].rejected == 0 and falling[0].fnir == pytest.approx(base)
    at20 = next(p for p in falling if p.rejected >= 0.2)
    assert at20.fnir < 0.4 * base  # the misses go first
    assert at20.fnir >= ideal(base, at20.rejected)  # never better than rejecting only misses
    assert all(abs(p.fnir - base) < 0.05 for p in flat if p.rejected <= 0.5)
    assert [p.limit for p in falling] == sorted(p.limit for p in falling)  # rejecting more means a stricter limit


def test_lower_is_better_factors_reject_the_largest_values() -> None:
    good, _, miss = _faces()
    yaw = 1 - good  # a large yaw is the bad end
    assert [p.fnir for p in edc(yaw, miss, higher_is_better=False)] == [p.fnir for p in edc(good, miss)]
    picked = choose(yaw, miss, higher_is_better=False)
    assert picked.limit == pytest.approx(0.8, abs=0.02)  # rejects yaw above about 0.8


def test_the_rule_stops_where_rejecting_more_stops_paying() -> None:
    good, noise, miss = _faces()
    picked = choose(good, miss)
    # the bad faces end at 0.2: rejecting them pays, rejecting good ones after them does not
    assert picked.predicts_error and picked.limit == pytest.approx(0.2, abs=0.02)
    assert picked.rejected == pytest.approx(0.2, abs=0.02) and picked.fnir_kept < 0.08 and picked.gain > 2
    not_predictive = choose(noise, miss)
    assert not not_predictive.predicts_error and not_predictive.limit is None and not_predictive.rejected == 0
    assert not_predictive.fnir_kept == pytest.approx(miss.mean())


def test_the_rule_never_rejects_more_than_its_cap() -> None:
    ranks = np.arange(1000.0)
    miss = ranks < 300  # the worst 30 % all miss, the rest never: each slice of them is worth rejecting
    assert choose(ranks, miss).rejected == pytest.approx(0.3)
    assert choose(ranks, miss, max_reject=0.2).rejected == pytest.approx(0.2)


def test_each_probe_gets_its_own_seeded_camera_condition() -> None:
    eyes = np.full(400, 40.0)
    plan = shots(eyes, seed=3)
    assert plan == shots(eyes, seed=3) and plan != shots(eyes, seed=4)
    sizes = np.array([s.cond.eye_distance for s in plan])
    blurs, gains = np.array([s.cond.blur for s in plan]), np.array([s.gain for s in plan])
    assert SIZE_RANGE[0] <= sizes.min() and sizes.max() <= SIZE_RANGE[1] and sizes.std() > 5  # the factors vary
    assert 0.3 < (blurs == 0).mean() < 0.5 and blurs.max() <= MAX_BLUR
    assert 0.3 < (gains == 1).mean() < 0.5 and gains.min() >= GAIN_RANGE[0]
    assert max(s.cond.eye_distance for s in shots(np.full(50, 20.0), seed=3)) <= 20  # never above the photo's own
    frame = np.full((4, 4, 3), 200, np.uint8)
    assert darken(frame, 0.25).max() == 50 and darken(frame, 1.0) is frame


def test_quality_report_and_plot_on_a_slice(lfw_slice: Path, eval_cache: Path, tmp_path: Path,
                                           listed: tuple[str, ...]) -> None:
    out, plot = tmp_path / "quality.json", tmp_path / "quality.png"
    assert main(["eval", "quality", "--lfw", str(lfw_slice), "--probes-per-class", "4", "--report", str(out),
                 "--plot", str(plot), "--cache", str(eval_cache), "--threads", "2"]) == 0
    report = json.loads(out.read_text())
    assert report["gallery_size"] == len(listed)
    assert report["sample"]["mated"] == 4 and report["sample"]["non_mated"] == 2
    assert set(report["factors"]) == {f.name for f in FACTORS}
    for f in report["factors"].values():
        curve = f["curves"]["fpir_1e-3"]
        assert curve[0]["rejected"] == 0 and curve[0]["fnir"] == report["all_found"]["fpir_1e-3"]["fnir"]
        assert all(0 <= p["rejected"] <= 1 for p in curve)
        assert f["table"] and {"limit", "rejected", "fpir_1e-2", "fpir_1e-3"} <= set(f["table"][0])
    assert report["factors"]["size"]["current_limit"] == report["quality_config"]["min_eye_distance"]
    assert "| size |" in report["table"] and report["rule"].startswith("The limit is chosen by one rule")
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
