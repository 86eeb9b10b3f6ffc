"""[match] section: decision threshold, its floor, and the constant false-alarm mode."""

from typing import Literal

from pydantic import Field, model_validator

from edge.config.base import StrictModel

# Measured with `edge eval calibrate` on LFW, MobileFaceNet-192 (engines/calibration-mobilefacenet_192.toml,
# docs/evaluation.md#thresholds). The default mode holds the false-alarm rate at 1 in 1,000 passers-by (FPIR
# 1e-3) whatever the list's size: 0.595 for 100 people, 0.640 for 500, 0.659 for 1,680. A fixed threshold of
# 0.64 stands for FPIR 1.5e-4 at 100 people, 1.2e-3 at 500, 3.5e-3 at 1,680. Below the floor, 0.53, even a
# 100-person list alarms on about 1 passer-by in 100 (FPIR 8.7e-3), so no threshold below it is accepted.
DEFAULT_MODE = "constant_fpir"
DEFAULT_TARGET_FPIR = 1e-3
DEFAULT_THRESHOLD = 0.64
THRESHOLD_FLOOR = 0.53


class MatchConfig(StrictModel):
    mode: Literal["fixed", "constant_fpir"] = Field(
        DEFAULT_MODE, description="constant_fpir: the threshold follows the list's size (calibration table)")
    threshold: float = Field(DEFAULT_THRESHOLD, description="cosine a candidate needs (mode fixed)")
    floor: float = Field(THRESHOLD_FLOOR, description="no threshold below this is accepted, in either mode")
    target_fpir: float = Field(DEFAULT_TARGET_FPIR, gt=0.0, lt=0.5,
                               description="mode constant_fpir: false alarms per passer-by")
    top_k: int = Field(2, ge=2, le=10)

    @model_validator(mode="after")
    def _threshold_above_floor(self) -> "MatchConfig":
        if self.threshold < self.floor:
            raise ValueError(
                f"match.threshold {self.threshold} is below match.floor {self.floor}: the floor comes from measured "
                "false-alarm rates; raise the threshold"
            )
        return self
