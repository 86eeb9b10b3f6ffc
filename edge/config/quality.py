"""[quality] section: when a face is good enough to embed and to decide on.

How small and how blurred a face may be worth embedding depends on the embedder (its error-versus-reject curves,
`edge eval quality`, put SFace's size limit at 16 px between the eyes and MobileFaceNet's at 14), so those two
limits default to the embedder's measured gate; a value set here applies to whichever embedder runs.
"""

import math
from typing import Any

from pydantic import Field, field_validator

from edge.config.base import StrictModel


class QualityGate(StrictModel):
    """The smallest and blurriest face worth embedding for an embedder, read off its error-versus-reject curves
    (`edge eval quality`; engines/models.toml `quality_gate`; docs/evaluation.md, "The quality gate from
    error-versus-reject curves")."""

    min_eye_distance: float = Field(ge=4.0)
    min_sharpness: float = Field(ge=0.0)


# For an embedder with no measured gate: the stricter of the two measured in each limit (SFace's).
UNMEASURED_GATE = QualityGate(min_eye_distance=16.0, min_sharpness=4.0)


class QualityConfig(StrictModel):
    min_eye_distance: float | None = Field(None, ge=4.0, description="pixels between the eyes in the frame; "
                                           "default: the embedder's measured quality gate")
    good_eye_distance: float = Field(40.0, ge=8.0, description="eye distance at which size stops limiting quality")
    min_sharpness: float | None = Field(None, ge=0.0, description="variance of the Laplacian of the aligned 112 px "
                                        "crop; default: the embedder's measured quality gate")
    good_sharpness: float = Field(150.0, ge=1.0)
    max_yaw: float = Field(0.45, gt=0.0, le=1.0, description="nose offset from the eye midline / eye distance")
    max_pitch: float = Field(0.45, gt=0.0, le=1.0)
    # From `edge eval quality` (docs/evaluation.md#the-quality-gate-from-error-versus-reject-curves): pose and
    # brightness did not predict error on its faces, so their limits are loose; detection confidence did.
    min_brightness: float = Field(15.0, ge=0.0, le=255.0, description="mean grey level of the aligned crop")
    min_score: float = Field(0.85, ge=0.0, le=1.0, description="detection confidence needed to embed")

    @field_validator("*", mode="before")
    @classmethod
    def _a_number(cls, value: Any) -> Any:
        """`true`, "15" or inf are not limits a person meant: refused rather than read as 1.0, 15 or "refuse all"."""
        if isinstance(value, bool | str) or (isinstance(value, float) and not math.isfinite(value)):
            raise ValueError(f"must be a finite number, not {value!r}")
        return value

    def for_embedder(self, gate: QualityGate | None) -> "QualityConfig":
        """These settings with the embedder's measured gate wherever none is configured: what `assess` takes."""
        gate = gate or UNMEASURED_GATE
        return self.model_copy(update={key: getattr(gate, key) for key in ("min_eye_distance", "min_sharpness")
                                       if getattr(self, key) is None})
