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
