"""TensorRT backend (TensorRT 10 named-tensor API, pycuda for memory and streams).

tensorrt and pycuda are imported when a runtime is made, never at module import: a machine without
them can import this module, and the error on use names the missing piece. The CUDA context is the
device's primary context, shared with TensorRT's own CUDA runtime calls and with jetson_utils; the
inference worker that owns the runtime pushes it around each call, so any single thread may drive it.
"""

import functools
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from edge.errors import ModelError
from edge.models import Manifest, ModelSpec
from edge.runtime.engine_file import (
    ShapeRange,
    check_engine,
    engine_file_name,
    gpu_slug,
    read_engine,
    rebuild_hint,
)
from edge.runtime.profiles import Profile, pick_profile

log = logging.getLogger(__name__)


SUPPORTED_TENSORRT = (10,)  # major versions; JetPack 6 ships 10.3
CU_STREAM_NON_BLOCKING = 1  # cuda.h CUstream_flags; pycuda's Stream(flags=) takes the raw value


def check_tensorrt_version(version: str) -> None:
    """Refuse a TensorRT this firmware cannot build or run engines with, saying which it needs.

    TensorRT 11 (today's `pip install tensorrt`) builds strongly typed networks only: its Python bindings
    have no BuilderFlag.FP16/INT8, no int8_calibrator, no platform_has_fast_fp16 and no
    IInt8EntropyCalibrator2 (python/src/infer/pyCore.cpp at 11.x; pyInt8.cpp is gone).
    """
    try:
        major = int(version.split(".")[0])
    except ValueError:
        major = -1
    if major not in SUPPORTED_TENSORRT:
        raise ModelError(
            f"TensorRT {version} is not supported: edge builds and runs engines with TensorRT 10.x (JetPack 6 ships "
            "10.3; its python3-libnvinfer). TensorRT 11 and later have no FP16/INT8 builder flags or INT8 "
            "calibrators; remove a pip-installed `tensorrt` (`pip uninstall tensorrt`) so JetPack's is used, or "
            "run on ONNX Runtime (runtime.backend = \"onnxruntime\")")


def import_tensorrt() -> tuple[ModuleType, ModuleType]:
    """tensorrt and pycuda.driver, or a ModelError naming the one that is missing (or unsupported) and how to get
    it."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise ModelError(
            f"the tensorrt Python module is missing ({exc}): on a Jetson install JetPack's python3-libnvinfer "
            "and create the venv with --system-site-packages; `edge engines check` lists every missing piece"
        ) from exc
    check_tensorrt_version(str(getattr(trt, "__version__", "?")))
    try:
        import pycuda.driver as cuda
    except ImportError as exc:
        if "libcuda" in str(exc):  # pycuda is installed; the CUDA driver it links against is not there
            raise ModelError(f"pycuda cannot load the CUDA driver ({exc}): on a Jetson it comes with L4T "
                             "(nvidia-l4t-cuda); in a container run it with --runtime nvidia") from exc
        raise ModelError(
            f"the pycuda module is missing ({exc}): `pip install '.[jetson]'` with /usr/local/cuda/bin on PATH; "
            "`edge engines check` lists every missing piece"
        ) from exc
    return trt, cuda


def device_gpu(cuda: ModuleType) -> str:
    """This device's GPU id for engine names (see edge.runtime.engine_file.gpu_slug)."""
    cuda.init()
    device = cuda.Device(0)
    sms = device.get_attribute(cuda.device_attribute.MULTIPROCESSOR_COUNT)
    return gpu_slug(device.name(), device.compute_capability(), int(sms))


@functools.cache
def shared_logger() -> Any:
    """The process's one trt.Logger: TensorRT keeps the first logger it is given and warns when later
    builders and runtimes bring another."""
    trt, _ = import_tensorrt()
    return trt.Logger(trt.Logger.WARNING)


@contextmanager
def primary_context(cuda: ModuleType) -> Iterator[Any]:
    """Device 0's primary context, current on this thread for the duration, released afterwards."""
    cuda.init()
    context = cuda.Device(0).retain_primary_context()
    context.push()
    try:
        yield context
    finally:
        cuda.Context.pop()
        context.detach()


def engine_path_for(manifest: Manifest, model: str, engine_dir: Path | None = None) -> Path:
    """Where this device's engine for `model` lives: named by model hash, TensorRT version and GPU."""
    trt, cuda = import_tensorrt()
    spec = manifest.spec(model)
    return (engine_dir or manifest.folder) / engine_file_name(spec.sha256, trt.__version__, device_gpu(cuda))


