"""An embedder's INT8 calibration and engine check run on what the device feeds it: faces found in real frames
by the device's detector, aligned by their five landmarks to the ArcFace template at the embedder's size,
then the manifest's preprocessing. CPU only (ONNX Runtime, no TensorRT): the TensorRT build itself is in
tests/runtime/test_tensorrt_engine.py."""

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import pytest

from edge.engines.faces import FaceAligner
from edge.errors import ConfigError
from edge.models import Manifest
from edge.runtime import sample_inputs
from edge.runtime.build import BuildOptions, _int8_setup, calibration_batches
from edge.runtime.engine_file import calibration_cache_name
from edge.runtime.onnxrt import OnnxRuntime
from edge.runtime.profiles import build_profiles
from edge.runtime.verify import verification_inputs
from edge.vision.align import ARCFACE_112
from edge.vision.quality import pose

EMBEDDERS = ["sface_128", "mobilefacenet_192"]
BATCH = (8, 3, 112, 112)


@pytest.fixture(scope="module")
def aligner(manifest: Manifest) -> Iterator[FaceAligner]:
    aligner = FaceAligner(manifest, threads=2)
    yield aligner
    aligner.close()


@pytest.fixture(scope="module")
def clip_frames(demo_dir: Path) -> list[np.ndarray]:
    """Every 10th frame of the demo clip (640x360; Lin-Manuel Miranda facing the camera in most, a second man
    in profile in a few, nobody in some)."""
    capture = cv2.VideoCapture(str(demo_dir / "short_hamilton_clip.mp4"))
    frames = []
    index = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if index % 10 == 0:
            frames.append(frame)
        index += 1
    capture.release()
    assert len(frames) >= 20
    return frames


@pytest.fixture(scope="module")
def frame_dir(tmp_path_factory: pytest.TempPathFactory, clip_frames: list[np.ndarray]) -> Path:
    """A --calib-dir as a camera leaves it: frames with faces, frames without, and a file that is not an image."""
    folder = tmp_path_factory.mktemp("frames")
    for index, frame in enumerate(clip_frames):
        cv2.imwrite(str(folder / f"frame-{index:03d}.jpg"), frame)
    cv2.imwrite(str(folder / "frame-000a-empty.png"), np.full((360, 640, 3), 90, np.uint8))
    (folder / "frame-000b-broken.jpg").write_bytes(b"not a jpeg")
    return folder


def _template_error(aligner: FaceAligner, crop: np.ndarray) -> tuple[float, float] | None:
    """Mean distance (px) of the landmarks re-detected on a crop from the ArcFace template, and the re-detected
    yaw; None when the crop shows no face. The crop is padded so the detector sees a face with margin around it."""
    pad = 56
    detections = aligner.detector(cv2.copyMakeBorder(crop, pad, pad, pad, pad, cv2.BORDER_REPLICATE))
    if len(detections) == 0:
        return None
    landmarks = detections.landmarks[int(np.argmax(detections.scores))] - pad
    return float(np.linalg.norm(landmarks - ARCFACE_112, axis=1).mean()), pose(landmarks)[0]


def test_calibration_faces_are_crops_on_the_arcface_template(aligner: FaceAligner,
                                                             clip_frames: list[np.ndarray]) -> None:
    per_frame = [aligner.frame_faces(frame, 112) for frame in clip_frames]
    crops = [crop for faces in per_frame for crop in faces]
    assert sum(1 for faces in per_frame if not faces) >= 3, "some frames of the clip have no usable face"
    assert len(crops) >= 15
    assert all(crop.shape == (112, 112, 3) and crop.dtype == np.uint8 for crop in crops)
    found = [_template_error(aligner, crop) for crop in crops]
    assert all(f is not None for f in found)
    frontal = [error for error, yaw in found if yaw < 0.25]  # type: ignore[misc]
    # Re-detection has a few pixels of its own jitter; the template's eyes are 35 px apart.
    assert len(frontal) >= 12 and max(frontal) < 6.5 and float(np.median(frontal)) < 4.5, frontal
    # What calibration used to feed, the whole frame squashed to 112x112, is no face on the template.
    squashed = [_template_error(aligner, cv2.resize(frame, (112, 112), interpolation=cv2.INTER_AREA))
                for frame, faces in zip(clip_frames, per_frame, strict=True) if faces]
    assert all(s is None or s[0] > 10 for s in squashed), squashed


def test_crops_follow_the_embedder_size(aligner: FaceAligner, demo_dir: Path) -> None:
    photo = cv2.imread(str(demo_dir / "obama.jpg"))
    (big,) = aligner.photo_face(photo, 224)
    (small,) = aligner.photo_face(photo, 112)
    assert big.shape == (224, 224, 3) and small.shape == (112, 112, 3)
    # The same alignment at twice the scale (Embedder.crops at faceres_1024's size).
    assert np.abs(cv2.resize(big, (112, 112), interpolation=cv2.INTER_AREA).astype(int) - small).mean() < 6


