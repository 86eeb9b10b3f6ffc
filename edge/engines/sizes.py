"""The detector input sizes a device configuration implies, so engines are built for what the daemon will run.

The detector letterboxes each frame to detector.long_side (edge.vision.detect.input_size_for), so its input
size depends on the camera's frame shape, which the configuration does not state: the sizes are those of
the frame shapes cameras deliver (16:9 and 4:3 at their usual resolutions). A camera outside them still
works: its size runs on ONNX Runtime, with a warning (edge.runtime.fallback).
"""

from edge.config.detector import DetectorConfig
from edge.vision.detect import REFINE_INPUT, Letterbox, input_size_for, letterbox_for

# (width, height) of the frames Jetson cameras deliver: 16:9 (720p, 1080p) and 4:3 (VGA, 960p).
CAMERA_FRAMES: tuple[tuple[int, int], ...] = ((1280, 720), (1920, 1080), (640, 480), (1280, 960))


def detector_sizes(detector: DetectorConfig,
                   frames: tuple[tuple[int, int], ...] = CAMERA_FRAMES) -> tuple[tuple[int, int], ...]:
    """Every distinct detector input (W, H) of `frames` under this configuration, in order; then the
    refinement's crop (edge.vision.detect.Detector.refine) when some frame is searched reduced."""
    long_side = None if detector.long_side == "full" else detector.long_side
    sizes = [input_size_for(w, h, long_side) for w, h in frames]
    reduced = any(min(iw / w, ih / h) < 1.0 for (w, h), (iw, ih) in zip(frames, sizes, strict=True))
    if detector.refine and reduced:
        sizes.append((REFINE_INPUT, REFINE_INPUT))
    return tuple(dict.fromkeys(sizes))


Frames = tuple[tuple[int, int], ...]


def frame_letterboxes(detector: DetectorConfig,
                      frames: Frames = CAMERA_FRAMES) -> tuple[tuple[tuple[int, int], Letterbox], ...]:
    """Each camera frame (W, H) with how it fits the detector's input: the GPU letterbox engines to build
    (edge.runtime.letterbox_trt)."""
    long_side = None if detector.long_side == "full" else detector.long_side
    return tuple((frame, letterbox_for(*frame, long_side)) for frame in frames)
