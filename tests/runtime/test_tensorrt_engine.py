"""TensorRT end to end: build real engines from the shipped ONNX on this machine's GPU, load them, and
compare them with ONNX Runtime on real faces. Needs tensorrt and pycuda (a Jetson with JetPack, or a CUDA
machine with TensorRT): skipped elsewhere, naming the missing module."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.engines.faces import FaceAligner
from edge.errors import ModelError
from edge.models import Manifest


def test_modules_import_without_the_nvidia_sdks() -> None:
    code = ("import sys, edge.runtime.tensorrt, edge.runtime.build, edge.capture.jetson, edge.engines.cli; "
            "print(sorted({'tensorrt', 'pycuda', 'jetson_utils'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="tensorrt is installed here")
def test_runtime_without_tensorrt_says_what_to_install(manifest: Manifest, tmp_path: Path) -> None:
    from edge.runtime.tensorrt import TensorRTRuntime, engine_path_for

    with pytest.raises(ModelError, match=r"tensorrt Python module is missing.*python3-libnvinfer"):
        TensorRTRuntime(tmp_path / "x.engine", manifest.spec("mobilefacenet_192"))
    with pytest.raises(ModelError, match="tensorrt Python module is missing"):
        engine_path_for(manifest, "mobilefacenet_192", tmp_path)


@pytest.fixture(scope="module")
def sdks() -> None:
    pytest.importorskip("tensorrt", reason="tensorrt is not installed (JetPack's python3-libnvinfer): no TensorRT")
    pytest.importorskip("pycuda.driver", reason="pycuda is not installed (pip install '.[jetson]')")


@pytest.fixture(scope="module")
def embedder_engine(sdks: None, manifest: Manifest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edge.runtime.build import BuildOptions, build_engine

    folder = tmp_path_factory.mktemp("engines")
    result = build_engine(manifest, "mobilefacenet_192", BuildOptions(engine_dir=folder, batch=(1, 4, 8)))
    return result.path


def test_built_embedder_matches_onnx_runtime_on_real_faces(embedder_engine: Path, manifest: Manifest,
                                                          data_dir: Path, aligner: FaceAligner) -> None:
    from edge.runtime.engine_file import read_engine
    from edge.runtime.tensorrt import engine_path_for
    from edge.runtime.verify import verify_engine

    assert engine_path_for(manifest, "mobilefacenet_192", embedder_engine.parent) == embedder_engine
    meta, _ = read_engine(embedder_engine, "rebuild")
    comparison = verify_engine(manifest, "mobilefacenet_192", embedder_engine, meta.profiles, data_dir, 16,
                               meta.precision, aligner.photo_face)
    assert comparison.ok, comparison.summary()
    assert list(embedder_engine.parent.glob("*.timing-cache"))


def test_engine_refuses_batches_and_names_outside_its_profiles(embedder_engine: Path, manifest: Manifest) -> None:
    from edge.runtime.tensorrt import TensorRTRuntime

    runtime = TensorRTRuntime(embedder_engine, manifest.spec("mobilefacenet_192"))
    try:
        out = runtime.run({"input": np.zeros((3, 3, 112, 112), np.float32)})
        assert out["embedding"].shape == (3, 192)
        with pytest.raises(ModelError, match="no optimization profile"):
            runtime.run({"input": np.zeros((9, 3, 112, 112), np.float32)})
        with pytest.raises(ModelError, match="takes inputs"):
            runtime.run({"data": np.zeros((1, 3, 112, 112), np.float32)})
    finally:
        runtime.close()


def test_copied_or_renamed_engine_is_refused(embedder_engine: Path, manifest: Manifest, tmp_path: Path) -> None:
    from edge.runtime.tensorrt import TensorRTRuntime

    renamed = tmp_path / embedder_engine.name.replace("-trt", "-trt0")
    renamed.write_bytes(embedder_engine.read_bytes())
    with pytest.raises(ModelError, match="does not match its header"):
        TensorRTRuntime(renamed, manifest.spec("mobilefacenet_192"))
    with pytest.raises(ModelError, match="built from model sha256"):
        TensorRTRuntime(embedder_engine, manifest.spec("faceres_1024"))


def test_detector_engine_runs_each_built_size(sdks: None, manifest: Manifest, tmp_path: Path) -> None:
    from edge.runtime.build import BuildOptions, build_engine
    from edge.runtime.onnxrt import OnnxRuntime
    from edge.runtime.tensorrt import TensorRTRuntime

    result = build_engine(manifest, "retinaface_mnet025",
                          BuildOptions(engine_dir=tmp_path, detector_sizes=((640, 384), (320, 320))))
    engine = TensorRTRuntime(result.path, manifest.spec("retinaface_mnet025"))
    reference = OnnxRuntime(manifest.path("retinaface_mnet025"), threads=2)
    try:
        for height, width in ((384, 640), (320, 320), (384, 640)):
            x = np.random.default_rng(height).normal(0, 60, (1, 3, height, width)).astype(np.float32)
            ours, theirs = engine.run({"input": x}), reference.run({"input": x})
            assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}
        with pytest.raises(ModelError, match="--detector-size"):
            engine.run({"input": np.zeros((1, 3, 640, 640), np.float32)})
    finally:
        engine.close()


@pytest.mark.parametrize("model", ["sface_128", "mobilefacenet_192"])
def test_int8_embedder_calibrated_on_aligned_faces_stays_close_to_onnx_runtime(
        sdks: None, model: str, manifest: Manifest, aligner: FaceAligner, data_dir: Path, tmp_path: Path) -> None:
    """INT8 calibrated on the faces found and aligned in camera frames (the demo clip) agrees with ONNX Runtime
    on aligned LFW faces within INT8's tolerance; the cache is named for faces and reused by a rebuild."""
    from edge.runtime.build import BuildOptions, build_engine
    from edge.runtime.engine_file import read_engine
    from edge.runtime.verify import verify_engine

    frames = tmp_path / "frames"
    frames.mkdir()
    capture = cv2.VideoCapture(str(data_dir / "demo" / "short_hamilton_clip.mp4"))
    index = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        cv2.imwrite(str(frames / f"{index:04d}.jpg"), frame)
        index += 1
    capture.release()
    options = BuildOptions(engine_dir=tmp_path / "engines", precision="int8", calibration_dir=frames,
                           calibration_images=64, batch=(1, 8, 8), face_crops=aligner.frame_faces)
    result = build_engine(manifest, model, options)
    meta, _ = read_engine(result.path, "rebuild")
    assert meta.precision == "int8"
    assert [p.name for p in (tmp_path / "engines").glob("*.calib-cache")] == [
        f"{manifest.spec(model).sha256[:16]}-trt{meta.tensorrt}-faces.calib-cache"]
    comparison = verify_engine(manifest, model, result.path, meta.profiles, data_dir, 32, "int8", aligner.photo_face)
    assert comparison.ok, comparison.summary()


