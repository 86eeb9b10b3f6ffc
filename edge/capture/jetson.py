"""Frames from NVIDIA's jetson_utils.videoSource: CSI sensors (csi://0), V4L2 cameras (v4l2:///dev/video0),
RTSP (rtsp://…) and files (file://…), decoded and colour-converted on the GPU.

Every one of those sources delivers YUV (NV12/I420/YUY2), and jetson-utils converts YUV to RGB/RGBA only
(cuda/cudaColorspace.h: "The YUV formats don't support BGR/BGRA"): frames are captured as rgb8 and turned
into BGR by cudaConvertColor into a mapped buffer, on this source's own non-blocking CUDA stream, which is the
only stream it waits for (inference runs on its own streams meanwhile). The buffer is lent to the frame
(edge.capture.pool): its pixels are read where the GPU wrote them, by the CPU for alignment and by TensorRT for
the detector's letterbox (`Frame.device`), never copied.
jetson-utils parses v4l2:// with sscanf("/dev/video%i") (network/URI.cpp), so a udev name such as
/dev/edge/camera-0 is resolved to its /dev/videoN at every open and reopen.

jetson_utils comes from a source build of dusty-nv/jetson-utils. PyPI's `jetson-utils` is an unrelated
package whose `jetson_utils` module would shadow it: it is recognised and refused with the fix.
Live sources never end: a dropped camera or stream is reopened with back-off and the gap is logged.
"""

import importlib
import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from edge.capture.base import DeviceImage, Frame
from edge.capture.pool import FramePool
from edge.errors import SourceError

log = logging.getLogger(__name__)

SCHEMES = ("csi://", "v4l2://", "rtsp://", "rtspt://", "file://")
CAPTURE_FORMAT = "rgb8"  # what every YUV source converts to; BGR is made from it on the GPU
FRAME_FORMAT = "bgr8"  # what edge.capture.base.Frame carries
_V4L2_NODE = re.compile(r"^/dev/video\d+$")


def v4l2_uri(uri: str) -> str:
    """The URI jetson-utils can parse: a v4l2:// path that is a udev symlink (/dev/edge/camera-0) becomes the
    /dev/videoN it points to now (it may change across unplugs, so this runs at every open)."""
    if not uri.startswith("v4l2://"):
        return uri
    path = uri[len("v4l2://"):]
    node = os.path.realpath(path)
    if not _V4L2_NODE.match(node):
        if not os.path.exists(path):
            raise SourceError(f"{path} does not exist (camera unplugged, or the udev rules are not installed)")
        raise SourceError(f"{path} resolves to {node}, not a /dev/videoN node jetson-utils can open")
    return f"v4l2://{node}"


def create_stream(utils: ModuleType) -> int:
    """A non-blocking CUDA stream: the keyword is `nonblocking` (default blocking) at jetson-utils head and
    `blocking` (default non-blocking) at the commit the container pins (python/bindings/PyCUDA.cpp)."""
    try:
        return int(utils.cudaStreamCreate(nonblocking=True))
    except TypeError:
        return int(utils.cudaStreamCreate(blocking=False))


def import_jetson_utils() -> ModuleType:
    """NVIDIA's jetson_utils (or the legacy jetson.utils), never PyPI's look-alike."""
    try:
        module = importlib.import_module("jetson_utils")
    except ImportError as exc:
        raise SourceError(
            f"jetson_utils is missing ({exc}): build and install dusty-nv/jetson-utils from source "
            "(docs/jetson.md), or use an OpenCV source; `edge engines check` lists every missing piece"
        ) from exc
    if hasattr(module, "videoSource"):
        return module
    try:
        legacy = importlib.import_module("jetson.utils")
    except ImportError:
        legacy = None
    if legacy is not None and hasattr(legacy, "videoSource"):
        return legacy
    raise SourceError(
        f"the jetson_utils module at {getattr(module, '__file__', '?')} is not NVIDIA's (no videoSource): it is "
        "PyPI's unrelated `jetson-utils` package; `pip uninstall jetson-utils` and build dusty-nv/jetson-utils"
    )


@dataclass
class Backoff:
    """Delays between reopen attempts: initial, doubling, capped."""

    initial: float = 0.5
    factor: float = 2.0
    maximum: float = 30.0

    def delay(self, attempt: int) -> float:
        return min(self.maximum, self.initial * self.factor ** max(attempt, 0))