@pytest.mark.parametrize("model", EMBEDDERS)
def test_aligned_frames_of_one_person_embed_alike(model: str, manifest: Manifest, aligner: FaceAligner,
                                                  clip_frames: list[np.ndarray], data_dir: Path) -> None:
    """Two frames of Lin-Manuel Miranda far apart in the clip embed close together, and apart from LFW strangers,
    through the runtime's own preprocessing: the crops are the faces the embedder was trained on."""
    spec = manifest.spec(model)
    runtime = OnnxRuntime(manifest.path(model), threads=2)

    def embed(crops: list[np.ndarray]) -> np.ndarray:
        (batch,) = sample_inputs.batches(crops, spec, (len(crops), 3, 112, 112))
        vectors = runtime.run({spec.input: batch})[spec.embedding_output]
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    try:
        (first,), (later,) = aligner.frame_faces(clip_frames[10], 112), aligner.frame_faces(clip_frames[20], 112)
        same = embed([first, later])
        strangers = embed(sample_inputs.lfw_faces(data_dir, 12, aligner.photo_face, 112))
    finally:
        runtime.close()
    cosine = float(same[0] @ same[1])
    assert cosine > 0.55, cosine
    assert float((same @ strangers.T).max()) < cosine - 0.25


def _options(tmp_path: Path, frame_dir: Path | None, aligner: FaceAligner | None, images: int = 16) -> BuildOptions:
    return BuildOptions(engine_dir=tmp_path, precision="int8", calibration_dir=frame_dir, calibration_images=images,
                        face_crops=None if aligner is None else aligner.frame_faces)


@pytest.mark.parametrize("model", EMBEDDERS)
def test_embedder_calibrates_on_aligned_faces_preprocessed_as_the_manifest_says(
        model: str, manifest: Manifest, aligner: FaceAligner, frame_dir: Path, tmp_path: Path) -> None:
    spec = manifest.spec(model)
    batches, total = calibration_batches(spec, BATCH, _options(tmp_path, frame_dir, aligner),
                                         tmp_path / calibration_cache_name(spec.sha256, "10.3", faces=True))
    got = list(batches)
    assert total == 2 and [b.shape for b in got] == [BATCH, BATCH]
    frames = (cv2.imread(str(path)) for path in sorted(frame_dir.glob("frame-*.jpg")))
    first = next(faces[0] for frame in frames if frame is not None and (faces := aligner.frame_faces(frame, 112)))
    rgb = first[..., ::-1].transpose(2, 0, 1).astype(np.float32)
    if model == "sface_128":  # raw RGB 0-255: the graph normalises
        np.testing.assert_array_equal(got[0][0], rgb)
        assert got[0].min() >= 0 and got[0].max() <= 255 and got[0].max() > 200
    else:
        np.testing.assert_allclose(got[0][0], (rgb - 127.5) / 128, atol=1e-6)
        assert got[0].min() >= -1 and got[0].max() <= 1


def test_too_few_faces_fail_with_what_to_pass(manifest: Manifest, aligner: FaceAligner, frame_dir: Path,
                                              tmp_path: Path) -> None:
    spec = manifest.spec("sface_128")
    cache = tmp_path / calibration_cache_name(spec.sha256, "10.3", faces=True)
    # 28 frames, some without a face, a blank one and a broken file: fewer faces than the 64 a calibration needs.
    with pytest.raises(ConfigError, match=r"found \d+ usable face\(s\) in the 30 frame\(s\).*at least 64.*"
                                          r"pass --calib-dir with more frames"):
        calibration_batches(spec, BATCH, _options(tmp_path, frame_dir, aligner, images=512), cache)
    with pytest.raises(ConfigError, match="--calib-images 8 is less than one batch"):
        calibration_batches(spec, (16, 3, 112, 112), _options(tmp_path, frame_dir, aligner, images=8), cache)


