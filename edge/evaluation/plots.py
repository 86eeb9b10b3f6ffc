"""ROC (verification) and DET (identification) plots as PNG; matplotlib is imported only when a plot is asked for."""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import EdgeError
from edge.watchlist.demographics import wilson


def _pyplot() -> Any:
    try:
        import matplotlib
    except ModuleNotFoundError as exc:
        raise EdgeError("plots need matplotlib: `pip install matplotlib` (or `pip install edge[eval]`), "
                        "or leave out --plot") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


_MARKERS = ("o", "s", "D", "^", "v", "P", "X", "*")


def roc_plot(path: Path, curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str,
             marks: Sequence[tuple[str, float, float]] = (), far_zero: float = 1e-4) -> Path:
    """TAR against FAR (log scale), one line per label: (far, tar); `marks` (label, far, tar) are the device's
    operating thresholds, one labelled marker each (FAR 0, which a log scale cannot show, drawn at `far_zero`)."""
    plt = _pyplot()
    fig = roc_figure(plt, curves, marks, far_zero)
    return _finish(plt, fig, fig.axes[0], path, title)  # "best": the legend clear of the markers


def roc_figure(plt: Any, curves: dict[str, tuple[np.ndarray, np.ndarray]], marks: Sequence[tuple[str, float, float]],
               far_zero: float) -> Any:
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=110)
    for label, (far, tar) in curves.items():
        keep = far > 0
        ax.plot(far[keep], tar[keep], label=label)
    for i, (label, far, tar) in enumerate(marks):
        ax.plot([far or far_zero], [tar], marker=_MARKERS[i % len(_MARKERS)], ls="none", color="black",
                mfc="none", ms=7, mew=1.3, label=label, zorder=3, clip_on=False)
    ax.set_xscale("log")
    ax.set_xlim(min(1e-4, far_zero), 1)
    zero = f", FAR 0 drawn at {far_zero:.1e}" if any(far == 0 for _, far, _ in marks) else ""
    ax.set_xlabel("false accept rate (FAR)" + (f"\nmarkers: the device's thresholds{zero}" if marks else ""))
    ax.set_ylabel("true accept rate (TAR)")
    return fig


