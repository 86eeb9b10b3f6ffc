"""The detector input sizes a device configuration implies, so engines are built for what the daemon will run.

The detector letterboxes each frame to detector.long_side (edge.vision.detect.input_size_for), so its input
size depends on the camera's frame shape, which the configuration does not state: the sizes are those of
the frame shapes cameras deliver (16:9 and 4:3 at their usual resolutions). A camera outside them still
works: its size runs on ONNX Runtime, with a warning (edge.runtime.fallback).
"""

from edge.config.detector import DetectorConfig
from edge.vision.detect import input_size_for

# (width, height) of the frames Jetson cameras deliver: 16:9 (720p, 1080p) and 4:3 (VGA, 960p).
CAMERA_FRAMES: tuple[tuple[int, int], ...] = ((1280, 720), (1920, 1080), (640, 480), (1280, 960))


def detector_sizes(detector: DetectorConfig,
                   frames: tuple[tuple[int, int], ...] = CAMERA_FRAMES) -> tuple[tuple[int, int], ...]:
    """Every distinct detector input (W, H) of `frames` under this configuration, in order."""
    long_side = None if detector.long_side == "full" else detector.long_side
    return tuple(dict.fromkeys(input_size_for(w, h, long_side) for w, h in frames))
