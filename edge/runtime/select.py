"""Pick a backend for a model: TensorRT when it and a matching engine exist, else ONNX Runtime."""

import importlib.util
import logging
from pathlib import Path
from typing import Literal

from edge.errors import ModelError
from edge.models import Manifest
from edge.runtime.base import Runtime
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

    engine = engine_path_for(manifest, model, engine_dir)
    return None if engine.is_file() else f"no TensorRT engine {engine}: build it with `scripts/build-engines`"


def open_runtime(manifest: Manifest, model: str, backend: Backend = "auto", threads: int = 1,
                 engine_dir: Path | None = None) -> Runtime:
    """Open `model` on the requested backend.

    `auto` uses TensorRT only when tensorrt and pycuda import and an engine built for this model,
    TensorRT version and GPU exists; otherwise ONNX Runtime, and says so in the log. `tensorrt`
    never falls back: a missing piece is an error naming it.
    """
    onnx_path = manifest.path(model, verify=False)  # hashed where it is used: below, or by OnnxRuntime on load
    if backend in ("auto", "tensorrt"):
        if tensorrt_available():
            from edge.runtime.tensorrt import TensorRTRuntime, engine_path_for

            engine = engine_path_for(manifest, model, engine_dir)
            if engine.is_file():
                manifest.path(model)  # the shipped ONNX the engine was built from is still the manifest's
                return TensorRTRuntime(engine, manifest.spec(model))
            if backend == "tensorrt":
                raise ModelError(f"no TensorRT engine {engine} for {model}: build it with `scripts/build-engines`")
            log.info("no TensorRT engine for %s at %s; using ONNX Runtime", model, engine)
        elif backend == "tensorrt":
            raise ModelError(
                "backend tensorrt asked for, but the tensorrt or pycuda module is missing: on a Jetson install "
                "JetPack's python3-libnvinfer and `pip install .[jetson]`"
            )
    return OnnxRuntime(onnx_path, threads=threads, label=model, sha256=manifest.spec(model).sha256)