def test_embedder_needs_the_aligner_and_a_cache_spares_the_frames(manifest: Manifest, frame_dir: Path,
                                                                  tmp_path: Path) -> None:
    spec = manifest.spec("mobilefacenet_192")
    cache = tmp_path / calibration_cache_name(spec.sha256, "10.3", faces=True)
    with pytest.raises(ConfigError, match="needs aligned faces, not whole frames"):
        calibration_batches(spec, BATCH, _options(tmp_path, frame_dir, None), cache)
    with pytest.raises(ConfigError, match="pass --calib-dir"):
        calibration_batches(spec, BATCH, _options(tmp_path, None, None), cache)
    cache.write_bytes(b"calibration table")

    def never(image: np.ndarray, size: int) -> list[np.ndarray]:
        raise AssertionError("frames read although the calibration cache is there")

    options = BuildOptions(engine_dir=tmp_path, precision="int8", calibration_dir=frame_dir, face_crops=never)
    batches, total = calibration_batches(spec, BATCH, options, cache)
    assert list(batches) == [] and total == 0
    assert cache.name.endswith("-faces.calib-cache")
    assert cache.name != calibration_cache_name(spec.sha256, "10.3"), "a whole-frame cache from before is not reused"


def test_detector_still_calibrates_on_whole_letterboxed_frames(manifest: Manifest, frame_dir: Path,
                                                               tmp_path: Path) -> None:
    spec = manifest.spec("retinaface_mnet025")

    def never(image: np.ndarray, size: int) -> list[np.ndarray]:
        raise AssertionError("the detector is calibrated on whole frames")

    options = BuildOptions(engine_dir=tmp_path, precision="int8", calibration_dir=frame_dir, calibration_images=8,
                           face_crops=never)
    batches, total = calibration_batches(spec, (1, 3, 384, 640), options,
                                         tmp_path / calibration_cache_name(spec.sha256, "10.3"))
    got = list(batches)
    assert total == 8 and len(got) == 8 and got[0].shape == (1, 3, 384, 640)
    frame = cv2.imread(str(sorted(frame_dir.glob("*"))[0]))
    np.testing.assert_array_equal(got[0][0], sample_inputs.preprocess(frame, spec, (640, 384)))


@pytest.mark.parametrize("model", EMBEDDERS)
def test_embedder_engines_are_checked_on_aligned_lfw_faces(model: str, manifest: Manifest, aligner: FaceAligner,
                                                           data_dir: Path) -> None:
    spec = manifest.spec(model)
    profiles = build_profiles(spec, batch=(1, 4, 8))
    batches = list(verification_inputs(spec, profiles, data_dir, 9, aligner.photo_face))
    assert [b.shape for b in batches] == [(4, 3, 112, 112), (4, 3, 112, 112), (1, 3, 112, 112)]
    faces = sample_inputs.lfw_faces(data_dir, 9, aligner.photo_face, 112)
    np.testing.assert_allclose(batches[0], np.stack([sample_inputs.preprocess(f, spec, (112, 112))
                                                     for f in faces[:4]]))
    errors = [_template_error(aligner, face) for face in faces]
    assert all(e is not None for e in errors) and float(np.median([e[0] for e in errors])) < 5  # type: ignore[index]
    with pytest.raises(ValueError, match="checked on aligned faces"):
        list(verification_inputs(spec, profiles, data_dir, 9))


def test_int8_setup_feeds_tensorrt_the_aligned_face_batches(manifest: Manifest, aligner: FaceAligner,
                                                            frame_dir: Path, tmp_path: Path) -> None:
    """The glue TensorRT calls into, with stand-ins for tensorrt and pycuda (the real build is in
    tests/runtime/test_tensorrt_engine.py): the calibrator hands over the face batches, then says it is done,
    and writes its table under the embedder's face cache name."""
    spec = manifest.spec("sface_128")
    copied: list[np.ndarray] = []
    trt: Any = SimpleNamespace(__version__="10.3.0", BuilderFlag=SimpleNamespace(INT8="INT8"),
                               IInt8EntropyCalibrator2=type("Calibrator", (), {"__init__": lambda self: None}))
    cuda: Any = SimpleNamespace(mem_alloc=lambda nbytes: 4096, memcpy_htod=lambda dst, array: copied.append(array))
    config: Any = SimpleNamespace(flags=[], profile=None)
    config.set_flag = config.flags.append
    config.set_calibration_profile = lambda profile: setattr(config, "profile", profile)
    (profile,) = build_profiles(spec)  # batch 1 / 8 / 32: calibrated at the optimum, 8
    calibrator = _int8_setup(trt, cuda, SimpleNamespace(platform_has_fast_int8=True), config, spec, profile,
                             "profile 0", _options(tmp_path, frame_dir, aligner))
    assert config.flags == ["INT8"] and config.int8_calibrator is calibrator and config.profile == "profile 0"
    assert calibrator.get_batch_size() == 8
    while calibrator.get_batch([spec.input]) is not None:
        pass
    assert [b.shape for b in copied] == [BATCH, BATCH] and copied[0].max() > 200  # raw 0-255 RGB faces
    calibrator.write_calibration_cache(b"table")
    assert (tmp_path / f"{spec.sha256[:16]}-trt10.3.0-faces.calib-cache").read_bytes() == b"table"
