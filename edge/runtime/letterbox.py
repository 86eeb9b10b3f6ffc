"""The detector's letterbox as a network of its own, so that a GPU does it on the captured frame.

`edge.vision.detect.Detector.preprocess` letterboxes a BGR frame on the CPU: bilinear resize (OpenCV's
INTER_LINEAR, half-pixel centres), mean subtracted, channels first, zero padding (the mean's) to the input size
at the bottom and right. This module writes the same steps as an ONNX graph from the frame's uint8 HxWx3 BGR
pixels to the detector's float32 NCHW input: TensorRT builds it into a small engine that reads the frame where
the camera left it (a mapped jetson_utils buffer) and writes straight into the detector engine's input, so the
frame is neither copied to the CPU nor resized there. ONNX Runtime runs the same graph in the tests, which is
how this equivalence is checked on a machine without a GPU; the only difference is OpenCV rounding its resized
pixels to uint8, at most half a grey level.
"""

import functools
import hashlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FRAME_INPUT = "frame"
BLOB_OUTPUT = "blob"
OPSET = 17  # TensorRT 10's ONNX parser takes opsets 9 to 20


@functools.lru_cache(maxsize=16)  # asked for every frame: building and checking the graph costs ~1 ms of CPU
def letterbox_model(frame: tuple[int, int], resized: tuple[int, int], size: tuple[int, int],
                    mean: tuple[float, float, float]) -> bytes:
    """The serialized graph: `frame` (1, H, W, 3) uint8 -> `blob` (1, 3, size H, size W) float32.

    `frame`, `resized` and `size` are (width, height): the camera's frame, the frame scaled to fit the detector's
    input, and that input (resized <= size; the rest is padding)."""
    (fw, fh), (rw, rh), (iw, ih) = frame, resized, size
    if not (0 < rw <= iw and 0 < rh <= ih and fw > 0 and fh > 0):
        raise ValueError(f"cannot letterbox a {fw}x{fh} frame resized to {rw}x{rh} into {iw}x{ih}")
    constants = [
        numpy_helper.from_array(np.array(mean, np.float32).reshape(1, 3, 1, 1), "mean"),
        numpy_helper.from_array(np.array([0, 0, 0, 0, 0, 0, ih - rh, iw - rw], np.int64), "pads"),
    ]
    nodes = [
        helper.make_node("Cast", [FRAME_INPUT], ["pixels"], to=TensorProto.FLOAT),
        helper.make_node("Transpose", ["pixels"], ["planar"], perm=[0, 3, 1, 2]),
    ]
    scaled = "planar"
    if (rw, rh) != (fw, fh):
        constants.append(numpy_helper.from_array(np.array([1, 3, rh, rw], np.int64), "sizes"))
        nodes.append(helper.make_node("Resize", ["planar", "", "", "sizes"], ["scaled"], mode="linear",
                                      coordinate_transformation_mode="half_pixel"))
        scaled = "scaled"
    nodes += [
        helper.make_node("Sub", [scaled, "mean"], ["centred"]),
        helper.make_node("Pad", ["centred", "pads"], [BLOB_OUTPUT], mode="constant"),
    ]
    graph = helper.make_graph(
        nodes, f"letterbox_{fw}x{fh}_to_{iw}x{ih}",
        [helper.make_tensor_value_info(FRAME_INPUT, TensorProto.UINT8, [1, fh, fw, 3])],
        [helper.make_tensor_value_info(BLOB_OUTPUT, TensorProto.FLOAT, [1, 3, ih, iw])],
        constants)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="edge")
    model.ir_version = 8  # what ONNX Runtime and TensorRT 10's parser both read
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def model_digest(model: bytes) -> str:
    """Names the engine built from this graph: one per frame size, detector size and mean."""
    return hashlib.sha256(model).hexdigest()[:16]
