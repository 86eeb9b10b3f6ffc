"""OpenCV frame sources: video files, image folders, single images, V4L2 devices and RTSP streams."""

import logging
import time
from pathlib import Path

import cv2
import numpy as np

from edge.capture.base import Frame
from edge.errors import SourceError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
OPEN_TIMEOUT_MS = 10_000


def to_bgr(image: np.ndarray) -> np.ndarray:
    """Grey, BGRA or 16-bit images as HxWx3 uint8 BGR, so every later step sees one format."""
    if image.dtype != np.uint8:
        image = (image / (256 if image.dtype == np.uint16 else max(float(image.max()), 1.0) / 255)).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def read_image(path: Path) -> np.ndarray:
    """A photo as BGR uint8, or SourceError saying why it cannot be read."""
    data = np.fromfile(str(path), dtype=np.uint8) if path.is_file() else None
    if data is None:
        raise SourceError(f"{path}: no such file")
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise SourceError(f"{path}: not a readable image (corrupt or unsupported format)")
    return to_bgr(image)


class ImageFolderSource:
    """Every image in a folder (sorted by name), or one image; unreadable files are logged and skipped.

    Each frame is a photo of its own (`stills`); its file name comes with it.
    """

    live = False
    stills = True

    def __init__(self, path: Path, fps: float = 1.0) -> None:
        self.uri = str(path)
        self._files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if path.is_dir() \
            else [path]
        others = sorted(p.name for p in path.iterdir() if p.is_file() and not p.name.startswith(".")
                        and p.suffix.lower() not in IMAGE_SUFFIXES) if path.is_dir() else []
        if others:  # e.g. .gif or .heic photos: said, not silently left out of the review
            log.warning("%s: %d file(s) not reviewed, not a photo format edge reads (%s): %s%s", path, len(others),
                        " ".join(sorted(IMAGE_SUFFIXES)), ", ".join(others[:5]), " …" if len(others) > 5 else "")
        self._next = 0
        self._fps = fps

    def read(self) -> Frame | None:
        while self._next < len(self._files):
            index, path = self._next, self._files[self._next]
            self._next += 1
            try:
                return Frame(read_image(path), index, index / self._fps, path.name)
            except SourceError as exc:
                log.warning("skipping %s", exc)
        return None

    def close(self) -> None:
        self._next = len(self._files)


class VideoSource:
    """A cv2.VideoCapture on a file, a V4L2 device or a network stream.

    Files end cleanly; a corrupt frame in a file is logged and skipped. A live source that drops is
    reopened with exponential back-off (capped), and the gap is logged when frames resume. Not told to `wait`,
    a live source missing at start is a SourceError, and one that drops ends (read returns None).
    """

    stills = False

    def __init__(self, target: str | int, uri: str, live: bool, max_backoff: float = 30.0, wait: bool = True) -> None:
        self.uri = uri
        self.live = live
        self._target = target
        self._max_backoff = max_backoff
        self._wait = wait
        self._up = True  # whether it ever opened: a camera waited for from the start has not dropped
        try:
            self._cap = self._open()
        except SourceError:
            if not live or not wait:
                raise
            # A camera unplugged at start is a camera to wait for, not a reason to exit and restart in a loop.
            log.warning("%s: not available yet; waiting for it", uri)
            self._cap = cv2.VideoCapture()
            self._up = False
        self._index = 0
        self._fps = self._cap.get(cv2.CAP_PROP_FPS) or 30.0
        self._started = time.monotonic()

    def _open(self) -> cv2.VideoCapture:
        # Not waiting, a stream that does not answer is given up on well within 15 s (FFmpeg's default: 30 s).
        params = [] if self._wait else [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS,
                                        cv2.CAP_PROP_READ_TIMEOUT_MSEC, OPEN_TIMEOUT_MS]
        cap = cv2.VideoCapture(self._target, cv2.CAP_ANY, params)
        if not cap.isOpened():
            raise SourceError(f"cannot open {self.uri}: check the path or device and that it is a video source")
        return cap

    def read(self) -> Frame | None:
        failures = 0
        while True:
            ok, image = self._cap.read()
            if ok and image is not None:
                index = self._index
                self._index += 1
                ts = time.monotonic() - self._started if self.live else index / self._fps
                return Frame(to_bgr(image), index, ts)
            if not self.live:
                failures += 1
                total = self._cap.get(cv2.CAP_PROP_FRAME_COUNT)
                if self._index + failures >= total or failures > 25:
                    return None
                log.warning("%s: frame %d unreadable, skipped", self.uri, self._index + failures - 1)
                continue
            if not self._wait:
                log.warning("%s: source dropped after %d frames; not waiting for it", self.uri, self._index)
                return None
            self._reopen()

    def _reopen(self) -> None:
        lost = time.monotonic()
        delay = 0.5
        if self._up:
            log.warning("%s: source dropped; reopening", self.uri)
        while True:
            self._cap.release()
            time.sleep(delay)
            try:
                self._cap = self._open()
            except SourceError:
                delay = min(delay * 2, self._max_backoff)
                continue
            if self._up:
                log.warning("%s: source back after a %.1f s gap", self.uri, time.monotonic() - lost)
            else:
                log.warning("%s: source up after %.1f s of waiting", self.uri, time.monotonic() - self._started)
            self._up = True
            return

    def close(self) -> None:
        self._cap.release()