def det_plot(path: Path, curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str,
             floor: float = 1e-3) -> Path:
    """FNIR against FPIR, both log scale, one line per label: (fpir, fnir); FNIR 0 is drawn at `floor`."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=110)
    for label, (fpir, fnir) in curves.items():
        keep = fpir > 0
        ax.plot(fpir[keep], np.maximum(fnir[keep], floor), label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(1e-4, 1)
    ax.set_ylim(floor, 1)
    ax.set_xlabel("false positive identification rate (FPIR)")
    ax.set_ylabel("false negative identification rate (FNIR)")
    return _finish(plt, fig, ax, path, title)


def resolution_plot(path: Path, report: dict[str, Any]) -> Path:
    """FNIR (with and without the quality gate), detection and gate rates against eye distance (no blur)."""
    plt = _pyplot()
    rows = [r for r in report["levels"] if not r["blur_sigma"]]
    x = [r["eye_distance"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=110)
    for key in report["thresholds"]:
        if not key.startswith("fpir_"):
            continue
        for mode, style in (("with_gate", "-"), ("without_gate", "--")):
            ax.plot(x, [r[mode][key]["fnir"] for r in rows], style, marker="o", ms=3,
                    label=f"FNIR at {key.replace('_', ' ')} ({report['thresholds'][key]}), {mode.replace('_', ' ')}")
    ax.plot(x, [r["detected"] for r in rows], ":", color="grey", label="detected")
    ax.plot(x, [r["passed_gate"] for r in rows], ":", color="black", label="through the gate")
    ax.axvline(report["quality_gate"]["min_eye_distance"], color="red", alpha=0.3)
    ax.set_ylim(0, 1)
    ax.set_xlabel("eye distance in the frame (px)")
    ax.set_ylabel("rate")
    return _finish(plt, fig, ax, path, f"{report['embedder']}, gallery {report['gallery_size']}, "
                                       f"{report['sample']['mated']} mated probes per level")


def demographics_plot(path: Path, report: dict[str, Any], floor: float = 1e-4) -> Path:
    """False-alarm rate (left, log scale; 0 drawn at `floor`) and miss rate (right) against threshold, one line per
    race group with its 95 % interval shaded; the device's thresholds after the group policy as dotted lines."""
    plt = _pyplot()
    curves = report["curves"]
    x = np.array(curves["thresholds"])
    misses = [c for c in curves["misses"] if c["data"] == "lfw"] or curves["misses"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), dpi=110)
    panels = ((axes[0], curves["false_alarms"], "false alarms per passer-by (UTKFace vs London list)", True),
              (axes[1], misses, f"misses per mated search ({misses[0]['data'] if misses else 'none'})", False))
    for ax, rows, ylabel, log in panels:
        for c in rows:
            if c["attribute"] not in ("all", "race"):
                continue
            rate = np.array(c["errors"]) / c["trials"]
            low, high = (np.array(v) for v in zip(*(wilson(int(e), c["trials"]) for e in c["errors"]), strict=True))
            line, = ax.plot(x, np.maximum(rate, floor) if log else rate, lw=2.2 if c["attribute"] == "all" else 1.2,
                            label=f"{c['group']} (n={c['trials']})")
            ax.fill_between(x, np.maximum(low, floor) if log else low, high, color=line.get_color(), alpha=0.1)
        for row in report["at_thresholds"]:
            if row["policy"].startswith("after"):
                ax.axvline(row["threshold"], color="grey", lw=0.7, ls=":")
        if log:
            ax.set_yscale("log")
            ax.set_ylim(floor, 1)
        else:
            ax.set_ylim(0, 1)
        ax.set_xlim(0.3, 0.7)
        ax.set_xlabel("threshold (cosine); dotted: the device's thresholds")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{report['embedder']}: error rates by race group, 95 % Wilson intervals shaded", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _finish(plt: Any, fig: Any, ax: Any, path: Path, title: str, legend: str = "best") -> Path:
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7 if len(ax.get_legend_handles_labels()[1]) > 4 else 8, loc=legend)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def stream_plot(path: Path, report: dict[str, Any]) -> Path:
    """`edge eval stream`: track FNIR against false alerts per 1000 passers-by as the threshold moves; the run's
    own threshold marked."""
    plt = _pyplot()
    rows = [r for r in report["curve"] if r["false_alerts_per_1000_passers"] is not None]
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=110)
    ax.plot([r["false_alerts_per_1000_passers"] for r in rows], [r["track_fnir"] for r in rows], marker=".",
            label="as the threshold moves")
    at = next((r for r in rows if r["threshold"] == report["settings"]["threshold"]), None)
    if at is not None:
        ax.plot([at["false_alerts_per_1000_passers"]], [at["track_fnir"]], "o", color="red",
                label=f"device threshold {at['threshold']:.3f}")
    ax.set_xlabel("false alerts per 1000 passers-by")
    ax.set_ylabel("track FNIR (listed crossings never alerted)")
    s = report["settings"]
    return _finish(plt, fig, ax, path, f"{s['profile']['name']}: {s['enrolled']} listed, "
                                       f"{report['passer_tracks']} passers, {s['embedder']}")


def edc_plot(path: Path, report: dict[str, Any]) -> Path:
    """`edge eval quality`: FNIR of the faces kept against the fraction rejected, one line per quality factor at
    the device's default threshold, the ideal (misses rejected first) dashed, each factor's chosen limit marked."""
    plt = _pyplot()
    key = report["rule_at"]
    fig, ax = plt.subplots(figsize=(7, 5), dpi=110)
    base = report["all_found"][key]["fnir"]
    x = np.linspace(0, 0.9, 91)
    ax.plot(x, [max(0.0, (base - r) / (1 - r)) for r in x], "--", color="black", label="ideal (misses first)")
    for i, (name, f) in enumerate(report["factors"].items()):
        pts = f["curves"][key]
        line, = ax.plot([p["rejected"] for p in pts], [p["fnir"] for p in pts], label=name)
        rule = f["rule"]
        if rule["predicts_error"]:
            ax.plot([rule["rejected"]], [rule["fnir_kept"]], _MARKERS[i % len(_MARKERS)], color=line.get_color(),
                    ms=6, label=f"{name} limit {rule['limit']:.3g}")
    ax.set_xlim(0, 0.9)
    ax.set_ylim(0, max(0.05, 1.1 * base))
    ax.set_xlabel("fraction of the mated faces found rejected (worst first by the factor)")
    ax.set_ylabel(f"FNIR of the faces kept, threshold at {key.replace('_', ' ')}")
    s = report["sample"]
    return _finish(plt, fig, ax, path, f"{report['embedder']}: error versus reject, {s['found_mated']} mated faces "
                                       f"found, detector {report['detector_long_side']}", legend="upper right")
