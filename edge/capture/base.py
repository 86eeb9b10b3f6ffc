"""The frame source protocol every capture backend implements."""

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class DeviceImage:
    """Where the GPU sees a frame's pixels: HxWx3 uint8 BGR, rows packed, at `pointer` (a mapped buffer)."""

    pointer: int
    width: int
    height: int


@dataclass(frozen=True)
class Frame:
    """One decoded frame: HxWx3 uint8 BGR, its index and its time in the source (seconds); a photo's file name.

    `device`: the same pixels as the GPU addresses them (jetson_utils capture: `image` is a view of that mapped
    memory, valid while this frame lives), so the detector's letterbox runs on the GPU; None for CPU sources.
    """

    image: np.ndarray
    index: int
    timestamp: float
    name: str | None = None
    device: DeviceImage | None = None


class FrameSource(Protocol):
    """A source of frames. `read` returns None at the end of a finite source (file, folder).

    Live sources (camera, RTSP) never end on their own when told to wait (the daemon): a dropped source is
    reopened with back-off inside `read`, and the gap is logged. Not waiting (replay), a source missing at start
    is a SourceError and a drop ends it.
    `stills`: the frames are unrelated photos (an image folder), not a sequence: nothing links one to the next.
    """

    uri: str
    live: bool
    stills: bool

    def read(self) -> Frame | None: ...

    def close(self) -> None: ...