@dataclass
class Outage:
    """One stretch without frames: when it began, why, and how many reopen attempts it took."""

    backoff: Backoff = field(default_factory=Backoff)
    since: float | None = None
    reason: str = ""
    attempts: int = 0

    def dropped(self, now: float, reason: str) -> None:
        if self.since is None:
            self.since = now
            self.reason = reason

    def next_delay(self) -> float:
        delay = self.backoff.delay(self.attempts)
        self.attempts += 1
        return delay

    def resumed(self, now: float) -> tuple[float, str, int] | None:
        """(gap seconds, first reason, attempts) when an outage just ended, else None; resets."""
        if self.since is None:
            return None
        gap = (now - self.since, self.reason, self.attempts)
        self.since, self.reason, self.attempts = None, "", 0
        return gap


class JetsonSource:
    """A FrameSource over jetson_utils.videoSource; frames come out as BGR HxWx3 uint8 copies.

    Not told to `wait`, a live source that cannot be opened is a SourceError, and one that drops ends.
    """

    stills = False

    def __init__(self, uri: str, *, width: int | None = None, height: int | None = None,
                 framerate: float | None = None, codec: str | None = None, latency_ms: int | None = None,
                 capture_timeout_ms: int = 1000, stall_seconds: float = 5.0, backoff: Backoff | None = None,
                 wait: bool = True, frame_buffers: int = 7) -> None:
        """`frame_buffers`: mapped buffers lent to frames (the consumer's queue, the frame being detected, the
        one being captured, and one more); beyond them frames are copied."""
        if uri.startswith("/dev/"):
            uri = f"v4l2://{uri}"  # /dev/edge/camera-0 and /dev/videoN as the udev rules name them
        if not uri.startswith(SCHEMES):
            raise SourceError(f"jetson source {uri!r}: use a /dev/ path or a URI starting with {', '.join(SCHEMES)}")
        self.uri = uri
        self.live = not uri.startswith("file://")
        self._wait = wait
        self._utils = import_jetson_utils()
        self._argv = ["edge", "--log-level=warning"] + [
            f"--{flag}={value}" for flag, value in (
                ("input-width", width), ("input-height", height), ("input-rate", framerate),
                ("input-codec", codec), ("input-latency", latency_ms)) if value is not None]
        self._timeout_ms = capture_timeout_ms
        self._stall_seconds = stall_seconds
        self._outage = Outage(backoff or Backoff())
        self._closed = threading.Event()
        self._index = 0
        self._last_frame = time.monotonic()
        self._framerate = 0.0
        self._source: object | None = None
        self._stream: int | None = None
        self._pool = FramePool(self._allocate, frame_buffers)
        self._spare: Any = None  # the buffer a frame is converted into when all the pool's are in use
        self._pool_warned = False
        self._first_pts: int | None = None
        try:
            self._source = self._open()
        except Exception as exc:  # jetson_utils raises plain Exception
            advice = "check the URI, the cable, `v4l2-ctl --list-devices`, or nvargus-daemon for csi://"
            if not self.live or not wait:
                raise SourceError(f"cannot open {uri} with jetson_utils ({exc}): {advice}") from exc
            # A camera missing at boot is an outage like any other: keep retrying rather than exit.
            self._outage.dropped(time.monotonic(), f"open failed ({exc}); {advice}")
            log.warning("%s cannot be opened yet (%s): %s; retrying with back-off", uri, exc, advice)

    def _open(self) -> object:
        source = self._utils.videoSource(v4l2_uri(self.uri), argv=self._argv)
        if self._stream is None:
            self._stream = create_stream(self._utils)
        # GetFrameRate is an integer (uint32 in videoSource.h, 29 for 29.97): only a fallback for file times.
        self._framerate = float(source.GetFrameRate() or 0.0)
        self._last_frame = time.monotonic()
        return source

    def _drop(self, reason: str) -> None:
        """Close the broken source; the next read reopens it after a back-off delay."""
        self._outage.dropped(time.monotonic(), reason)
        log.warning("%s dropped: %s; %s", self.uri, reason, "reopening" if self._wait else "not waiting for it")
        source, self._source = self._source, None
        if source is not None:
            try:
                source.Close()
            except Exception as exc:
                log.debug("closing %s failed: %s", self.uri, exc)

    def _reopen(self) -> None:
        delay = self._outage.next_delay()
        if self._closed.wait(delay):
            return
        try:
            self._source = self._open()
            log.info("%s reopened", self.uri)
        except Exception as exc:
            log.warning("%s: reopen attempt %d failed (%s); next in %.1f s", self.uri, self._outage.attempts, exc,
                        self._outage.backoff.delay(self._outage.attempts))

    def read(self) -> Frame | None:
        """The next frame; None at the end of a file or after close(). Live sources block through outages."""
        while not self._closed.is_set():
            if self._source is None:
                if not self.live or not self._wait:
                    return None
                self._reopen()
                continue
            try:
                image = self._source.Capture(format=CAPTURE_FORMAT, timeout=self._timeout_ms, stream=self._stream)
            except Exception as exc:
                if not self.live:
                    if not self._source.IsStreaming():
                        return None
                    raise SourceError(f"{self.uri}: capture failed ({exc})") from exc
                self._drop(f"capture failed ({exc})")
                continue
            now = time.monotonic()
            if image is None:  # timeout: no frame within capture_timeout_ms
                if not self._source.IsStreaming() and not self.live:
                    return None
                if self.live and now - self._last_frame > self._stall_seconds:
                    self._drop(f"no frame for {now - self._last_frame:.1f} s")
                continue
            return self._frame(image, now)
        return None

    def _to_bgr(self, image: Any) -> tuple[np.ndarray, DeviceImage | None]:
        """RGB -> BGR on the GPU, on this source's stream, into a mapped buffer lent to the frame: the frame's
        pixels are that memory (no copy); when every buffer is still in use, into a spare one that is copied."""
        utils = self._utils
        buffer = self._pool.take(image.width, image.height)
        if buffer is None:
            if self._spare is None or (self._spare.width, self._spare.height) != (image.width, image.height):
                self._spare = self._allocate(image.width, image.height)
            if not self._pool_warned:
                self._pool_warned = True
                log.warning("%s: all %d frame buffers are in use (frames are held downstream); copying frames",
                            self.uri, self._pool.limit)
            buffer = self._spare
        utils.cudaConvertColor(input=image, output=buffer, stream=self._stream)
        # Capture and the conversion run asynchronously on our stream; wait for it alone, never the device
        # (TensorRT's work on other streams keeps running).
        utils.cudaStreamSynchronize(self._stream)
        view = utils.cudaToNumpy(buffer)  # wraps the mapped memory, keeping the buffer alive
        if view.ndim != 3 or view.shape[2] != 3:
            raise SourceError(f"{self.uri}: expected an HxWx3 frame, jetson_utils gave {view.shape}")
        if buffer is self._spare:
            return np.array(view, dtype=np.uint8, copy=True), None
        self._pool.lend(view, buffer)
        return view, DeviceImage(int(buffer.ptr), int(image.width), int(image.height))

    def _allocate(self, width: int, height: int) -> Any:
        return self._utils.cudaAllocMapped(width=width, height=height, format=FRAME_FORMAT)

    def _frame(self, image: Any, now: float) -> Frame:
        array, device = self._to_bgr(image)
        self._last_frame = now
        gap = self._outage.resumed(now)
        if gap is not None:
            seconds, reason, attempts = gap
            log.warning("%s back after a %.1f s gap without frames (%s; %d reopen attempts)", self.uri, seconds,
                        reason, attempts)
        index = self._index
        self._index += 1
        return Frame(image=array, index=index, timestamp=self._timestamp(image, index, now), device=device)

    def _timestamp(self, image: Any, index: int, now: float) -> float:
        """A file's frames carry their stream time from its first frame (the buffer PTS in ns: exact at 29.97
        fps, where the integer GetFrameRate drifts by 3 s an hour); live frames the time they arrived."""
        if self.live:
            return now
        pts = int(getattr(image, "timestamp", 0) or 0)
        if pts > 0:
            if self._first_pts is None:
                self._first_pts = pts
            return (pts - self._first_pts) / 1e9
        return index / self._framerate if self._framerate > 0 else now

    def close(self) -> None:
        self._closed.set()
        source, self._source = self._source, None
        if source is not None:
            source.Close()
        stream, self._stream = self._stream, None
        if stream is not None:
            self._utils.cudaStreamDestroy(stream)
        self._spare = None
