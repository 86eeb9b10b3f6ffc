"""scripts/gpu-check where it cannot run (no TensorRT, pycuda or GPU here): it parses, imports the NVIDIA
modules only once it runs, and stops with exit 2, a message naming what is missing, and a verdict file
saying it could not run. The full check runs on a GPU machine (docs/jetson.md)."""

import importlib.util
import json
import os
import py_compile
import subprocess
import sys
from importlib.machinery import SourceFileLoader
from pathlib import Path

import pytest
from jetson_support import REPO

SCRIPT = REPO / "scripts" / "gpu-check"
NEEDS_NO_TENSORRT = pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None,
                                       reason="tensorrt is installed here")


def gpu_check(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})}, cwd=REPO)


def test_script_parses_and_loads_without_the_nvidia_modules() -> None:
    py_compile.compile(str(SCRIPT), doraise=True)
    code = (f"import runpy, sys; runpy.run_path({str(SCRIPT)!r}, run_name='gpu_check'); "
            "print(sorted({'tensorrt', 'pycuda', 'pycuda.driver'} & set(sys.modules)))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "[]"
    loader = SourceFileLoader("gpu_check", str(SCRIPT))
    spec = importlib.util.spec_from_loader("gpu_check", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    args = module.parse_args(["--config", "x.toml"])
    assert args.budget_s < 300 and module.BATCHES == (1, 7, 32)


@NEEDS_NO_TENSORRT
def test_without_tensorrt_it_exits_2_naming_the_package(tmp_path: Path) -> None:
    result = gpu_check(env={"OUT": str(tmp_path)})
    assert result.returncode == 2, result.stdout + result.stderr
    assert "tensorrt Python module is missing" in result.stderr and "python3-libnvinfer" in result.stderr
    verdict = json.loads((tmp_path / "gpu-check.json").read_text())
    assert verdict["ok"] is False and "tensorrt" in verdict["unusable"]


STAND_INS = {
    "tensorrt/__init__.py": '__version__ = "{version}"\n',
    "pycuda/__init__.py": "",
    "pycuda/driver.py": "class Error(Exception):\n    pass\n\n\ndef init():\n"
                        "    raise Error('cuInit failed: no CUDA-capable device is detected')\n",
}


@pytest.mark.parametrize(("version", "message"), [
    ("11.1.0.106", "TensorRT 11.1.0.106 is not supported"),
    ("10.3.0.30", "CUDA does not start (Error: cuInit failed"),
])
def test_unusable_tensorrt_or_cuda_exits_2(tmp_path: Path, version: str, message: str) -> None:
    """TensorRT 11 has no FP16/INT8 builder API; a pycuda whose cuInit fails has no GPU: both are named."""
    site = tmp_path / "site"
    for name, text in STAND_INS.items():
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_text(text.format(version=version))
    out = tmp_path / "verdict.json"
    result = gpu_check("--out", str(out), env={"PYTHONPATH": f"{site}{os.pathsep}{REPO}"})
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert json.loads(out.read_text())["ok"] is False
