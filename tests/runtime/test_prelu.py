"""ONNX Runtime runs the embedders with their PReLUs expanded: the same embeddings as the shipped graph, from
the shipped (sha256-checked) file, on real aligned faces."""

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from edge.capture.opencv import read_image
from edge.models import Manifest
from edge.runtime.prelu import expand_prelu
from edge.vision.stack import VisionStack


@pytest.fixture(scope="module")
def crops(demo_dir: Path) -> np.ndarray:
    """Aligned 112x112 BGR faces from the demo photos, found by the device's own detector."""
    stack = VisionStack.open()
    faces = []
    for photo in sorted(p for p in demo_dir.rglob("*") if p.suffix in (".jpg", ".png"))[:12]:
        image = read_image(photo)
        faces += list(stack.embedder.crops(image, stack.detector(image).landmarks))
    stack.close()
    assert len(faces) >= 6
    return np.stack(faces[:16])


@pytest.mark.parametrize("name", ["sface_128", "mobilefacenet_192"])
def test_expanded_embedder_gives_the_shipped_graphs_embeddings(manifest: Manifest, crops: np.ndarray,
                                                               name: str) -> None:
    from edge.runtime.onnxrt import OnnxRuntime
    from edge.vision.embed import Embedder

    spec = manifest.spec(name)
    shipped = manifest.path(name).read_bytes()
    expanded = expand_prelu(shipped)
    assert expanded is not None
    ops = {n.op_type for n in onnx.load_from_string(expanded).graph.node}
    assert "PRelu" not in ops and {"Relu", "Mul", "Add"} <= ops
    blob = Embedder(OnnxRuntime(manifest.path(name)), spec)._blob(crops)
    reference = ort.InferenceSession(shipped, providers=["CPUExecutionProvider"]).run(
        [spec.embedding_output], {spec.input: blob})[0]
    ours = OnnxRuntime(manifest.path(name)).run({spec.input: blob})[spec.embedding_output]
    assert np.abs(ours - reference).max() < 1e-4 * np.abs(reference).max()
    cos = np.sum(ours * reference, 1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(reference, axis=1)
    assert cos.min() > 1 - 1e-6


def test_a_model_without_prelu_is_left_alone(manifest: Manifest) -> None:
    assert expand_prelu(manifest.path("retinaface_mnet025").read_bytes()) is None


def _graph(slope: np.ndarray, *, slope_is_input: bool = False, clash: bool = False) -> bytes:
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3, 4, 4])
    nodes = [helper.make_node("PRelu", ["x", "a"], ["prelu_expanded_0" if clash else "p"]),
             helper.make_node("Identity", ["prelu_expanded_0" if clash else "p"], ["y"])]
    inputs = [x] + ([helper.make_tensor_value_info("a", TensorProto.FLOAT, list(slope.shape))] if slope_is_input
                    else [])
    graph = helper.make_graph(nodes, "g", inputs, [y], [numpy_helper.from_array(slope, "a")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()


@pytest.mark.parametrize("shape", [(3, 1, 1), (4,), (1, 3, 1, 1), ()])
def test_expansion_keeps_prelus_broadcasting(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(len(shape))
    slope = rng.uniform(-3, 3, shape).astype(np.float32)
    x = rng.normal(0, 5, (2, 3, 4, 4)).astype(np.float32)
    for clash in (False, True):
        expanded = expand_prelu(_graph(slope, clash=clash))
        assert expanded is not None
        (out,) = ort.InferenceSession(expanded, providers=["CPUExecutionProvider"]).run(None, {"x": x})
        np.testing.assert_allclose(out, np.where(x > 0, x, x * slope), rtol=1e-6, atol=1e-6)


def test_slopes_it_cannot_expand_exactly_are_left_as_prelu() -> None:
    assert expand_prelu(_graph(np.full((3, 1, 1), 1e6, np.float32))) is None  # would cancel for positive x
    assert expand_prelu(_graph(np.full((3, 1, 1), np.nan, np.float32))) is None
    assert expand_prelu(_graph(np.ones((3, 1, 1), np.float32), slope_is_input=True)) is None  # can be fed
