"""Choose a frame source for a URI: jetson_utils when importable, OpenCV otherwise."""

import importlib.util
import re
from pathlib import Path

from edge.capture.base import FrameSource
from edge.capture.opencv import IMAGE_SUFFIXES, ImageFolderSource, VideoSource
from edge.errors import SourceError

JETSON_UNSUPPORTED = re.compile(r"^(rtsps|http|https)://")
URI_HELP = "a video file, an image folder, /dev/videoN, v4l2:///dev/videoN, rtsp://…, file://…, or csi://N"


def jetson_utils_available() -> bool:
    return importlib.util.find_spec("jetson_utils") is not None


def open_source(uri: str, prefer_jetson: bool = True, max_backoff: float = 30.0, wait: bool = True,
                held: int = 4) -> FrameSource:
    """Open a source. Image folders always use OpenCV; cameras and streams use jetson_utils when present.

    `wait`: a live source missing at start, or dropped, is waited for (the daemon); without it, a missing one
    is a SourceError now and a drop ends the source (replay). `held`: how many frames the consumer may hold at
    once (its queue): a jetson_utils source keeps that many mapped frame buffers and a few more.

    jetson_utils takes CSI, V4L2 and RTSP (hardware decode, zero copy); OpenCV takes what it does not
    (rtsps://, http(s)://) and everything on a machine without it.
    """
    path = Path(uri[len("file://"):] if uri.startswith("file://") else uri)
    if path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES:
        if not path.exists():
            raise SourceError(f"{path}: no such file or folder")
        return ImageFolderSource(path)
    if prefer_jetson and jetson_utils_available() and not path.is_file() and not JETSON_UNSUPPORTED.match(uri):
        from edge.capture.jetson import Backoff, JetsonSource

        return JetsonSource(uri, backoff=Backoff(maximum=max_backoff), wait=wait, frame_buffers=held + 3)
    if path.is_file():
        return VideoSource(str(path), uri, live=False)
    if uri.startswith("csi://"):
        raise SourceError(f"{uri}: CSI cameras need jetson_utils (built from dusty-nv/jetson-utils on the Jetson)")
    device = uri[len("v4l2://"):] if uri.startswith("v4l2://") else uri
    if re.fullmatch(r"/dev/video\d+", device) or device.startswith("/dev/edge/"):
        return VideoSource(device, uri, live=True, max_backoff=max_backoff, wait=wait)
    if re.match(r"^(rtsp|rtsps|http|https)://", uri):
        return VideoSource(uri, uri, live=True, max_backoff=max_backoff, wait=wait)
    raise SourceError(f"{uri}: not found or not a source edge knows; use {URI_HELP}")
