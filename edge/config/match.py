"""[match] section: decision threshold, its floor, and the constant false-alarm mode."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Measured with `edge eval identify` on LFW (README, "Thresholds"): cosine 0.50 holds FPIR near 1e-3
# for a 1,680-person list with MobileFaceNet-192; below 0.40 false alarms exceed 1 in 100 passers-by.
DEFAULT_THRESHOLD = 0.50
THRESHOLD_FLOOR = 0.40


class MatchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["fixed", "constant_fpir"] = "fixed"
    threshold: float = Field(DEFAULT_THRESHOLD, description="cosine a candidate needs (mode fixed)")
    floor: float = Field(THRESHOLD_FLOOR, description="no threshold below this is accepted")
    target_fpir: float = Field(1e-3, gt=0.0, lt=0.5, description="mode constant_fpir: false alarms per passer-by")
    top_k: int = Field(2, ge=2, le=10)

    @model_validator(mode="after")
    def _threshold_above_floor(self) -> "MatchConfig":
        if self.threshold < self.floor:
            raise ValueError(
                f"match.threshold {self.threshold} is below match.floor {self.floor}: the floor comes from measured "
                "false-alarm rates; raise the threshold"
            )
        return self