def test_gpu_letterbox_reads_the_frame_from_gpu_memory_and_finds_what_the_cpu_finds(
        sdks: None, manifest: Manifest, data_dir: Path, tmp_path: Path) -> None:
    """A 720p frame in GPU memory (as a camera's mapped buffer holds it) is letterboxed on the GPU into the
    detector engine: the same faces as the CPU's letterbox into the same engine (edge.runtime.letterbox_trt)."""
    from edge.capture.base import DeviceImage
    from edge.runtime.build import BuildOptions, build_engine
    from edge.runtime.letterbox_trt import GpuLetterbox
    from edge.runtime.tensorrt import TensorRTRuntime, import_tensorrt
    from edge.track.tracker import iou_matrix
    from edge.vision.detect import Detector

    spec = manifest.spec("retinaface_mnet025")
    result = build_engine(manifest, spec.name, BuildOptions(engine_dir=tmp_path, detector_sizes=((512, 288),)))
    engine = TensorRTRuntime(result.path, spec)
    gpu = GpuLetterbox(engine, tmp_path)
    _, cuda = import_tensorrt()
    frame = np.ascontiguousarray(cv2.resize(cv2.imread(str(data_dir / "bbt" / "bbt1.jpg")), (1280, 720)))
    try:
        with engine.context():
            memory = cuda.mem_alloc(frame.nbytes)
            cuda.memcpy_htod(memory, frame)
        cpu = Detector(engine, spec, 512)(frame)
        found = Detector(engine, spec, 512, gpu=gpu)(frame, DeviceImage(int(memory), 1280, 720))
        assert len(found) == len(cpu) >= 4
        assert (iou_matrix(cpu.boxes, found.boxes).max(axis=1) > 0.95).all()
        assert list(tmp_path.glob("letterbox-*.plan"))  # built once, kept beside the engines
    finally:
        with engine.context():
            memory.free()
        gpu.close()
        engine.close()
