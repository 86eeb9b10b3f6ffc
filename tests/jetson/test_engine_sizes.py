"""Engines are built for what the daemon will run: the detector sizes and the engine folder come from the
device's own configuration, the same values the daemon reads."""

from pathlib import Path

import cv2
import numpy as np
import pytest
from jetson_support import edge_cli

from edge.config import EdgeConfig, load_config
from edge.config.detector import DetectorConfig
from edge.engines.sizes import CAMERA_FRAMES, detector_sizes, frame_letterboxes
from edge.models import Manifest
from edge.runtime.profiles import DEFAULT_DETECTOR_SIZES, build_profiles, find_profile
from edge.vision.detect import REFINE_INPUT, Detections, Detector


def test_default_sizes_are_what_the_default_detector_runs() -> None:
    assert detector_sizes(DetectorConfig()) == DEFAULT_DETECTOR_SIZES == ((512, 288), (512, 384), (160, 160))
    assert (REFINE_INPUT, REFINE_INPUT) == (160, 160)
    assert detector_sizes(DetectorConfig(refine=False)) == ((512, 288), (512, 384))
    # searched at their own size, no frame is refined: no crop engine
    assert detector_sizes(DetectorConfig(long_side="full")) == ((1280, 736), (1920, 1088), (640, 480), (1280, 960))


class _Shapes:
    """A runtime that records the input shapes it is given and finds no face (the shapes are what is tested)."""

    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.shapes += [x.shape for x in feeds.values()]
        return {"loc": np.zeros((1, 0, 4)), "conf": np.zeros((1, 0, 2)), "landmarks": np.zeros((1, 0, 10))}


@pytest.mark.parametrize("long_side", [512, 640, "full"])
@pytest.mark.parametrize("frame", [(720, 1280), (1080, 1920), (480, 640)])
def test_every_camera_frame_hits_a_built_profile(manifest: Manifest, long_side: int | str,
                                                 frame: tuple[int, int]) -> None:
    """The detector's own preprocessing on a real-shaped frame gives an input one of the profiles accepts."""
    detector_cfg = DetectorConfig(long_side=long_side)
    spec = manifest.spec(detector_cfg.model)
    profiles = build_profiles(spec, detector_sizes(detector_cfg))
    runtime = _Shapes()
    detector = Detector(runtime, spec, None if long_side == "full" else long_side)  # type: ignore[arg-type]
    image = np.zeros((*frame, 3), np.uint8)
    blob, _ = detector.preprocess(image)
    small = Detections(np.array([[100, 100, 130, 136]], np.float32), np.array([0.9], np.float32),
                       np.full((1, 5, 2), 115, np.float32))
    detector.refine(image, small)  # a face small enough to be refined wherever the frame is searched reduced
    assert len(runtime.shapes) == (1 if detector.letterbox(frame[1], frame[0]).scale < 1 else 0)
    for shape in [blob.shape, *runtime.shapes]:
        assert find_profile(profiles, {spec.input: shape}) is not None, shape


def _config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "edge.toml"
    path.write_text(f'[device]\nid = "cam-1"\nstate_dir = "{tmp_path / "state"}"\n{extra}')
    return path


def test_engine_folder_defaults_under_the_state_folder(tmp_path: Path) -> None:
    cfg = load_config(_config(tmp_path))
    assert cfg.runtime.engine_cache == tmp_path / "state" / "engines"
    assert EdgeConfig(device={"id": "cam-1"}).runtime.engine_cache == Path("/var/lib/edge/engines")
    kept = load_config(_config(tmp_path, '[runtime]\nengine_cache = "/srv/engines"\n'))
    assert kept.runtime.engine_cache == Path("/srv/engines")


def test_build_with_config_plans_its_sizes_and_folder(tmp_path: Path) -> None:
    config = _config(tmp_path, "[detector]\nlong_side = \"full\"\n")
    result = edge_cli("engines", "build", "--dry-run", "--model", "retinaface_mnet025", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert f"engine: {tmp_path / 'state' / 'engines'}/" in result.stdout
    profiles = [line.split(": ", 1)[1] for line in result.stdout.splitlines() if "  profile " in line]
    assert profiles == ["input 1x3x736x1280", "input 1x3x1088x1920", "input 1x3x480x640", "input 1x3x960x1280"]


def test_unit_and_container_build_where_the_daemon_loads(tmp_path: Path) -> None:
    """The engines unit and the container's entry build with the daemon's own config, nothing else."""
    root = Path(__file__).resolve().parents[2]
    unit = (root / "deploy/systemd/edge-engines.service").read_text()
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    assert "--config /etc/edge/edge.toml" in exec_start and "--engine-dir" not in exec_start
    daemon = (root / "deploy/systemd/edge.service").read_text()
    assert "--config /etc/edge/edge.toml" in daemon
    entry = (root / "deploy/container/entrypoint.sh").read_text()
    assert "--engine-dir" not in entry and entry.count("--config /etc/edge/edge.toml") >= 2


def test_unlisted_size_on_real_frames_runs_on_onnx_runtime(manifest: Manifest, demo_dir: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    """A frame shape no profile covers goes to ONNX Runtime with one warning; built sizes stay on the engine."""
    from edge.runtime.fallback import ShapeFallback
    from edge.runtime.onnxrt import OnnxRuntime

    spec = manifest.spec("retinaface_mnet025")
    path = manifest.path(spec.name)
    engine_stand_in = OnnxRuntime(path, label="built-sizes")  # where the engine's profiles would run
    runtime = ShapeFallback(engine_stand_in, build_profiles(spec, detector_sizes(DetectorConfig())),
                            lambda: OnnxRuntime(path, label="fallback"), spec.name)
    detector = Detector(runtime, spec, 512)
    capture = cv2.VideoCapture(str(demo_dir / "short_hamilton_clip.mp4"))
    ok, frame = capture.read()
    assert ok and frame.shape[:2] == (360, 640)
    try:
        assert len(detector(frame)) > 0 and runtime.fallback_shapes == []
        square = cv2.resize(frame, (360, 360))
        detector(square)
        detector(square)
    finally:
        runtime.close()
    assert runtime.fallback_shapes == [{"input": (1, 3, 512, 512)}]
    warnings = [r for r in caplog.records if "no profile for input 1x3x512x512" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelname == "WARNING"
    assert runtime.name.startswith("onnxruntime:built-sizes") and "onnxruntime:fallback" in runtime.name


@pytest.mark.parametrize("long_side", [512, 640, "full"])
def test_the_letterbox_engines_built_beforehand_are_the_ones_the_detector_asks_for(manifest: Manifest,
                                                                                  long_side: int | str) -> None:
    """`edge engines build` builds a GPU letterbox engine for each usual camera frame (frame_letterboxes); the
    detector asks for exactly that letterbox, so the daemon's first frame loads one instead of building it."""
    detector_cfg = DetectorConfig(long_side=long_side)
    spec = manifest.spec(detector_cfg.model)
    detector = Detector(_Shapes(), spec, None if long_side == "full" else long_side)  # type: ignore[arg-type]
    planned = frame_letterboxes(detector_cfg)
    assert [frame for frame, _ in planned] == list(CAMERA_FRAMES)
    for (width, height), box in planned:
        assert box == detector.letterbox(width, height)
        assert box.size in detector_sizes(detector_cfg)  # and the detector engine has that input's profile
