"""The frame source protocol every capture backend implements."""

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Frame:
    """One decoded frame: HxWx3 uint8 BGR, its index and its time in the source (seconds)."""

    image: np.ndarray
    index: int
    timestamp: float


class FrameSource(Protocol):
    """A source of frames. `read` returns None at the end of a finite source (file, folder).

    Live sources (camera, RTSP) never end on their own: a dropped source is reopened with back-off
    inside `read`, and the gap is logged.
    """

    uri: str
    live: bool

    def read(self) -> Frame | None: ...

    def close(self) -> None: ...
