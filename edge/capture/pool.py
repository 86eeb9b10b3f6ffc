"""Mapped frame buffers lent to frames: a captured frame's pixels stay where the GPU wrote them.

On a Jetson the CPU and GPU share memory: a frame converted into a mapped buffer can be read by the CPU (the
pipeline's alignment) and by TensorRT (the detector's letterbox, edge.runtime.letterbox_trt) without a copy.
A buffer must then not be written again while a frame still uses it (a frame waits in the queue, or is being
detected): each buffer is lent to one frame and comes back when that frame's image is garbage. When every
buffer is out (a consumer holding many frames) the pool says so, and the source copies that frame instead.
"""

import threading
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np


class FramePool:
    """At most `limit` buffers of one frame size from `allocate(width, height)`, lent to one image each."""

    def __init__(self, allocate: Callable[[int, int], Any], limit: int = 8) -> None:
        self._allocate = allocate
        self.limit = limit
        # Re-entrant: a lent frame in a reference cycle is given back whenever the GC runs, which can be inside
        # take()'s locked region on this same thread.
        self._lock = threading.RLock()
        self._size: tuple[int, int] | None = None
        self._free: list[Any] = []
        self._made = 0

    def take(self, width: int, height: int) -> Any | None:
        """A buffer of this size no frame uses, or None when all `limit` are lent out."""
        with self._lock:
            if self._size != (width, height):  # the camera changed its mode: older buffers are let go
                self._size, self._free, self._made = (width, height), [], 0
            if self._free:
                return self._free.pop()
            if self._made >= self.limit:
                return None
            self._made += 1
        return self._allocate(width, height)

    def lend(self, image: np.ndarray, buffer: Any) -> None:
        """`buffer` belongs to `image` (a view of it) until the image is garbage collected."""
        weakref.finalize(image, self._give_back, buffer, (image.shape[1], image.shape[0]))

    def _give_back(self, buffer: Any, size: tuple[int, int]) -> None:
        with self._lock:
            if size == self._size:
                self._free.append(buffer)

    @property
    def lent(self) -> int:
        """Buffers in use by frames now."""
        with self._lock:
            return self._made - len(self._free)
