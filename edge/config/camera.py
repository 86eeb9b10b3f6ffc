"""[camera] section (one camera) or [[cameras]] tables (several, one device): where frames come from."""

from pydantic import Field

from edge.config.base import StrictModel


class CameraConfig(StrictModel):
    id: str = Field("cam0", pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="camera name in events")
    source: str = Field("csi://0", description="csi://N, /dev/edge/camera-N, v4l2:///dev/videoN, rtsp://…, file")
    queue: int = Field(4, ge=1, le=64, description="frames buffered; the oldest is dropped (counted) when full")
    max_backoff: float = Field(30.0, gt=0, description="seconds between reopen attempts of a dropped source")
    stall_s: float = Field(30.0, gt=0, le=3600, allow_inf_nan=False,
                           description="seconds without a frame after which the camera counts as silent: logged, "
                                       "in the status (seconds_without_frame); once every camera is silent, "
                                       "the systemd watchdog starves")
