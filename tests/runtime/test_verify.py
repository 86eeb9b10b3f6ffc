"""What an engine is checked against: real faces preprocessed as the manifest says, ONNX Runtime's outputs,
and tolerances that pass FP16-sized differences and fail a wrong network. ONNX Runtime stands in for the
engine here (the comparison code is the same); the engine itself is compared in test_tensorrt_engine.py."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.engines.faces import FaceAligner
from edge.errors import ConfigError
from edge.models import Manifest
from edge.runtime import sample_inputs
from edge.runtime.onnxrt import OnnxRuntime
from edge.runtime.profiles import build_profiles
from edge.runtime.verify import compare_runtimes, diff_output, verification_inputs


class HalfPrecision:
    """ONNX Runtime with FP16-sized error: inputs perturbed by about float16's resolution (1e-3 relative),
    outputs rounded to float16, as an FP16 engine's would be."""

    def __init__(self, runtime: OnnxRuntime) -> None:
        self.name, self._runtime = "fp16-like", runtime
        self._noise = np.random.default_rng(0)

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        noisy = {k: (v + self._noise.normal(0, 1e-3, v.shape) * np.abs(v).max()).astype(np.float32)
                 for k, v in inputs.items()}
        return {k: v.astype(np.float16).astype(np.float32) for k, v in self._runtime.run(noisy).items()}

    def close(self) -> None:
        self._runtime.close()


class Wrong:
    """Same network, wrong input (upside down, or shifted 24 pixels): outputs of the right names and shapes,
    as a miscompiled engine or a layout mix-up would give."""

    def __init__(self, runtime: OnnxRuntime, how: str) -> None:
        self.name, self._runtime, self._how = "wrong", runtime, how

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._how == "flip":
            changed = {k: np.ascontiguousarray(v[..., ::-1, :]) for k, v in inputs.items()}
        else:
            changed = {k: np.ascontiguousarray(np.roll(v, 24, axis=-1)) for k, v in inputs.items()}
        return self._runtime.run(changed)

    def close(self) -> None:
        self._runtime.close()


