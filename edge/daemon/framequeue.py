"""A bounded frame queue that drops the oldest frame when full, and counts what it dropped."""

import threading
from collections import deque

from edge.capture.base import Frame


class FrameQueue:
    """Capture never waits for inference: a slow pipeline sees the newest frames, and drops are counted."""

    def __init__(self, size: int, wake: threading.Event | None = None) -> None:
        """`wake` is set on every put and at close: one thread serving several queues waits on it."""
        self._wake = wake
        self._frames: deque[Frame] = deque()
        self._size = size
        self._cond = threading.Condition()
        self._closed = False
        self.dropped = 0

    def put(self, frame: Frame) -> None:
        with self._cond:
            if len(self._frames) >= self._size:
                self._frames.popleft()
                self.dropped += 1
            self._frames.append(frame)
            self._cond.notify()
        if self._wake is not None:
            self._wake.set()

    def get(self, timeout: float) -> Frame | None:
        """The oldest queued frame, or None after `timeout` seconds or once closed and empty."""
        with self._cond:
            if not self._frames and not self._closed:
                self._cond.wait(timeout)
            if not self._frames:
                return None
            self._cond.notify_all()  # a file's capture waiting for room
            return self._frames.popleft()

    def wait_for_room(self) -> None:
        """Until the queue has room or is closed: a file is read at the pace inference takes it, not dropped (a
        condition, not polling: several cameras' capture threads would take the GIL from inference)."""
        with self._cond:
            while len(self._frames) >= self._size and not self._closed:
                self._cond.wait()

    def __len__(self) -> int:
        with self._cond:
            return len(self._frames)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._wake is not None:
            self._wake.set()

    @property
    def closed(self) -> bool:
        with self._cond:
            return self._closed and not self._frames
