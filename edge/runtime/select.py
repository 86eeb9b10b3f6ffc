"""Pick a backend for a model: TensorRT when it and a matching engine exist, else ONNX Runtime."""

import importlib.util
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from edge.errors import ModelError
from edge.models import Manifest
from edge.runtime.base import Runtime
from edge.runtime.fallback import ShapeFallback
from edge.runtime.onnxrt import OnnxRuntime

log = logging.getLogger(__name__)

Backend = Literal["auto", "onnxruntime", "tensorrt"]


def tensorrt_available() -> bool:
    return importlib.util.find_spec("tensorrt") is not None and importlib.util.find_spec("pycuda") is not None


def unavailable_reason(manifest: Manifest, model: str, backend: Backend = "auto",
                       engine_dir: Path | None = None) -> str | None:
    """Why `open_runtime` would fail for this model now, or None: checked before a device commits to a model."""
    try:
        manifest.path(model)  # present and unaltered
    except ModelError as exc:
        return str(exc)
    if backend != "tensorrt":
        return None
    if not tensorrt_available():
        return "backend tensorrt asked for, but the tensorrt or pycuda module is missing"
    from edge.runtime.tensorrt import engine_path_for

    try:
        engine = engine_path_for(manifest, model, engine_dir)
    except Exception as exc:  # an unsupported TensorRT, pycuda that cannot start CUDA
        return str(exc) if isinstance(exc, ModelError) else f"TensorRT cannot start: {type(exc).__name__}: {exc}"
    return None if engine.is_file() else f"no TensorRT engine {engine}: build it with `scripts/build-engines`"


def open_runtime(manifest: Manifest, model: str, backend: Backend = "auto", threads: int = 1,
                 engine_dir: Path | None = None) -> Runtime:
    """Open `model` on the requested backend.

    `auto` uses TensorRT when tensorrt and pycuda are installed, CUDA starts and an engine built for this
    model, TensorRT version and GPU exists and loads; any of those failing on a machine that has TensorRT
    (no libcuda, a container without --runtime nvidia, cuInit failing, an engine that will not deserialize,
    a TensorRT version edge does not support) falls back to ONNX Runtime with a WARNING, and the runtime's
    `note` says why (it reaches the device's status at HQ). `tensorrt` never falls back: the failure is an
    error naming it. A detector engine runs the sizes it has profiles for; others go to ONNX Runtime.
    """
    spec = manifest.spec(model)
    onnx_path = manifest.path(model, verify=False)  # hashed where it is used: below, or by OnnxRuntime on load

    def onnx(note: str = "") -> OnnxRuntime:
        return OnnxRuntime(onnx_path, threads=threads, label=model, sha256=spec.sha256, note=note)

    if backend == "onnxruntime":
        return onnx()
    if not tensorrt_available():
        if backend == "tensorrt":
            raise ModelError("backend tensorrt asked for, but the tensorrt or pycuda module is missing: on a Jetson "
                             "install JetPack's python3-libnvinfer and `pip install .[jetson]`")
        log.info("tensorrt/pycuda not installed; %s runs on ONNX Runtime", model)
        return onnx("TensorRT not installed")
    from edge.runtime.tensorrt import TensorRTRuntime, engine_path_for

    try:
        engine = engine_path_for(manifest, model, engine_dir)  # imports pycuda, checks the version, starts CUDA
        if not engine.is_file():
            raise ModelError(f"no TensorRT engine {engine} for {model}: build it with `scripts/build-engines`")
    except Exception as exc:  # pycuda.driver.Error, ImportError of libcuda.so.1, ModelError
        return _not_tensorrt(exc, model, backend, onnx)
    manifest.path(model)  # the shipped ONNX the engine was built from is still the manifest's: else refused
    try:
        runtime = TensorRTRuntime(engine, spec)
    except Exception as exc:  # an engine that will not deserialize (TensorRT's log says why), a stale engine
        return _not_tensorrt(exc, model, backend, onnx)
    if spec.size != "dynamic":
        return runtime
    return ShapeFallback(runtime, runtime.profiles, lambda: onnx("sizes without an engine profile"), model)


def _not_tensorrt(exc: Exception, model: str, backend: Backend, onnx: Callable[[str], OnnxRuntime]) -> OnnxRuntime:
    """`tensorrt`: the failure, as a ModelError. `auto`: ONNX Runtime, with a WARNING and the reason kept."""
    reason = str(exc) if isinstance(exc, ModelError) else f"{type(exc).__name__}: {exc}"
    if backend == "tensorrt":
        if isinstance(exc, ModelError):
            raise exc
        raise ModelError(f"TensorRT cannot run {model}: {reason}") from exc
    log.warning("%s: TensorRT not used (%s); running on ONNX Runtime on the CPU instead", model, reason)
    return onnx(f"TensorRT not used: {reason}")


def describe(runtime: Runtime) -> str:
    """The runtime's name and, when it is not the one asked for, why (for logs and the device status)."""
    note = getattr(runtime, "note", "")
    return f"{runtime.name} ({note})" if note else runtime.name