def test_faces_are_preprocessed_as_the_manifest_says(manifest: Manifest, data_dir: Path,
                                                    aligner: FaceAligner) -> None:
    spec = manifest.spec("mobilefacenet_192")
    photos = sample_inputs.lfw_images(data_dir, 4)
    assert len(photos) == 4 and photos[0].shape == (250, 250, 3)
    x = sample_inputs.preprocess(photos[0], spec, (112, 112))
    assert x.shape == (3, 112, 112) and x.dtype == np.float32
    rgb = cv2.cvtColor(cv2.resize(photos[0], (112, 112), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    np.testing.assert_allclose(x[0], (rgb[..., 0].astype(np.float32) - 127.5) / 128, atol=1e-6)
    nhwc = sample_inputs.preprocess(photos[0], manifest.spec("faceres_1024"), (224, 224))
    assert nhwc.shape == (224, 224, 3)
    # An aligned crop at the embedder's size is fed as it is, as Embedder feeds it.
    (face,) = aligner.photo_face(photos[0], 112)
    x = sample_inputs.preprocess(face, manifest.spec("sface_128"), (112, 112))
    np.testing.assert_array_equal(x, face[..., ::-1].transpose(2, 0, 1).astype(np.float32))


def test_detector_frames_are_letterboxed(manifest: Manifest, data_dir: Path) -> None:
    spec = manifest.spec("retinaface_mnet025")
    (frame,) = sample_inputs.lfw_images(data_dir, 1)
    x = sample_inputs.preprocess(frame, spec, (640, 384))
    assert x.shape == (3, 384, 640)
    # 250x250 scaled to 384x384 at the left; the padding right of it is black minus the mean.
    np.testing.assert_allclose(x[:, :, 500], -np.asarray(spec.mean, np.float32)[:, None] * np.ones((1, 384)))
    assert np.abs(x[:, :, :384] + np.asarray(spec.mean, np.float32)[:, None, None]).max() > 50


def test_batches_are_full_and_calibration_folders_skip_unreadable_files(manifest: Manifest, data_dir: Path,
                                                                         tmp_path: Path) -> None:
    spec = manifest.spec("mobilefacenet_192")
    frames = tmp_path / "frames"
    frames.mkdir()
    for index, face in enumerate(sample_inputs.lfw_images(data_dir, 5)):
        cv2.imwrite(str(frames / f"{index}.png"), face)
    (frames / "5.jpg").write_bytes(b"not a jpeg")
    (frames / "notes.txt").write_text("ignored")
    images = list(sample_inputs.folder_images(frames, limit=100))
    assert len(images) == 5
    got = list(sample_inputs.batches(images, spec, (2, 3, 112, 112)))
    assert [b.shape for b in got] == [(2, 3, 112, 112), (2, 3, 112, 112)]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="no images"):
        list(sample_inputs.folder_images(empty, limit=1))
    with pytest.raises(ConfigError, match="does not exist"):
        list(sample_inputs.folder_images(tmp_path / "missing", limit=1))


def test_verification_inputs_cover_every_profile(manifest: Manifest, data_dir: Path, aligner: FaceAligner) -> None:
    detector = manifest.spec("retinaface_mnet025")
    shapes = [b.shape for b in verification_inputs(detector, build_profiles(detector), data_dir, 3)]
    assert shapes == [(1, 3, 288, 512)] * 3 + [(1, 3, 384, 512)] * 3 + [(1, 3, 160, 160)] * 3  # the refinement crop
    embedder = manifest.spec("mobilefacenet_192")
    shapes = [b.shape for b in verification_inputs(embedder, build_profiles(embedder, batch=(1, 4, 8)), data_dir, 9,
                                                   aligner.photo_face)]
    assert shapes == [(4, 3, 112, 112), (4, 3, 112, 112), (1, 3, 112, 112)]


def test_fp16_sized_differences_pass_and_another_network_fails(manifest: Manifest, data_dir: Path,
                                                               aligner: FaceAligner) -> None:
    spec = manifest.spec("mobilefacenet_192")
    profiles = build_profiles(spec, batch=(1, 8, 8))
    reference = OnnxRuntime(manifest.path("mobilefacenet_192"), threads=2)
    close = compare_runtimes(spec, HalfPrecision(reference), reference,
                             verification_inputs(spec, profiles, data_dir, 16, aligner.photo_face), "fp16")
    assert close.ok, close.summary()
    assert close.samples == 17
    (diff,) = close.outputs
    assert diff.max_abs > 0 and diff.min_cosine > 0.999
    wrong = compare_runtimes(spec, Wrong(reference, "flip"),
                             reference, verification_inputs(spec, profiles, data_dir, 16, aligner.photo_face), "fp16")
    assert not wrong.ok and "OUT OF TOLERANCE" in wrong.summary()


def test_detector_is_compared_where_it_sees_faces_at_every_profile_size(manifest: Manifest, data_dir: Path) -> None:
    spec = manifest.spec("retinaface_mnet025")
    reference = OnnxRuntime(manifest.path("retinaface_mnet025"), threads=2)
    result = compare_runtimes(spec, HalfPrecision(reference), reference,
                              verification_inputs(spec, build_profiles(spec), data_dir, 2), "fp16")
    assert result.ok, result.summary()
    assert [o.name for o in result.outputs] == ["loc", "conf", "landmarks"]
    assert result.samples == 6  # two photos at each of 512x288, 512x384 and the refinement's 160x160
    shifted = compare_runtimes(spec, Wrong(reference, "shift"), reference,
                               verification_inputs(spec, build_profiles(spec), data_dir, 2), "fp16")
    assert not any(o.ok for o in shifted.outputs), shifted.summary()


def test_shape_mismatch_is_never_within_tolerance() -> None:
    diff = diff_output("embedding", np.ones((2, 192), np.float32), np.ones((2, 128), np.float32), "fp32")
    assert not diff.ok
