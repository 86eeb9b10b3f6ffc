"""Thresholds from measured error rates: fixed, or held at a constant false-alarm rate as the list grows.

The table (engines/calibration.toml) is measured with `edge eval calibrate` on LFW: for each gallery size,
the threshold at which a given fraction of non-mated searches (passers-by) raise an alert (FPIR).
"""

import math
from pathlib import Path

import numpy as np

from edge.config.base import StrictModel
from edge.config.match import MatchConfig
from edge.config.tomlio import load_toml
from edge.errors import ConfigError
from edge.track.decision import Threshold


class CalibrationPoint(StrictModel):
    gallery_size: int
    fpir: float
    threshold: float


class Calibration(StrictModel):
    """Measured (gallery size, FPIR, threshold) points for one embedder."""

    embedder: str
    embedder_sha256: str
    dataset: str
    command: str
    points: list[CalibrationPoint]

    @classmethod
    def load(cls, path: Path) -> "Calibration":
        return cls(**load_toml(path))

    def _curve(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """log10 FPIR and threshold at this gallery size, interpolated in log10(size) between measured sizes."""
        sizes = sorted({p.gallery_size for p in self.points})
        fpirs = sorted({p.fpir for p in self.points}, reverse=True)
        table = {(p.gallery_size, p.fpir): p.threshold for p in self.points}
        x = math.log10(max(size, 1))
        xs = np.log10(sizes)
        thresholds = []
        for f in fpirs:
            ys = np.array([table[(s, f)] for s in sizes])
            if len(xs) == 1:
                thresholds.append(ys[0])
            elif x > xs[-1]:  # extrapolate with the slope of the last two measured sizes
                thresholds.append(ys[-1] + (ys[-1] - ys[-2]) / (xs[-1] - xs[-2]) * (x - xs[-1]))
            elif x < xs[0]:
                thresholds.append(ys[0] + (ys[1] - ys[0]) / (xs[1] - xs[0]) * (x - xs[0]))
            else:
                thresholds.append(float(np.interp(x, xs, ys)))
        return np.log10(fpirs), np.array(thresholds)

    def threshold_at(self, size: int, fpir: float) -> float:
        log_f, thr = self._curve(size)
        order = np.argsort(log_f)
        return float(np.interp(math.log10(fpir), log_f[order], thr[order]))

    def fpir_at(self, size: int, threshold: float) -> tuple[float, bool]:
        """Estimated FPIR at this threshold, and whether it is only an upper bound.

        Above the highest measured threshold the table cannot say how rare false alarms become (the
        non-mated probes run out), so the smallest measured FPIR is returned as a bound.
        """
        log_f, thr = self._curve(size)
        order = np.argsort(thr)
        x, y = thr[order], log_f[order]
        return float(10 ** np.interp(threshold, x, y)), bool(threshold > x[-1])


class ThresholdPolicy:
    """Turns the [match] config and the calibration table into the threshold for a watchlist's size."""

    def __init__(self, cfg: MatchConfig, calibration: Calibration | None) -> None:
        if cfg.mode == "constant_fpir" and calibration is None:
            raise ConfigError(
                "match.mode = 'constant_fpir' needs a calibration table for this embedder "
                "(engines/calibration-<embedder>.toml, made by `edge eval calibrate`); none was found"
            )
        self.cfg = cfg
        self.calibration = calibration

    def for_gallery(self, size: int) -> Threshold:
        cal = self.calibration
        if self.cfg.mode == "constant_fpir" and cal is not None:
            value = max(self.cfg.floor, cal.threshold_at(size, self.cfg.target_fpir))
            fpir, bound = cal.fpir_at(size, value)
            return Threshold(round(value, 4), fpir, "constant_fpir", bound)
        if cal is None or size == 0:
            return Threshold(self.cfg.threshold, None, "fixed")
        fpir, bound = cal.fpir_at(size, self.cfg.threshold)
        return Threshold(self.cfg.threshold, fpir, "fixed", bound)


def calibration_path(engines_dir: Path, embedder: str) -> Path:
    return engines_dir / f"calibration-{embedder}.toml"


def load_policy(cfg: MatchConfig, engines_dir: Path, embedder: str, embedder_sha256: str) -> ThresholdPolicy:
    """The policy for this embedder; a table made for another model file is ignored with an error."""
    path = calibration_path(engines_dir, embedder)
    cal = Calibration.load(path) if path.is_file() else None
    if cal is not None and cal.embedder_sha256 != embedder_sha256:
        raise ConfigError(f"{path} was measured for another {embedder} file; re-run `edge eval calibrate`")
    return ThresholdPolicy(cfg, cal)
