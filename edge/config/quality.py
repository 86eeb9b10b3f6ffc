"""[quality] section: when a face is good enough to embed and to decide on."""

from pydantic import Field

from edge.config.base import StrictModel


class QualityConfig(StrictModel):
    min_eye_distance: float = Field(14.0, ge=4.0, description="pixels between the eyes in the frame")
    good_eye_distance: float = Field(40.0, ge=8.0, description="eye distance at which size stops limiting quality")
    min_sharpness: float = Field(30.0, ge=0.0, description="variance of the Laplacian of the aligned 112 px crop")
    good_sharpness: float = Field(150.0, ge=1.0)
    max_yaw: float = Field(0.45, gt=0.0, le=1.0, description="nose offset from the eye midline / eye distance")
    max_pitch: float = Field(0.45, gt=0.0, le=1.0)
    min_brightness: float = Field(40.0, ge=0.0, le=255.0, description="mean grey level of the aligned crop")
    min_score: float = Field(0.8, ge=0.0, le=1.0, description="detection confidence needed to embed")