@dataclass
class _Buffer:
    """A tensor's page-locked host memory and its device memory, grown when a larger shape comes.

    `mapped`: one allocation seen by both (a Jetson's GPU shares the CPU's memory: TensorRT reads the inputs and
    writes the outputs where the CPU has them, nothing is copied); else device memory with copies both ways.
    """

    host: np.ndarray
    device: int
    nbytes: int
    mapped: bool
    allocation: Any  # what must be freed: the device allocation, or the mapped host allocation

    def free(self) -> None:
        self.allocation.free()


def zero_copy(cuda: ModuleType) -> bool:
    """Whether this GPU shares the CPU's memory and can map page-locked host memory (every Jetson): then
    TensorRT's inputs and outputs live in mapped memory instead of being copied to and from the GPU."""
    device = cuda.Device(0)
    return bool(device.get_attribute(cuda.device_attribute.INTEGRATED)
                and device.get_attribute(cuda.device_attribute.CAN_MAP_HOST_MEMORY))


def allocate(cuda: ModuleType, count: int, dtype: np.dtype, mapped: bool) -> _Buffer:
    """`count` elements of `dtype` for a tensor: mapped page-locked memory, or page-locked host + device."""
    nbytes = max(count, 1) * dtype.itemsize
    if mapped:
        host = cuda.pagelocked_empty(max(count, 1), dtype, mem_flags=cuda.host_alloc_flags.DEVICEMAP)
        return _Buffer(host=host, device=int(host.base.get_device_pointer()), nbytes=nbytes, mapped=True,
                       allocation=host.base)
    allocation = cuda.mem_alloc(nbytes)
    return _Buffer(host=cuda.pagelocked_empty(max(count, 1), dtype), device=int(allocation), nbytes=nbytes,
                   mapped=False, allocation=allocation)


