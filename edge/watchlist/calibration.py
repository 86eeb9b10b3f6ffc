"""Thresholds from measured error rates: fixed, or held at a constant false-alarm rate as the list grows.

The table (engines/calibration-<embedder>.toml) is measured with `edge eval calibrate` on LFW: for each gallery
size, the threshold at which a given fraction of non-mated searches (passers-by) raise an alert (FPIR). The
embedder's floor and default fixed threshold follow from the table by the rules below, so they are re-derived
with every new embedder and never carried over from another.
"""

import math
from pathlib import Path

import numpy as np
from pydantic import Field, model_validator

from edge.config.base import StrictModel
from edge.config.match import MatchConfig
from edge.config.tomlio import load_toml
from edge.errors import ConfigError
from edge.track.decision import Threshold

# Below the floor even a 100-person list alarms on 1 passer-by in 100; the default fixed threshold holds
# 1 in 1,000 at 500 people. Both are rounded up to two decimals (a higher threshold: fewer false alarms).
FLOOR_AT = (100, 1e-2)
FIXED_AT = (500, 1e-3)


class CalibrationPoint(StrictModel):
    gallery_size: int = Field(ge=1)
    fpir: float = Field(gt=0.0, lt=1.0, allow_inf_nan=False)
    threshold: float = Field(ge=-1.0, le=1.0, allow_inf_nan=False)


class Calibration(StrictModel):
    """Measured (gallery size, FPIR, threshold) points for one embedder."""

    embedder: str
    embedder_sha256: str
    dataset: str
    command: str
    floor: float = Field(description=f"threshold at FPIR {FLOOR_AT[1]:g} for {FLOOR_AT[0]} people, rounded up")
    fixed_threshold: float = Field(description=f"threshold at FPIR {FIXED_AT[1]:g} for {FIXED_AT[0]} people, "
                                               "rounded up")
    points: list[CalibrationPoint] = Field(min_length=1)

    @classmethod
    def load(cls, path: Path) -> "Calibration":
        try:
            return cls(**load_toml(path))
        except ValueError as exc:
            raise ConfigError(f"calibration table {path} is invalid: {exc}; re-run `edge eval calibrate`") from exc

    @classmethod
    def measured(cls, embedder: str, embedder_sha256: str, dataset: str, command: str,
                 points: list[CalibrationPoint]) -> "Calibration":
        """The table with its floor and fixed threshold derived from the points."""
        bare = cls.model_construct(points=points)
        return cls(embedder=embedder, embedder_sha256=embedder_sha256, dataset=dataset, command=command,
                   floor=_round_up(bare.threshold_at(*FLOOR_AT)),
                   fixed_threshold=_round_up(bare.threshold_at(*FIXED_AT)), points=points)

    @model_validator(mode="after")
    def _derived_from_points(self) -> "Calibration":
        """A grid with holes, or an edited floor or fixed threshold the measurements do not give, is refused."""
        sizes, fpirs = {p.gallery_size for p in self.points}, {p.fpir for p in self.points}
        if len({(p.gallery_size, p.fpir) for p in self.points}) != len(self.points) or \
                len(self.points) != len(sizes) * len(fpirs):
            raise ValueError("points must give each FPIR once at each gallery size")
        for key, at in (("floor", FLOOR_AT), ("fixed_threshold", FIXED_AT)):
            expected = _round_up(self.threshold_at(*at))
            if not math.isclose(getattr(self, key), expected, abs_tol=1e-9):
                raise ValueError(f"{key} = {getattr(self, key)} does not follow from the points ({expected}: the "
                                 f"threshold at FPIR {at[1]:g} for {at[0]} people, rounded up)")
        return self

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
    """Turns the [match] config and an embedder's calibration table into the threshold for a list's size.

    The floor and the fixed threshold default to the table's; a configured floor may only raise it, and no
    threshold below the floor is used. An embedder without a table has no measured floor: it is not used.
    """

    def __init__(self, cfg: MatchConfig, calibration: Calibration, embedder: str = "this embedder") -> None:
        measured = calibration.floor
        if cfg.floor is not None and cfg.floor < measured:
            raise ConfigError(f"match.floor {cfg.floor} is below the floor measured for {embedder}, {measured} (FPIR "
                              f"{FLOOR_AT[1]:g} at {FLOOR_AT[0]} people): remove match.floor or raise it")
        floor = measured if cfg.floor is None else cfg.floor
        threshold = calibration.fixed_threshold if cfg.threshold is None else cfg.threshold
        if cfg.mode == "fixed" and threshold < floor:
            given = "match.threshold" if cfg.threshold is not None else f"the calibrated fixed threshold of {embedder}"
            raise ConfigError(f"{given} {threshold} is below the floor {floor} for {embedder}: set match.threshold "
                              f"to at least {floor}")
        self.cfg = cfg
        self.calibration = calibration
        self.embedder = embedder
        self.floor = floor
        self.threshold = threshold

    def for_gallery(self, size: int) -> Threshold:
        cal = self.calibration
        if self.cfg.mode == "constant_fpir":
            value = max(self.floor, cal.threshold_at(size, self.cfg.target_fpir))
            fpir, bound = cal.fpir_at(size, value)
            return Threshold(round(value, 4), fpir, "constant_fpir", bound)
        if size == 0:
            return Threshold(self.threshold, None, "fixed")
        fpir, bound = cal.fpir_at(size, self.threshold)
        return Threshold(self.threshold, fpir, "fixed", bound)


def calibration_path(engines_dir: Path, embedder: str) -> Path:
    return engines_dir / f"calibration-{embedder}.toml"


def load_calibration(engines_dir: Path, embedder: str, embedder_sha256: str) -> Calibration:
    """This embedder's table: missing, invalid, or made for another model file, it is an error."""
    path = calibration_path(engines_dir, embedder)
    if not path.is_file():
        raise ConfigError(f"{embedder} has no calibration table ({path}): its floor and thresholds are unknown, "
                          f"so it is not used; measure them with `edge eval calibrate --embedder {embedder}`")
    cal = Calibration.load(path)
    if cal.embedder_sha256 != embedder_sha256:
        raise ConfigError(f"{path} was measured for another {embedder} file; re-run `edge eval calibrate`")
    return cal


def load_policy(cfg: MatchConfig, engines_dir: Path, embedder: str, embedder_sha256: str) -> ThresholdPolicy:
    """The policy for this embedder, from its calibration table."""
    return ThresholdPolicy(cfg, load_calibration(engines_dir, embedder, embedder_sha256), embedder)


def _round_up(value: float) -> float:
    return math.ceil(round(value * 100, 6)) / 100
