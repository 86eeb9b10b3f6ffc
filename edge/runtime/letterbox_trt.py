"""The detector's letterbox on the GPU: the captured frame (a mapped jetson_utils buffer) is resized, centred on
the mean and laid out channels-first by a small TensorRT engine that writes straight into the detector engine's
input, on the detector's stream. The frame never goes to the CPU for detection.

The engine is built from edge.runtime.letterbox's graph (the same steps as the CPU's
`Detector.preprocess`, checked against it with ONNX Runtime in tests/vision/test_letterbox_graph.py and on a GPU
by scripts/gpu-check), once per frame size, detector size and mean, in seconds, and kept beside the model
engines. Anything that fails here (no engine can be built, no profile for the size) leaves the CPU's letterbox
in charge, said once in the log.
"""

import logging
from pathlib import Path
from typing import Any

import numpy as np

from edge.capture.base import DeviceImage
from edge.errors import ModelError
from edge.fsio import write_atomic
from edge.runtime.base import Runtime
from edge.runtime.fallback import ShapeFallback
from edge.runtime.letterbox import BLOB_OUTPUT, FRAME_INPUT, letterbox_model, model_digest
from edge.runtime.tensorrt import TensorRTRuntime, device_gpu, import_tensorrt, shared_logger

log = logging.getLogger(__name__)


def plan_path(model: bytes, engine_dir: Path) -> Path:
    """Where the engine built from this letterbox graph lives, for this TensorRT and GPU."""
    trt, cuda = import_tensorrt()
    return engine_dir / f"letterbox-{model_digest(model)}-trt{trt.__version__}-{device_gpu(cuda)}.plan"


def build_plan(model: bytes, path: Path) -> bytes:
    """Build the letterbox graph into an engine (FP32, seconds) and keep it at `path`; in the current CUDA
    context. `edge engines build` calls it for the usual frame sizes, so the daemon's first frame need not."""
    trt, _ = import_tensorrt()
    builder = trt.Builder(shared_logger())
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, shared_logger())
    if not parser.parse(model):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelError(f"TensorRT's ONNX parser rejected the letterbox graph: {errors}")
    plan = builder.build_serialized_network(network, builder.create_builder_config())
    if plan is None:
        raise ModelError("TensorRT could not build the letterbox engine (see its log)")
    data = bytes(plan)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data, mode=0o644)
    return data


class _Engine:
    """One letterbox engine and its execution context."""

    def __init__(self, runtime: Any, plan: bytes) -> None:
        self.engine = runtime.deserialize_cuda_engine(plan)
        if self.engine is None:
            raise ModelError("TensorRT could not load a letterbox engine (see its log)")
        self.context = self.engine.create_execution_context()


def gpu_letterbox(detector: Runtime, engine_dir: Path) -> "GpuLetterbox | None":
    """The GPU letterbox for a detector running on TensorRT (its engine behind a ShapeFallback); None otherwise."""
    engine = detector.primary if isinstance(detector, ShapeFallback) else detector
    return GpuLetterbox(engine, engine_dir) if isinstance(engine, TensorRTRuntime) else None


class GpuLetterbox:
    """Letterboxes frames on the GPU into `detector`'s input (its engine, stream and CUDA context)."""

    def __init__(self, detector: TensorRTRuntime, engine_dir: Path) -> None:
        self._trt, self._cuda = import_tensorrt()
        self._detector = detector
        self._engine_dir = engine_dir
        self._runtime: Any = None
        self._engines: dict[bytes, _Engine] = {}
        self._unusable: set[bytes] = set()

    def run(self, image: DeviceImage, input_name: str, resized: tuple[int, int], size: tuple[int, int],
            mean: tuple[float, float, float]) -> dict[str, np.ndarray] | None:
        """The detector's outputs for this frame, letterboxed on the GPU; None where the GPU cannot do it (the
        caller letterboxes on the CPU)."""
        model = letterbox_model((image.width, image.height), resized, size, mean)
        if model in self._unusable:
            return None
        shape = (1, 3, size[1], size[0])
        try:
            engine = self._engine(model, image)

            def fill(pointer: int, stream: Any) -> None:
                context = engine.context
                if not context.set_input_shape(FRAME_INPUT, (1, image.height, image.width, 3)):
                    raise ModelError(f"the letterbox engine refused a {image.width}x{image.height} frame")
                context.set_tensor_address(FRAME_INPUT, image.pointer)
                context.set_tensor_address(BLOB_OUTPUT, pointer)
                if not context.execute_async_v3(stream.handle):
                    raise ModelError("TensorRT failed to run the letterbox (see its log)")

            return self._detector.run_filled(input_name, shape, fill)
        except Exception as exc:  # no engine, no profile for this size, an execution error: the CPU letterboxes
            self._unusable.add(model)
            log.warning("the GPU cannot letterbox %dx%d frames into %dx%d (%s: %s); the CPU does it", image.width,
                        image.height, size[0], size[1], type(exc).__name__, exc)
            return None

    @property
    def refused(self) -> int:
        """How many frame sizes fell back to the CPU's letterbox (gpu-check requires none)."""
        return len(self._unusable)

    def _engine(self, model: bytes, image: DeviceImage) -> _Engine:
        engine = self._engines.get(model)
        if engine is not None:
            return engine
        with self._detector.context():
            if self._runtime is None:
                self._runtime = self._trt.Runtime(shared_logger())
            path = plan_path(model, self._engine_dir)
            if not path.is_file():  # `edge engines build` builds the usual frame sizes' plans beforehand
                log.info("building the GPU letterbox for %dx%d frames (once, seconds)", image.width, image.height)
            plan = path.read_bytes() if path.is_file() else build_plan(model, path)
            engine = self._engines[model] = _Engine(self._runtime, plan)
        return engine

    def close(self) -> None:
        with self._detector.context():
            self._engines.clear()
            self._runtime = None
