"""engines/models.toml describes the files in engines/: digests, and the tensors ONNX Runtime sees."""

import numpy as np
import onnxruntime as ort
import pytest

from edge.errors import ModelError
from edge.models import ENGINES_DIR, Manifest, sha256_file
from edge.vision.detect import priors

MODELS = ("retinaface_mnet025", "sface_128", "mobilefacenet_192", "faceres_1024")


def _session(manifest: Manifest, name: str) -> ort.InferenceSession:
    return ort.InferenceSession(str(manifest.path(name)), providers=["CPUExecutionProvider"])


def test_manifest_lists_exactly_the_shipped_onnx_files(manifest: Manifest) -> None:
    assert sorted(manifest.models) == sorted(MODELS)
    assert sorted(s.file for s in manifest.models.values()) == sorted(p.name for p in ENGINES_DIR.glob("*.onnx"))


@pytest.mark.parametrize("name", MODELS)
def test_file_has_the_manifest_sha256(manifest: Manifest, name: str) -> None:
    spec = manifest.spec(name)
    assert sha256_file(ENGINES_DIR / spec.file) == spec.sha256


def test_altered_file_is_refused(manifest: Manifest, tmp_path) -> None:
    (tmp_path / "models.toml").write_bytes((ENGINES_DIR / "models.toml").read_bytes())
    spec = manifest.spec("retinaface_mnet025")
    data = bytearray((ENGINES_DIR / spec.file).read_bytes())
    data[-1] ^= 1
    (tmp_path / spec.file).write_bytes(bytes(data))
    with pytest.raises(ModelError, match="altered or replaced"):
        Manifest.load(tmp_path).path("retinaface_mnet025")


@pytest.mark.parametrize("name", MODELS)
def test_input_and_outputs_are_the_manifests(manifest: Manifest, name: str) -> None:
    spec = manifest.spec(name)
    session = _session(manifest, name)
    (inp,) = session.get_inputs()
    assert inp.name == spec.input
    assert inp.type == "tensor(float)"
    assert isinstance(inp.shape[0], str), f"{name}: batch must be dynamic, got {inp.shape}"
    hw = inp.shape[2:] if spec.layout == "NCHW" else inp.shape[1:3]
    channels = inp.shape[1] if spec.layout == "NCHW" else inp.shape[3]
    assert channels == 3
    if spec.size == "dynamic":
        assert all(isinstance(d, str) for d in hw), f"{name}: H and W must be dynamic, got {inp.shape}"
    else:
        assert list(hw) == list(spec.size)
    outputs = {o.name: o.shape for o in session.get_outputs()}
    assert sorted(outputs) == sorted(spec.outputs)
    if spec.embedding_output is not None:
        assert outputs[spec.embedding_output][1:] == [spec.dim]


@pytest.mark.parametrize("name", ["sface_128", "mobilefacenet_192", "faceres_1024"])
def test_embedders_take_any_batch(manifest: Manifest, name: str) -> None:
    spec = manifest.spec(name)
    h, w = spec.size
    shape = (3, 3, h, w) if spec.layout == "NCHW" else (3, h, w, 3)
    x = np.random.default_rng(1).normal(0, 1, shape).astype(np.float32)
    (emb,) = _session(manifest, name).run([spec.embedding_output], {spec.input: x})
    assert emb.shape == (3, spec.dim) and np.all(np.isfinite(emb))
    assert not np.allclose(emb[0], emb[1]), "different inputs must give different embeddings"


def test_detector_anchor_count_follows_the_documented_layout(manifest: Manifest) -> None:
    spec = manifest.spec("retinaface_mnet025")
    session = _session(manifest, "retinaface_mnet025")
    for h, w in ((640, 640), (384, 640)):
        x = np.zeros((1, 3, h, w), np.float32)
        loc, conf, landmarks = session.run(["loc", "conf", "landmarks"], {spec.input: x})
        assert loc.shape == (1, len(priors(w, h)), 4)
        assert conf.shape[2] == 2 and landmarks.shape[2] == 10
        np.testing.assert_allclose(conf.sum(axis=2), 1.0, atol=1e-5)  # already softmaxed
    assert len(priors(640, 640)) == 16800
