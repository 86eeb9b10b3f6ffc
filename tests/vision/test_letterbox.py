"""The detector's letterbox as a graph (what TensorRT builds for the GPU, edge.runtime.letterbox_trt) does what the
CPU's `Detector.preprocess` does, and the detector finds the same faces through it.

ONNX Runtime runs the graph here; on a GPU, scripts/gpu-check runs the TensorRT engine built from it against the
CPU letterbox on real frames.
"""

import ctypes
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from edge.capture.base import DeviceImage
from edge.runtime.letterbox import BLOB_OUTPUT, FRAME_INPUT, letterbox_model
from edge.track.tracker import iou_matrix
from edge.vision.detect import Detector
from edge.vision.stack import VisionStack


def _group_photo(data_dir: Path, width: int, height: int) -> np.ndarray:
    return cv2.resize(cv2.imread(str(data_dir / "bbt" / "bbt1.jpg")), (width, height), interpolation=cv2.INTER_AREA)


class OnnxLetterbox:
    """The GPU letterbox's contract on ONNX Runtime: read the frame through its pointer (rows packed, BGR), run the
    letterbox graph, then the detector on its output."""

    def __init__(self, detector: Detector) -> None:
        self.detector = detector
        self.runs = 0

    def run(self, image: DeviceImage, input_name: str, resized: tuple[int, int], size: tuple[int, int],
            mean: tuple[float, float, float]) -> dict[str, np.ndarray] | None:
        count = image.width * image.height * 3
        pixels = np.ctypeslib.as_array((ctypes.c_uint8 * count).from_address(image.pointer))
        graph = ort.InferenceSession(letterbox_model((image.width, image.height), resized, size, mean),
                                     providers=["CPUExecutionProvider"])
        blob = graph.run([BLOB_OUTPUT], {FRAME_INPUT: pixels.reshape(1, image.height, image.width, 3)})[0]
        self.runs += 1
        return self.detector.runtime.run({input_name: blob})

    def close(self) -> None:
        pass


@pytest.mark.parametrize(("width", "height"), [(1280, 720), (640, 480), (250, 250), (512, 288), (1920, 1080)],
                         ids=["720p", "vga", "lfw-upscaled", "no-resize", "1080p"])
def test_the_graph_letterboxes_as_the_cpu_does(stack: VisionStack, data_dir: Path, width: int, height: int) -> None:
    """Same input blob to within OpenCV's rounding of resized pixels to whole grey levels (< 1 level)."""
    detector = stack.detector
    frame = _group_photo(data_dir, width, height)
    blob, scale = detector.preprocess(frame)
    box = detector.letterbox(width, height)
    assert box.scale == scale and blob.shape == (1, 3, box.size[1], box.size[0])
    graph = ort.InferenceSession(letterbox_model((width, height), box.resized, box.size, tuple(detector.spec.mean)),
                                 providers=["CPUExecutionProvider"])
    out = graph.run([BLOB_OUTPUT], {FRAME_INPUT: frame[None]})[0]
    assert out.shape == blob.shape and out.dtype == np.float32
    assert np.abs(out - blob).max() < 1.0
    nw, nh = box.resized
    assert not out[:, :, nh:, :].any() and not out[:, :, :, nw:].any()  # padding is the mean: zero once centred


def test_frames_the_gpu_can_address_are_detected_through_the_graph(stack: VisionStack, data_dir: Path) -> None:
    """`Frame.device` given: the detector letterboxes through its GPU path, reading the frame's pixels at the
    pointer, and finds the same faces in the same places as the CPU path; without it, the CPU letterboxes."""
    frame = np.ascontiguousarray(_group_photo(data_dir, 1280, 720))
    cpu = stack.detector(frame)
    gpu = OnnxLetterbox(stack.detector)
    detector = Detector(stack.detector.runtime, stack.detector.spec, stack.detector.long_side, gpu=gpu)
    on_gpu = detector(frame, DeviceImage(frame.ctypes.data, 1280, 720))
    assert gpu.runs == 1 and len(cpu) == len(on_gpu) >= 4
    overlap = iou_matrix(cpu.boxes, on_gpu.boxes)
    assert (overlap.max(axis=1) > 0.97).all()
    order = overlap.argmax(axis=1)
    assert np.abs(on_gpu.landmarks[order] - cpu.landmarks).max() < 1.5  # pixels in the 1280x720 frame
    assert np.abs(on_gpu.scores[order] - cpu.scores).max() < 0.02
    detector(frame)  # no device pointer: the CPU's letterbox
    assert gpu.runs == 1


def test_a_letterbox_that_cannot_fit_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot letterbox"):
        letterbox_model((1280, 720), (640, 360), (512, 288), (104.0, 117.0, 123.0))


def test_the_graph_is_made_once_per_size_not_per_frame() -> None:
    """GpuLetterbox asks for the graph on every frame; building and checking it (about a millisecond of CPU, more
    on a Jetson's cores than the CPU letterbox it replaces at small sizes) happens once per size."""
    args = ((1280, 720), (640, 360), (640, 384), (104.0, 117.0, 123.0))
    first = letterbox_model(*args)
    hits = letterbox_model.cache_info().hits
    for _ in range(5):
        assert letterbox_model(*args) is first
    assert letterbox_model.cache_info().hits == hits + 5


def test_a_letterbox_the_gpu_refuses_is_counted_so_gpu_check_cannot_pass_on_the_cpu(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The detector falls back to the CPU's letterbox when the GPU's fails; gpu-check compares the two, so a
    refused GPU letterbox would compare the CPU's with itself and pass: `refused` says it happened."""
    from types import SimpleNamespace

    from edge.errors import ModelError
    from edge.runtime import letterbox_trt

    monkeypatch.setattr(letterbox_trt, "import_tensorrt", lambda: (SimpleNamespace(), SimpleNamespace()))
    gpu = letterbox_trt.GpuLetterbox(SimpleNamespace(), Path("/nonexistent"))

    def no_engine(model: bytes, image: DeviceImage) -> None:
        raise ModelError("TensorRT's ONNX parser rejected the letterbox graph")

    monkeypatch.setattr(gpu, "_engine", no_engine)
    assert gpu.refused == 0
    assert gpu.run(DeviceImage(0, 1280, 720), "input", (640, 360), (640, 384), (104.0, 117.0, 123.0)) is None
    assert gpu.refused == 1
