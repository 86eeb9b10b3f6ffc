"""[detector] section: which detector, at what input size, how often."""

from typing import Literal

from pydantic import Field, field_validator

from edge.config.base import StrictModel


class DetectorConfig(StrictModel):
    model: str = "retinaface_mnet025"
    # 512 lets a stream reach over 20x the face_recognition baseline on one core, but on a 720p camera it finds
    # faces reliably only from about 24-32 px between the eyes, well above the quality gate's 12-14 px
    # (docs/evaluation.md#face-size-and-the-quality-gate); use 'full' for small, distant faces.
    long_side: int | Literal["full"] = Field(
        512, description="detector input's long side in pixels (multiple of 32), or 'full' for the frame's own size"
    )
    min_score: float = Field(0.6, ge=0.05, le=0.99, description="detections below this are dropped")
    nms_iou: float = Field(0.4, gt=0.0, lt=1.0)
    max_faces: int = Field(64, ge=1, le=512)
    refine: bool = Field(
        True, description="look again at small faces on the full-resolution frame when it is searched reduced: "
        "better landmarks and scores for the faces about to be embedded, and faces the reduced search barely saw")
    stride: int = Field(3, ge=1, le=30, description="detect every Nth frame; the tracker carries boxes between")

    @field_validator("long_side")
    @classmethod
    def _a_size_faces_fit_in(cls, value: int | str) -> int | str:
        # below 32 px the detector's input is 32 x 32 whatever the frame: no face is ever found, silently
        if isinstance(value, int) and not 32 <= value <= 8192:
            raise ValueError(f"{value} px: give 32 to 8192 (a multiple of 32 is used as is), or 'full'")
        return value
