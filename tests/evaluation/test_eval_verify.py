"""`edge eval verify` on a real slice of LFW's pairs: JSON report, accuracy, ROC plot."""

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.cli import main
from edge.config.embedder import DEFAULT_EMBEDDER
from edge.config.match import MatchConfig
from edge.evaluation import plots
from edge.models import ENGINES_DIR
from edge.watchlist.calibration import Calibration, ThresholdPolicy, calibration_path


def test_verify_slice_reports_high_accuracy_and_plots(data_dir: Path, eval_cache: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    figures: list[Any] = []
    real_figure = plots.roc_figure

    def kept_figure(*args: Any) -> Any:  # the real figure, kept to look at what it draws
        figures.append(real_figure(*args))
        return figures[-1]

    monkeypatch.setattr(plots, "roc_figure", kept_figure)
    out, plot = tmp_path / "verify.json", tmp_path / "roc.png"
    rc = main(["eval", "verify", "--lfw", str(data_dir / "lfw"), "--pairs", str(data_dir / "lfw_meta" / "pairs.txt"),
               "--per-class", "2", "--report", str(out), "--plot", str(plot), "--cache", str(eval_cache),
               "--threads", "2"])
    assert rc == 0
    report = json.loads(out.read_text())
    for key in ("accuracy_mean", "accuracy_std", "threshold", "tar_at_far_1e-2", "tar_at_far_1e-3", "auc", "pairs",
                "failed_images", "fold_thresholds", "embedder_sha256"):
        assert key in report
    assert report["pairs"] == 40 and report["matched_pairs"] == 20
    assert report["accuracy_mean"] > 0.9
    assert report["auc"] > 0.95
    assert 0.0 < report["threshold"] < 0.9
    # 20 impostor pairs cannot measure a 1-in-100 false accept rate
    assert report["tar_at_far_1e-2"] is None and report["tar_at_far_1e-3"] is None
    assert report["failed_images"]["count"] == 0 and "counted_as" in report["failed_images"]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # The device's operating thresholds, from the shipped calibration table with the default [match] policy,
    # are in the report and marked on the ROC, one labelled marker each where they fall on these pairs.
    cal = Calibration.load(calibration_path(ENGINES_DIR, DEFAULT_EMBEDDER))
    policy = ThresholdPolicy(MatchConfig(), cal, DEFAULT_EMBEDDER)
    sizes = sorted({p.gallery_size for p in cal.points})
    expected = [("floor", policy.floor), ("fixed default", policy.threshold)] + [
        (f"FPIR 0.001 at {n} people", policy.for_gallery(n).value) for n in sizes]
    points = report["operating_points"]
    assert [(p["label"], p["threshold"]) for p in points] == expected and len(sizes) >= 2
    [figure] = figures
    marked = {line.get_label(): line for line in figure.axes[0].get_lines() if line.get_marker() not in ("None", "")}
    assert len(marked) == len(expected)
    for p in points:
        [line] = [line for label, line in marked.items() if label.startswith(f"{p['label']} {p['threshold']:.3f}: ")]
        assert (line.get_xdata()[0], line.get_ydata()[0]) == (p["far"] or 0.5 / 20, p["tar"])  # FAR 0: half of 1/20
        assert f"TAR {100 * p['tar']:.1f} %" in line.get_label()


def test_roc_axis_label_fits_in_the_saved_figure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The x label explaining the markers (and where FAR 0 is drawn) is read whole, not cut at the right edge."""
    figures: list[Any] = []
    real_figure = plots.roc_figure
    monkeypatch.setattr(plots, "roc_figure", lambda *a: figures.append(real_figure(*a)) or figures[-1])
    far, tar = np.array([0.0, 1 / 80, 1.0]), np.array([0.9, 1.0, 1.0])
    marks = [("floor 0.450: TAR 98.8 %, FAR 0 of 80", 0.0, 0.988), ("fixed 0.510", 0.0, 0.97)]
    plots.roc_plot(tmp_path / "roc.png", {"sface_128, flip none: 100.00 %": (far, tar)}, "t", marks, far_zero=0.5 / 80)
    [figure] = figures
    figure.canvas.draw()
    label = figure.axes[0].xaxis.label
    assert "FAR 0 drawn at 6.3e-03" in label.get_text()
    box = label.get_window_extent()
    assert box.x0 >= 0 and box.x1 <= figure.bbox.x1, (box, figure.bbox)


def test_roc_legend_hides_no_threshold_marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A small run puts FAR 0 at 1/(2 x impostor pairs), under where a lower-right legend sat: each marker shows."""
    figures: list[Any] = []
    real_figure = plots.roc_figure
    monkeypatch.setattr(plots, "roc_figure", lambda *a: figures.append(real_figure(*a)) or figures[-1])
    far, tar = np.array([0.0, 1 / 80, 1.0]), np.array([0.9, 1.0, 1.0])
    marks = [(f"{what}: TAR {100 * t:.1f} %, FAR 0 of 80", 0.0, t) for what, t in (
        ("floor 0.450", 0.988), ("fixed default 0.510", 0.988), ("FPIR 0.001 at 100 people 0.480", 0.988),
        ("FPIR 0.001 at 500 people 0.520", 0.975), ("FPIR 0.001 at 1680 people 0.563", 0.912))]
    plots.roc_plot(tmp_path / "roc.png", {"sface_128, flip none: 100.00 %": (far, tar)}, "t", marks,
                   far_zero=0.5 / 80)
    [figure] = figures
    figure.canvas.draw()
    ax = figure.axes[0]
    legend = ax.get_legend().get_window_extent()
    for line in ax.get_lines()[1:]:
        x, y = ax.transData.transform((line.get_xdata()[0], line.get_ydata()[0]))
        assert not legend.contains(x, y), f"{line.get_label()} is under the legend"
