"""[detector] section: which detector, at what input size, how often."""

from typing import Literal

from pydantic import Field

from edge.config.base import StrictModel


class DetectorConfig(StrictModel):
    model: str = "retinaface_mnet025"
    # 512 keeps every face the quality gate would accept from a 720p camera (eye distance >= 20 px) and is what
    # lets a stream reach 25x the face_recognition baseline on one core (docs/evaluation.md); use 640 or 'full'
    # for small, distant faces.
    long_side: int | Literal["full"] = Field(
        512, description="detector input's long side in pixels (multiple of 32), or 'full' for the frame's own size"
    )
    min_score: float = Field(0.6, ge=0.05, le=0.99, description="detections below this are dropped")
    nms_iou: float = Field(0.4, gt=0.0, lt=1.0)
    max_faces: int = Field(64, ge=1, le=512)
    stride: int = Field(3, ge=1, le=30, description="detect every Nth frame; the tracker carries boxes between")
