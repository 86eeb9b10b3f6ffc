"""`backend = "auto"` on a machine where TensorRT is installed but cannot run: the model runs on ONNX Runtime,
a WARNING says why, and the runtime's note carries the reason to the device status; `tensorrt` refuses.

The failures are those of the real packages, reproduced by stand-in `tensorrt` and `pycuda` packages on
sys.path (this machine has neither): pycuda's driver module failing to load libcuda.so.1 (a container without
--runtime nvidia), pycuda.driver.init() failing in cuInit (no GPU device node allowed), TensorRT's runtime
returning None from deserialize_cuda_engine, and TensorRT 11, whose bindings lack the FP16/INT8 builder API.
"""

import logging
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from test_engine_file import GPU, write_engine
from test_engine_file import meta_for as engine_meta

from edge.errors import ModelError
from edge.models import Manifest
from edge.runtime.onnxrt import OnnxRuntime
from edge.runtime.select import describe, open_runtime, unavailable_reason
from edge.runtime.tensorrt import check_tensorrt_version, shared_logger

MODEL = "mobilefacenet_192"

TENSORRT = '''
__version__ = "{version}"
class Logger:
    WARNING = 2
    def __init__(self, severity): self.severity = severity
class Runtime:
    def __init__(self, logger): self.logger = logger
    def deserialize_cuda_engine(self, plan): return None  # TensorRT logs why and returns None
'''
CUDA_OK = '''
class device_attribute:
    MULTIPROCESSOR_COUNT = 16
class _Context:
    def push(self): pass
    def detach(self): pass
class Context:
    @staticmethod
    def pop(): pass
class Device:
    def __init__(self, index): pass
    def name(self): return "Orin"
    def compute_capability(self): return (8, 7)
    def get_attribute(self, attribute): return 8
    def retain_primary_context(self): return _Context()
def init(): pass
'''
CUDA_NO_DEVICE = '''
class Error(Exception): pass
class RuntimeError(Error): pass
def init():
    raise RuntimeError("cuInit failed: no CUDA-capable device is detected")
'''
CUDA_NO_LIBCUDA = '''
raise ImportError("libcuda.so.1: cannot open shared object file: No such file or directory")
'''


@pytest.fixture
def sdk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """A function installing stand-in tensorrt (of a version) and pycuda (with a driver module) first on sys.path."""
    site = tmp_path / "site"

    def install(version: str, driver: str) -> None:
        (site / "tensorrt").mkdir(parents=True)
        (site / "tensorrt" / "__init__.py").write_text(textwrap.dedent(TENSORRT.format(version=version)))
        (site / "pycuda").mkdir()
        (site / "pycuda" / "__init__.py").write_text("")
        (site / "pycuda" / "driver.py").write_text(textwrap.dedent(driver))
        monkeypatch.syspath_prepend(str(site))

    yield install
    for name in [n for n in sys.modules if n == "tensorrt" or n.startswith(("tensorrt.", "pycuda"))]:
        del sys.modules[name]
    shared_logger.cache_clear()


def _fell_back(runtime: object, caplog: pytest.LogCaptureFixture, why: str) -> None:
    assert isinstance(runtime, OnnxRuntime)
    assert why in runtime.note and why in describe(runtime)
    warning = [r for r in caplog.records if r.levelno == logging.WARNING and "TensorRT not used" in r.getMessage()]
    assert warning and why in warning[0].getMessage()
    out = runtime.run({"input": np.zeros((1, 3, 112, 112), np.float32)})  # and it computes
    assert out and all(np.isfinite(v).all() for v in out.values())
    runtime.close()


@pytest.mark.parametrize(("driver", "why"), [
    (CUDA_NO_LIBCUDA, "libcuda.so.1"), (CUDA_NO_DEVICE, "cuInit failed")], ids=["no-libcuda", "cuinit"])
def test_cuda_that_will_not_start_falls_back(sdk, manifest: Manifest, tmp_path: Path, driver: str, why: str,
                                             caplog: pytest.LogCaptureFixture) -> None:
    sdk("10.3.0.30", driver)
    runtime = open_runtime(manifest, MODEL, "auto", engine_dir=tmp_path)
    if driver is CUDA_NO_LIBCUDA:
        assert "--runtime nvidia" in runtime.note  # type: ignore[attr-defined]
    _fell_back(runtime, caplog, why)
    with pytest.raises(ModelError, match=why):
        open_runtime(manifest, MODEL, "tensorrt", engine_dir=tmp_path)
    assert why in (unavailable_reason(manifest, MODEL, "tensorrt", tmp_path) or "")


def test_missing_engine_falls_back_with_a_warning(sdk, manifest: Manifest, tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    sdk("10.3.0.30", CUDA_OK)
    _fell_back(open_runtime(manifest, MODEL, "auto", engine_dir=tmp_path), caplog, "no TensorRT engine")


def test_engine_that_will_not_deserialize_falls_back(sdk, manifest: Manifest, tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    sdk("10.3.0.30", CUDA_OK)
    assert GPU == "orin-sm87-8sm"  # what the stand-in device reports
    write_engine(tmp_path, engine_meta(manifest, MODEL))
    _fell_back(open_runtime(manifest, MODEL, "auto", engine_dir=tmp_path), caplog, "could not deserialize")
    with pytest.raises(ModelError, match="could not deserialize"):
        open_runtime(manifest, MODEL, "tensorrt", engine_dir=tmp_path)


def test_tensorrt_11_is_refused_and_auto_falls_back(sdk, manifest: Manifest, tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    sdk("11.1.0.106", CUDA_OK)
    _fell_back(open_runtime(manifest, MODEL, "auto", engine_dir=tmp_path), caplog, "TensorRT 11.1.0.106 is not "
                                                                                  "supported")


@pytest.mark.parametrize("version", ["10.0.1.6", "10.3.0.30", "10.13.3.9"])
def test_tensorrt_10_is_supported(version: str) -> None:
    check_tensorrt_version(version)


@pytest.mark.parametrize("version", ["8.6.2.3", "11.0.0.114", "11.1.0.106", "garbage"])
def test_other_tensorrt_versions_are_refused_saying_which_is_needed(version: str) -> None:
    with pytest.raises(ModelError, match=r"not supported: edge builds and runs engines with TensorRT 10\.x"):
        check_tensorrt_version(version)


def test_without_tensorrt_installed_auto_is_quiet(manifest: Manifest, caplog: pytest.LogCaptureFixture) -> None:
    """A development machine or HQ (no tensorrt at all) is not warned at every start."""
    if "tensorrt" in sys.modules or __import__("importlib").util.find_spec("tensorrt") is not None:
        pytest.skip("tensorrt is installed here")
    runtime = open_runtime(manifest, MODEL, "auto")
    assert isinstance(runtime, OnnxRuntime) and runtime.note == "TensorRT not installed"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    runtime.close()
