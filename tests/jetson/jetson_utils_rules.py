"""The parts of dusty-nv/jetson-utils' behaviour the capture code depends on, as stated in its sources, so
edge.capture.jetson can be exercised where the library is not built. Each rule names the file and line it
comes from (jetson-utils at 4152d8a, the commit deploy/container pins, and at head fae4b42):

- URI parsing (network/URI.cpp:123-129): a v4l2:// location must sscanf as "/dev/video%i", else the
  videoSource is not created and Python raises Exception.
- Colour conversion (cuda/cudaColorspace.h:41, cudaColorspace.cpp:40-60): a YUV source converts to RGB/RGBA
  only; Capture(format="bgr8") on one fails and Python raises Exception (PyVideo.cpp Capture).
- cudaStreamCreate (python/bindings/PyCUDA.cpp): `blocking=` (default non-blocking) at 4152d8a,
  `nonblocking=` (default blocking) at head.
- GetFrameRate returns an integer (video/videoSource.h:308, uint32_t; PyVideo.cpp:409).
- A captured image's timestamp is its buffer's PTS in nanoseconds (codec/gstBufferManager.cpp:281).
- cudaAllocMapped memory is mapped: one pointer (`.ptr`, PyCUDA.cpp PyCudaMemory_GetPtr) for the CPU and the
  GPU; cudaToNumpy wraps it without copying and keeps the image alive as the array's base (PyNumpy.cpp
  cudaToNumpy, lines 116-137 at head: "needs to use CUDA mapped memory", PyArray_SimpleNewFromData,
  PyArray_SetBaseObject).

Frames are decoded from a real clip with OpenCV (the picture a hardware decoder would give) and handed
out as RGB, the way the library's YUV->RGB conversion hands them out.
"""

import re
from dataclasses import dataclass, field
from fractions import Fraction
from types import ModuleType

import cv2
import numpy as np

YUV_OUTPUTS = {"rgb8", "rgba8", "rgb32f", "rgba32f"}


@dataclass
class Image:
    """A cudaImage: its array, format and timestamp (ns)."""

    array: np.ndarray
    format: str
    timestamp: int = 0

    @property
    def width(self) -> int:
        return int(self.array.shape[1])

    @property
    def ptr(self) -> int:
        return int(self.array.ctypes.data)

    @property
    def height(self) -> int:
        return int(self.array.shape[0])


@dataclass
class Calls:
    """What the capture code asked the library for, to check which streams it waited on."""

    streams_created: list[dict[str, object]] = field(default_factory=list)
    nonblocking: list[bool] = field(default_factory=list)
    synchronized: list[int] = field(default_factory=list)
    capture_streams: list[int] = field(default_factory=list)
    device_synchronize: int = 0
    opened: list[str] = field(default_factory=list)
    views: list[int] = field(default_factory=list)


def make_module(clip: str, *, head: bool, fps: Fraction = Fraction(30000, 1001)) -> tuple[ModuleType, Calls]:
    """A `jetson_utils` module following the rules above; `head` picks the cudaStreamCreate signature."""
    calls = Calls()
    module = ModuleType("jetson_utils")

    class videoSource:
        def __init__(self, uri: str, argv: list[str] | None = None) -> None:
            if uri.startswith("v4l2://"):
                if re.match(r"^/dev/video-?\d+", uri[len("v4l2://"):]) is None:
                    raise Exception("jetson.utils -- failed to create videoSource device")
                path = clip
            else:
                path = uri.removeprefix("file://")
            calls.opened.append(uri)
            self._cap = cv2.VideoCapture(path)
            self._index = 0
            self._streaming = True

        def Capture(self, format: str = "rgb8", timeout: int = 1000, stream: int = 0) -> Image | None:
            if format not in YUV_OUTPUTS:  # every camera/stream/file source is YUV
                raise Exception("jetson.utils -- videoSource failed to capture image")
            calls.capture_streams.append(stream)
            ok, bgr = self._cap.read()
            if not ok:
                self._streaming = False
                raise Exception("jetson.utils -- videoSource failed to capture image")
            pts = round(self._index / fps * 1_000_000_000) + 1_000_000  # PTS need not start at 0
            self._index += 1
            return Image(np.ascontiguousarray(bgr[:, :, ::-1]), format, pts)

        def GetFrameRate(self) -> int:
            return int(fps)

        def IsStreaming(self) -> bool:
            return self._streaming

        def Close(self) -> None:
            self._cap.release()
            self._streaming = False

    def cudaStreamCreate(**kwargs: object) -> int:
        allowed = {"nonblocking", "priority"} if head else {"blocking", "priority"}
        if set(kwargs) - allowed:
            raise TypeError(f"'{next(iter(set(kwargs) - allowed))}' is an invalid keyword argument")
        calls.streams_created.append(kwargs)
        nonblocking = bool(kwargs.get("nonblocking", False)) if head else not kwargs.get("blocking", False)
        calls.nonblocking.append(nonblocking)
        return 0x7000 + len(calls.streams_created)

    def cudaStreamSynchronize(stream: int) -> None:
        calls.synchronized.append(stream)

    def cudaStreamDestroy(stream: int) -> None:
        pass

    def cudaDeviceSynchronize() -> None:
        calls.device_synchronize += 1

    def cudaAllocMapped(width: int, height: int, format: str) -> Image:
        channels = {"bgr8": 3, "rgb8": 3, "rgba8": 4, "bgra8": 4}[format]
        return Image(np.zeros((height, width, channels), np.uint8), format)

    def cudaConvertColor(input: Image, output: Image, stream: int = 0) -> None:
        if (input.width, input.height) != (output.width, output.height):
            raise Exception("cudaConvertColor() input and output image resolutions are different")
        if (input.format, output.format) != ("rgb8", "bgr8"):
            raise Exception(f"unsupported conversion {input.format} -> {output.format}")
        output.array[:] = input.array[:, :, ::-1]
        output.timestamp = input.timestamp

    def cudaToNumpy(image: Image) -> np.ndarray:
        view = image.array.view()  # no copy: the array's memory is the image's
        calls.views.append(view.ctypes.data)
        return view

    for value in (videoSource, cudaStreamCreate, cudaStreamSynchronize, cudaStreamDestroy, cudaDeviceSynchronize,
                  cudaAllocMapped, cudaConvertColor, cudaToNumpy):
        setattr(module, value.__name__, value)
    return module, calls