class TensorRTRuntime:
    """One engine, one execution context and one CUDA stream.

    Refuses an engine whose file name or embedded metadata does not match this model, TensorRT
    version and GPU. Not for concurrent use: one inference worker owns it.
    """

    def __init__(self, engine_path: Path, spec: ModelSpec) -> None:
        self._trt, self._cuda = import_tensorrt()
        trt, cuda = self._trt, self._cuda
        hint = rebuild_hint(spec.name, engine_path.parent)
        meta, plan = read_engine(engine_path, hint)
        self.name = f"tensorrt:{spec.name}:{meta.precision}"
        self._lock = threading.Lock()
        self._buffers: dict[str, _Buffer] = {}
        cuda.init()
        self._context_cuda = cuda.Device(0).retain_primary_context()
        self._context_cuda.push()
        try:
            check_engine(engine_path, meta, model=spec.name, model_sha256=spec.sha256, input_name=spec.input,
                         outputs=spec.outputs, tensorrt_version=trt.__version__, gpu=device_gpu(cuda),
                         rebuild_hint=hint)
            self._runtime = trt.Runtime(shared_logger())
            self._engine = self._runtime.deserialize_cuda_engine(plan)
            if self._engine is None:
                raise ModelError(f"TensorRT could not deserialize {engine_path} (see its log above); {hint}")
            self._context = self._engine.create_execution_context()
            # Non-blocking: no implicit synchronisation with the legacy default stream (jetson_utils' and
            # other libraries' work there neither waits for inference nor makes it wait).
            self._stream = cuda.Stream(flags=CU_STREAM_NON_BLOCKING)
            names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
            self._inputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
            self._outputs = [n for n in names if n not in self._inputs]
            self._dtypes = {n: np.dtype(trt.nptype(self._engine.get_tensor_dtype(n))) for n in names}
            self._profiles = [self._profile(index) for index in range(self._engine.num_optimization_profiles)]
            self._active_profile = 0
            self.zero_copy = zero_copy(cuda)
        except BaseException:
            self._cuda.Context.pop()
            self._context_cuda.detach()
            raise
        self._cuda.Context.pop()
        log.info("loaded %s (%s, %d profiles) for %s", engine_path.name, meta.precision, len(self._profiles),
                 spec.name)

    @contextmanager
    def context(self) -> Iterator[None]:
        """This runtime's CUDA context, current on this thread, for work sharing its memory (the letterbox)."""
        with self._lock:
            self._context_cuda.push()
            try:
                yield
            finally:
                self._cuda.Context.pop()

    @property
    def profiles(self) -> list[Profile]:
        """The engine's optimization profiles, as read back from it."""
        return list(self._profiles)

    def _profile(self, index: int) -> Profile:
        ranges = {}
        for name in self._inputs:
            low, opt, high = self._engine.get_tensor_profile_shape(name, index)
            ranges[name] = ShapeRange(min=tuple(low), opt=tuple(opt), max=tuple(high))
        return ranges

    def _buffer(self, name: str, count: int) -> _Buffer:
        dtype = self._dtypes[name]
        buffer = self._buffers.get(name)
        if buffer is None or buffer.nbytes < max(count, 1) * dtype.itemsize:
            if buffer is not None:
                buffer.free()
            buffer = allocate(self._cuda, count, dtype, self.zero_copy)
            self._buffers[name] = buffer
        return buffer

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if sorted(inputs) != sorted(self._inputs):
            raise ModelError(f"{self.name} takes inputs {self._inputs}, was given {sorted(inputs)}")
        with self._lock:
            self._context_cuda.push()
            try:
                return self._run(inputs)
            finally:
                self._cuda.Context.pop()

    def run_filled(self, name: str, shape: tuple[int, ...], fill: Callable[[int, Any], None]) -> dict[str, np.ndarray]:
        """Run with the input `name` of `shape` written on the GPU by `fill(device pointer, stream)`, queued on
        this runtime's stream before the model (the frame's letterbox, edge.runtime.letterbox_trt): the input
        never passes through the CPU."""
        if [name] != self._inputs:
            raise ModelError(f"{self.name} takes inputs {self._inputs}, was given {name!r}")
        if self._dtypes[name] != np.float32:  # the letterbox writes float32: a float16 input is half the size
            raise ModelError(f"{self.name} takes {name} as {self._dtypes[name]}, the GPU letterbox writes float32")
        with self._lock:
            self._context_cuda.push()
            try:
                return self._run({}, (name, shape, fill))
            finally:
                self._cuda.Context.pop()

    def _run(self, inputs: dict[str, np.ndarray],
             filled: tuple[str, tuple[int, ...], Callable[[int, Any], None]] | None = None) -> dict[str, np.ndarray]:
        cuda, context, stream = self._cuda, self._context, self._stream
        arrays = {n: np.ascontiguousarray(a, dtype=self._dtypes[n]) for n, a in inputs.items()}
        shapes_in = {n: tuple(a.shape) for n, a in arrays.items()}
        if filled is not None:
            shapes_in[filled[0]] = tuple(filled[1])
        profile = pick_profile(self._profiles, shapes_in)
        if profile != self._active_profile:
            context.set_optimization_profile_async(profile, stream.handle)
            self._active_profile = profile
        for name, shape in shapes_in.items():
            if not context.set_input_shape(name, shape):
                raise ModelError(f"{self.name} rejected input {name} of shape {shape}")
            buffer = self._buffer(name, int(np.prod(shape)))
            if name in arrays:
                array = arrays[name]
                host = buffer.host[:array.size]
                host[:] = array.ravel()
                if not buffer.mapped:
                    cuda.memcpy_htod_async(buffer.device, host, stream)
            elif filled is not None:
                filled[2](buffer.device, stream)
            context.set_tensor_address(name, buffer.device)
        unresolved = context.infer_shapes()
        if unresolved:
            raise ModelError(f"{self.name} cannot infer the shapes of {list(unresolved)}")
        shapes = {}
        for name in self._outputs:
            shape = tuple(context.get_tensor_shape(name))
            shapes[name] = shape
            context.set_tensor_address(name, self._buffer(name, int(np.prod(shape))).device)
        if not context.execute_async_v3(stream.handle):
            raise ModelError(f"{self.name}: TensorRT execution failed (see its log)")
        views = {}
        for name, shape in shapes.items():
            view = self._buffers[name].host[:int(np.prod(shape))]
            if not self._buffers[name].mapped:
                cuda.memcpy_dtoh_async(view, self._buffers[name].device, stream)
            views[name] = view
        stream.synchronize()
        return {name: view.reshape(shapes[name]).copy() for name, view in views.items()}

    def close(self) -> None:
        with self._lock:
            self._context_cuda.push()
            try:
                for buffer in self._buffers.values():
                    buffer.free()
                self._buffers.clear()
                del self._context, self._engine, self._runtime
            finally:
                self._cuda.Context.pop()
                self._context_cuda.detach()
