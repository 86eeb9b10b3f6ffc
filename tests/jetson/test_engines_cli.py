"""`edge engines build | check` and scripts/build-engines, run as a maintainer would on this machine
(no TensorRT, no GPU): argument handling, the dry-run plan and trtexec line, and the JetPack check."""

import importlib.util
import shlex
from pathlib import Path

import pytest
from jetson_support import REPO, edge_cli, run

from edge.cli import main
from edge.engines.check import check_jetson_utils
from edge.models import Manifest

NO_TENSORRT = importlib.util.find_spec("tensorrt") is not None
needs_no_tensorrt = pytest.mark.skipif(NO_TENSORRT, reason="tensorrt is installed here: the missing-piece "
                                                           "messages cannot show")


def test_dry_run_prints_profiles_target_name_and_trtexec(manifest: Manifest) -> None:
    result = edge_cli("engines", "build", "--dry-run", "--model", "retinaface_mnet025", "--detector-size", "640x384",
                      "--detector-size", "1280x736", "--engine-dir", "/var/lib/edge/engines")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    sha = manifest.spec("retinaface_mnet025").sha256
    assert f"engine: /var/lib/edge/engines/{sha[:16]}-trt<TensorRT version>-<gpu>.engine" in out
    assert "profile 0: input 1x3x384x640" in out and "profile 1: input 1x3x736x1280" in out
    line = next(x for x in out.splitlines() if "trtexec equivalent:" in x).split("trtexec equivalent: ", 1)[1]
    args = shlex.split(line)
    assert args[0] == "trtexec" and f"--onnx={REPO / 'engines' / 'retinaface_mnet025.onnx'}" in args
    assert "--maxShapes=input:1x3x736x1280" in args and "--fp16" in args


def test_build_script_requires_verification_and_passes_options_through() -> None:
    result = run(["scripts/build-engines", "--dry-run", "--model", "mobilefacenet_192", "--precision", "fp32",
                  "--batch", "1,4,16"])
    assert result.returncode == 0, result.stderr
    assert "profile 0: input 1x3x112x112 / 4x3x112x112 / 16x3x112x112" in result.stdout
    assert "precision: fp32" in result.stdout and "--fp16" not in result.stdout


def test_int8_dry_run_names_the_default_embedders_face_calibration_cache(manifest: Manifest) -> None:
    result = run(["scripts/build-engines", "--dry-run", "--model", "sface_128", "--model", "retinaface_mnet025",
                  "--precision", "int8", "--engine-dir", "/var/lib/edge/engines"])
    assert result.returncode == 0, result.stderr
    calib = sorted(arg.split("=", 1)[1] for line in result.stdout.splitlines() if "trtexec equivalent:" in line
                   for arg in shlex.split(line) if arg.startswith("--calib="))
    folder, version = "/var/lib/edge/engines", "<TensorRT version>"
    assert calib == sorted([f"{folder}/{manifest.spec('sface_128').sha256[:16]}-trt{version}-faces.calib-cache",
                            f"{folder}/{manifest.spec('retinaface_mnet025').sha256[:16]}-trt{version}.calib-cache"])
    assert "profile 0: input 1x3x112x112 / 8x3x112x112 / 32x3x112x112" in result.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["--detector-size", "640x360"], "multiples of 32"),
    (["--batch", "8,1,32"], "MIN <= OPT <= MAX"),
    (["--precision", "int4"], "invalid choice"),
    (["--model", "yolo"], "model 'yolo' is not in"),
])
def test_build_rejects_bad_arguments(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = main(["engines", "build", "--dry-run", *args])
    except SystemExit as exit_:  # argparse's usage errors
        code = exit_.code
    assert code == 2
    assert message in capsys.readouterr().err


@needs_no_tensorrt
def test_build_without_tensorrt_names_the_missing_module() -> None:
    result = run(["scripts/build-engines", "--model", "mobilefacenet_192"])
    assert result.returncode == 2
    assert result.stderr.startswith("edge: error: the tensorrt Python module is missing")
    assert "python3-libnvinfer" in result.stderr


@needs_no_tensorrt
def test_check_names_every_missing_jetpack_piece() -> None:
    result = edge_cli("engines", "check")
    assert result.returncode == 1
    status = {line.split()[1]: line.split()[0] for line in result.stdout.splitlines() if line[:1].strip()}
    assert status["python"] == "ok"
    assert status["tensorrt"] == "MISSING" and "python3-libnvinfer" in result.stdout
    if importlib.util.find_spec("pycuda") is None:
        assert status["pycuda"] == "MISSING"
    if importlib.util.find_spec("jetson_utils") is None:
        assert status["jetson_utils"] == "MISSING" and "never `pip install jetson-utils`" in result.stdout
    if not Path("/etc/nv_tegra_release").exists():
        assert status["jetpack"] == "warn"
    assert status["engines"] == "skipped"


@pytest.mark.usefixtures("pypi_jetson_utils")
def test_check_spots_pypi_jetson_utils_shadowing_the_real_one() -> None:
    check = check_jetson_utils()
    assert not check.ok
    assert "not NVIDIA's jetson-utils" in check.detail and "pip uninstall jetson-utils" in check.fix
