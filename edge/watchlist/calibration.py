"""Thresholds from measured error rates: fixed, or held at a constant false-alarm rate as the list grows.

The table (engines/calibration-<embedder>.toml) is measured with `edge eval calibrate` on LFW: for each gallery
size, the threshold at which a given fraction of non-mated searches (passers-by) raise an alert (FPIR). The
embedder's floor and default fixed threshold follow from the table by the rules below, so they are re-derived
with every new embedder and never carried over from another.

Its [demographics] section (`edge eval demographics --write-calibration`) holds false alarms per race and gender
group. LFW's average hides a group that draws several times more: the policy raises the floor until no group's
rate can exceed `match.group_ceiling`, and by default holds the constant-FPIR target for the worst group.
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
from edge.watchlist.demographics import Demographics, wilson

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
    demographics: Demographics | None = None

    @classmethod
    def load(cls, path: Path) -> "Calibration":
        try:
            return cls(**load_toml(path))
        except ValueError as exc:
            raise ConfigError(f"calibration table {path} is invalid: {exc}; re-run `edge eval calibrate`") from exc

    @classmethod
    def measured(cls, embedder: str, embedder_sha256: str, dataset: str, command: str,
                 points: list[CalibrationPoint], demographics: Demographics | None = None) -> "Calibration":
        """The table with its floor and fixed threshold derived from the points."""
        bare = cls.model_construct(points=points)
        return cls(embedder=embedder, embedder_sha256=embedder_sha256, dataset=dataset, command=command,
                   floor=_round_up(bare.threshold_at(*FLOOR_AT)),
                   fixed_threshold=_round_up(bare.threshold_at(*FIXED_AT)), points=points, demographics=demographics)

    @model_validator(mode="after")
    def _groups_of_this_model(self) -> "Calibration":
        demo = self.demographics
        if demo is not None and demo.embedder_sha256 != self.embedder_sha256:
            raise ValueError("its [demographics] section was measured with another model file; re-run "
                             "`edge eval demographics --write-calibration`")
        if demo is not None and demo.watchlist_size < FLOOR_AT[0]:
            raise ValueError(f"its [demographics] section was measured against a list of {demo.watchlist_size} "
                             f"people: the group ceiling is defined for a list of {FLOOR_AT[0]} or more (a shorter "
                             "list draws fewer false alarms and would hide a group's)")
        return self

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

    The floor is the highest of: the table's (LFW), match.floor (may only raise it), and the lowest threshold at
    which no race or gender group's false-alarm rate can exceed match.group_ceiling. No threshold below it is
    used. In constant_fpir mode with fpir_for = worst_group (the default) the LFW threshold is raised by how much
    more the worst group needs to fall to the same rate. An embedder whose table lacks either is not used.
    """

    def __init__(self, cfg: MatchConfig, calibration: Calibration, embedder: str = "this embedder") -> None:
        demo = calibration.demographics
        if demo is None:
            raise ConfigError(f"the calibration table of {embedder} has no per-group false-alarm rates, so no floor "
                              "can be shown to hold for every group: measure them with `edge eval demographics "
                              f"--embedder {embedder} --write-calibration`")
        floors = [(calibration.floor, f"the floor measured on LFW for {embedder}")]
        if cfg.floor is not None:
            if cfg.floor < calibration.floor:
                raise ConfigError(f"match.floor {cfg.floor} is below the floor measured for {embedder}, "
                                  f"{calibration.floor} (FPIR {FLOOR_AT[1]:g} at {FLOOR_AT[0]} people): remove "
                                  "match.floor or raise it")
            floors.append((cfg.floor, "match.floor"))
        ceiling = demo.ceiling_floor(cfg.group_ceiling)
        if ceiling is None:
            top = demo.thresholds[-1]
            why = "; ".join(
                f"the {c.group} group's {c.trials} passers-by cannot show a rate below "
                f"{100 * wilson(0, c.trials)[1]:.1f} %" if c.errors[-1] == 0 else
                f"{c.errors[-1]} of the {c.group} group's {c.trials} passers-by still alarm at {top}"
                for c in demo.policy_groups() if wilson(c.errors[-1], c.trials)[1] > cfg.group_ceiling)
            raise ConfigError(f"no threshold up to {top} keeps every group's false alarms provably under "
                              f"match.group_ceiling {cfg.group_ceiling:g} for {embedder}: {why}; measure on more "
                              "people (edge eval demographics) or raise match.group_ceiling")
        floors.append((ceiling[0], f"no group above {100 * cfg.group_ceiling:g} % false alarms ({ceiling[1]} set it)"))
        floor, self.floor_source = max(floors, key=lambda f: f[0])
        self.shift, self.worst_group = 0.0, "none"
        if cfg.mode == "constant_fpir" and cfg.fpir_for == "worst_group":
            try:
                self.shift, self.worst_group = demo.worst_shift(FLOOR_AT[1])
            except ValueError as exc:
                raise ConfigError(f"the worst-group target cannot be set for {embedder}: {exc}; re-measure with "
                                  "`edge eval demographics --write-calibration` or set match.fpir_for = 'all'") from exc
        if cfg.threshold is not None and cfg.mode == "fixed" and cfg.threshold < floor:
            raise ConfigError(f"match.threshold {cfg.threshold} is below the floor {floor} for {embedder} "
                              f"({self.floor_source}): set match.threshold to at least {floor}")
        self.cfg = cfg
        self.calibration = calibration
        self.embedder = embedder
        self.floor = floor
        self.threshold = max(floor, calibration.fixed_threshold) if cfg.threshold is None else cfg.threshold
        self.fixed_source = "match.threshold" if cfg.threshold is not None else (
            "calibrated default" if calibration.fixed_threshold >= floor else f"floor: {self.floor_source}")

    def for_gallery(self, size: int) -> Threshold:
        cal = self.calibration
        if self.cfg.mode == "constant_fpir":
            target = cal.threshold_at(size, self.cfg.target_fpir) + self.shift
            value = round(max(self.floor, target), 4)
            fpir, bound = cal.fpir_at(size, value - self.shift)  # what the worst group sees when shifted
            who = f"worst group, {self.worst_group} +{self.shift:.2f}" if self.shift else (
                "no group measured worse than all passers-by" if self.cfg.fpir_for == "worst_group" else
                "all passers-by, on average")
            policy = f"constant FPIR {self.cfg.target_fpir:g} at {size} people ({who})" if target >= self.floor \
                else f"floor: {self.floor_source}"
            return Threshold(value, fpir, "constant_fpir", policy, bound)
        policy = f"fixed ({self.fixed_source})"
        if size == 0:
            return Threshold(self.threshold, None, "fixed", policy)
        fpir, bound = cal.fpir_at(size, self.threshold)
        return Threshold(self.threshold, fpir, "fixed", policy, bound)


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


def load_policy(cfg: MatchConfig, engines_dir: Path, embedder: str, embedder_sha256: str,
                configured: bool = True) -> ThresholdPolicy:
    """The policy for this embedder, from its calibration table. The [match] threshold and floor were chosen for
    the configured embedder: another one (a list still enrolled with it) uses its own table's."""
    if not configured:
        cfg = cfg.model_copy(update={"threshold": None, "floor": None})
    return ThresholdPolicy(cfg, load_calibration(engines_dir, embedder, embedder_sha256), embedder)


def _round_up(value: float) -> float:
    return math.ceil(round(value * 100, 6)) / 100
