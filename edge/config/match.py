"""[match] section: decision threshold, its floor, and the constant false-alarm mode.

The numbers belong to the embedder, not to this section: each embedder's calibration table
(engines/calibration-<embedder>.toml, measured by `edge eval calibrate`, docs/evaluation.md#thresholds) gives its
floor and its default fixed threshold, because two models' scores mean different things (SFace's impostor
scores sit lower than MobileFaceNet's). A value set here applies to the configured embedder only; it may raise
the measured floor, never lower it.
"""

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from edge.config.base import StrictModel

DEFAULT_MODE = "constant_fpir"
DEFAULT_TARGET_FPIR = 1e-3
# No protected group (race, gender) may plausibly see more than three times the false alarms the floor allows on
# average (1 in 100 passers-by for a 100-person list): the upper end of its 95 % interval stays under 3 %.
DEFAULT_GROUP_CEILING = 0.03
MAX_GROUP_CEILING = 0.05


class MatchConfig(StrictModel):
    mode: Literal["fixed", "constant_fpir"] = Field(
        DEFAULT_MODE, description="constant_fpir: the threshold follows the list's size (calibration table); "
                                  "setting match.threshold alone selects fixed")
    threshold: float | None = Field(
        None, ge=0.0, le=1.0, allow_inf_nan=False,
        description="cosine a candidate needs (mode fixed); default: the embedder's calibrated fixed threshold")
    floor: float | None = Field(
        None, ge=0.0, le=1.0, allow_inf_nan=False,
        description="no threshold below this is accepted; default: the embedder's measured floor (may only be raised)")
    target_fpir: float = Field(DEFAULT_TARGET_FPIR, gt=0.0, lt=0.5, allow_inf_nan=False,
                               description="mode constant_fpir: false alarms per passer-by")
    fpir_for: Literal["worst_group", "all"] = Field(
        "worst_group", description="mode constant_fpir: hold target_fpir for the demographic group with the most "
                                   "false alarms (measured), or for all passers-by on average")
    group_ceiling: float = Field(
        DEFAULT_GROUP_CEILING, gt=0.0, le=MAX_GROUP_CEILING, allow_inf_nan=False,
        description="false alarms per passer-by that no race or gender group may exceed (upper end of its 95 % "
                    "interval, measured on a ~100-person list): raises the floor until none does")
    top_k: int = Field(2, ge=2, le=10)

    @field_validator("threshold", "floor", "target_fpir", "group_ceiling", mode="before")
    @classmethod
    def _a_number(cls, value: Any) -> Any:
        """`true` or "0.6" are not numbers a person meant: refused rather than read as 1.0 or 0.6."""
        if isinstance(value, bool | str):
            raise ValueError(f"must be a number, not {value!r}")
        return value

    @model_validator(mode="before")
    @classmethod
    def _threshold_means_fixed(cls, data: Any) -> Any:
        """A threshold given without a mode is meant to be used: it selects the fixed mode."""
        if isinstance(data, dict) and data.get("threshold") is not None and "mode" not in data:
            return {**data, "mode": "fixed"}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> "MatchConfig":
        if self.threshold is not None and self.mode == "constant_fpir":
            raise ValueError("match.threshold is used only in mode 'fixed': remove it, or set match.mode = 'fixed'")
        if self.threshold is not None and self.floor is not None and self.threshold < self.floor:
            raise ValueError(f"match.threshold {self.threshold} is below match.floor {self.floor}: the floor comes "
                             "from measured false-alarm rates; raise the threshold")
        return self
