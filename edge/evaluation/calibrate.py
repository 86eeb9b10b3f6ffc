"""Thresholds that hold a false-alarm rate as the watchlist grows: the table `Calibration` reads.

Same searches as `edge eval identify`, on random subsets of the gallery people (fixed seed). A smaller
gallery's threshold is the mean over several draws, so one lucky subset does not set it.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.config.tomlio import tomllib
from edge.errors import ConfigError, EdgeError
from edge.evaluation.embedcache import EmbedCache
from edge.evaluation.identify import Flip, Protocol, search
from edge.evaluation.verify import threshold_at_rate
from edge.fsio import write_atomic
from edge.runtime.progress import progress as progress_bar
from edge.watchlist.calibration import FIXED_AT, FLOOR_AT, Calibration, CalibrationPoint
from edge.watchlist.demographics import Demographics

SIZES = (100, 500, 1680)
DEMOGRAPHICS_MARK = "# Per-group errors measured"
FPIRS = (1e-1, 1e-2, 3e-3, 1e-3)


@dataclass(frozen=True)
class MeasuredPoint:
    """A calibration point with what it costs: the FNIR at that threshold (mean over draws)."""

    gallery_size: int
    fpir: float
    threshold: float
    fnir: float
    draws: int


@dataclass(frozen=True)
class FixedPoint:
    """What a fixed threshold stands for at one gallery size (means over draws)."""

    gallery_size: int
    threshold: float
    fpir: float
    fnir: float
    searches: int  # non-mated searches behind the FPIR, all draws together


def measure(cache: EmbedCache, protocol: Protocol, sizes: tuple[int, ...] = SIZES, fpirs: tuple[float, ...] = FPIRS,
            flip: Flip = "enroll", seed: int = 0, repeats: int = 5, progress: bool = True,
            at: tuple[float, ...] = ()) -> tuple[list[MeasuredPoint], list[FixedPoint]]:
    """Threshold and FNIR at each (gallery size, FPIR), and FPIR and FNIR at each fixed threshold in `at`.

    Sizes above the gallery are refused."""
    people = sorted(g.identity for g in protocol.gallery)
    too_big = [s for s in sizes if s > len(people)]
    if too_big:
        raise EdgeError(f"gallery sizes {too_big} exceed the {len(people)} people available to enroll; "
                        "give smaller --sizes")
    if any(len(protocol.non_mated) * f < 1 for f in fpirs):
        raise EdgeError(f"{len(protocol.non_mated)} non-mated probes cannot measure FPIR {min(fpirs):g}: "
                        "give more non-mated people or larger --fpir values")
    rng = np.random.default_rng(seed)
    points, fixed = [], []
    jobs = [(size, 1 if size == len(people) else repeats) for size in sizes]
    bar = progress_bar(total=sum(n for _, n in jobs), desc="calibrating", unit="gallery", enabled=progress)
    for size, draws in jobs:
        thresholds = np.zeros((draws, len(fpirs)))
        fnirs = np.zeros((draws, len(fpirs)))
        enrolled = []
        at_rates = np.zeros((draws, len(at), 2))
        searches = 0
        for d in range(draws):
            chosen = set(rng.choice(people, size, replace=False)) if size < len(people) else set(people)
            s, gallery = search(cache, protocol.subset(chosen), flip)
            enrolled.append(gallery.size)
            for j, f in enumerate(fpirs):
                t = threshold_at_rate(s.non_mated_scores, f)
                if t is None:
                    raise EdgeError(f"too few non-mated probes with a face to measure FPIR {f:g}")
                thresholds[d, j], fnirs[d, j] = t, s.fnir(t)
            for k, t in enumerate(at):
                at_rates[d, k] = s.fpir(t), s.fnir(t)
            searches += len(s.non_mated_scores)
            bar.update()
        for j, f in enumerate(fpirs):
            points.append(MeasuredPoint(round(float(np.mean(enrolled))), f, round(float(thresholds[:, j].mean()), 4),
                                        round(float(fnirs[:, j].mean()), 4), draws))
        fixed += [FixedPoint(points[-1].gallery_size, t, float(at_rates[:, k, 0].mean()),
                             float(at_rates[:, k, 1].mean()), searches) for k, t in enumerate(at)]
    bar.close()
    return points, fixed


def calibration_toml(points: list[MeasuredPoint], embedder: str, embedder_sha256: str, dataset: str,
                     command: str, demographics: Demographics | None = None) -> str:
    """The table as TOML (validated by `Calibration` before it is returned); FNIR goes in comments."""
    model = Calibration.measured(embedder, embedder_sha256, dataset, command,
                                 [CalibrationPoint(gallery_size=p.gallery_size, fpir=p.fpir, threshold=p.threshold)
                                  for p in points], demographics)
    lines = [
        f"# Thresholds measured with `edge eval calibrate` for {embedder}: at each watchlist size, the cosine",
        "# at which the given fraction of non-mated searches (passers-by) raises an alert (FPIR).",
        "# Read by edge.watchlist.calibration.Calibration; a table for another model file is refused.",
        "",
        f"embedder = {_q(model.embedder)}",
        f"embedder_sha256 = {_q(model.embedder_sha256)}",
        f"dataset = {_q(model.dataset)}",
        f"command = {_q(model.command)}",
        "",
        f"# The floor: at FPIR {FLOOR_AT[1]:g} for {FLOOR_AT[0]} people, rounded up. No threshold below it is "
        "accepted.",
        f"floor = {model.floor!r}",
        f"# The default fixed threshold (match.mode = 'fixed'): at FPIR {FIXED_AT[1]:g} for {FIXED_AT[0]} people, "
        "rounded up.",
        f"fixed_threshold = {model.fixed_threshold!r}",
    ]
    for p in points:
        lines += ["", f"# FNIR {100 * p.fnir:.1f} % at this point (mean of {p.draws} draw{'s' if p.draws > 1 else ''})",
                  "[[points]]", f"gallery_size = {p.gallery_size}", f"fpir = {p.fpir!r}",
                  f"threshold = {p.threshold!r}"]
    if model.demographics is not None:
        lines += demographics_toml(model.demographics)
    return "\n".join(lines) + "\n"


def demographics_toml(demo: Demographics) -> list[str]:
    """The [demographics] section: errors per group at each threshold of the grid, and of how many searches."""
    lines = ["", DEMOGRAPHICS_MARK + " with `edge eval demographics` (counts at each threshold below). The policy",
             "# raises the floor until no race or gender group's false alarms can exceed match.group_ceiling.",
             "[demographics]", f"embedder_sha256 = {_q(demo.embedder_sha256)}", f"dataset = {_q(demo.dataset)}",
             f"command = {_q(demo.command)}", f"watchlist_size = {demo.watchlist_size}",
             f"thresholds = [{', '.join(repr(t) for t in demo.thresholds)}]"]
    for kind in ("false_alarms", "misses"):
        for c in getattr(demo, kind):
            lines += ["", f"[[demographics.{kind}]]", f"data = {_q(c.data)}", f"attribute = {_q(c.attribute)}",
                      f"group = {_q(c.group)}", f"trials = {c.trials}", f"errors = [{', '.join(map(str, c.errors))}]"]
    return lines


def _q(text: str) -> str:
    """A TOML basic string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def kept_demographics(path: Path, embedder_sha256: str) -> tuple[Demographics | None, str]:
    """The per-group section of the table being replaced when it was measured with the same model file, and what
    became of it, in words."""
    if not path.is_file():
        return None, "it has no per-group section yet"
    try:
        old = Calibration.load(path)
    except ConfigError as exc:
        return None, f"the per-group section of the table it replaced was dropped, that table did not load ({exc})"
    if old.demographics is None:
        return None, "it has no per-group section yet"
    if old.embedder_sha256 != embedder_sha256:
        return None, "the per-group section of the table it replaced was dropped: measured with another model file"
    return old.demographics, "its per-group section was kept"


def with_demographics(path: Path, demo: Demographics, embedder_sha256: str) -> str:
    """The table at `path` with its [demographics] section replaced (the LFW points and their notes kept)."""
    old = Calibration.load(path)
    if old.embedder_sha256 != embedder_sha256:
        raise EdgeError(f"{path} was measured for another model file: run `edge eval calibrate` for this one first")
    text = path.read_text().split("\n" + DEMOGRAPHICS_MARK)[0].rstrip("\n")
    text = text + "\n" + "\n".join(demographics_toml(demo)) + "\n"
    try:
        Calibration(**tomllib.loads(text))  # refuse to write what the device would refuse to read
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        raise EdgeError(f"{path} not changed: with the new per-group section it would not load ({exc}); if its "
                        f"[demographics] section was edited by hand, delete that section and run again") from exc
    return text


def write_calibration(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text.encode(), mode=None)
    return path
