"""The pass over a large gallery on a Jetson's GPU: probes times rows in TensorRT, in the embedder's CUDA
context (the device's primary context), only each probe's best rows coming back to the CPU.

The rows live on the GPU as float16 (half of float32's bytes: 256 MB at 1,000,000 x 128) and are widened to
float32 for the product inside a strongly typed network, so the only error is float16's rounding of the stored
row and of the probe: for unit vectors |g.p - g16.p16| <= sum |g_i p_i| (2u + u^2) <= 2^-10 (u = 2^-11). TopK
keeps TOP_ROWS rows per probe. The matcher (edge.watchlist.match) re-scores their subjects exactly from the
stored rows and uses them only when that proves no row left on the GPU could rank higher; else it scans on the
CPU. The engine (MatMul + TopK, any number of rows and probes in its profile) is built once per embedding size,
TensorRT version and GPU, in seconds, and kept beside the model engines.

tensorrt and pycuda are imported when a search is made, as in edge.runtime.tensorrt. Not for concurrent use.
"""

import logging
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import ModelError
from edge.fsio import write_atomic
from edge.runtime.tensorrt import CU_STREAM_NON_BLOCKING, device_gpu, import_tensorrt, shared_logger

log = logging.getLogger(__name__)

TOP_ROWS = 64  # rows per probe that come back (TensorRT's TopK takes up to 3840)
MAX_PROBES = 32  # faces matched together in one frame
MAX_ROWS = 1 << 22  # 4.2 million rows: above, the CPU's 8-bit scan is used
ERROR_BOUND = 2.0**-10 + 1e-5  # float16 rounding of row and probe, and float32 accumulation over D <= 512
_LOAD_BLOCK = 65536  # rows converted and copied at a time


def plan_name(dim: int, tensorrt_version: str, gpu: str) -> str:
    return f"gallery-d{dim}-top{TOP_ROWS}-trt{tensorrt_version}-{gpu}.plan"


class TensorRTRowSearch:
    """One gallery's rows on the GPU and the engine that finds each probe's TOP_ROWS best of them."""

    error_bound = ERROR_BOUND
    max_probes = MAX_PROBES

    def __init__(self, dim: int, engine_dir: Path) -> None:
        self._trt, self._cuda = import_tensorrt()
        trt, cuda = self._trt, self._cuda
        self.dim = dim
        self._lock = threading.Lock()
        self._rows_device: Any = None
        self._rows = 0
        self._owner: weakref.ref[object] | None = None
        cuda.init()
        self._context_cuda = cuda.Device(0).retain_primary_context()
        self._context_cuda.push()
        try:
            path = engine_dir / plan_name(dim, trt.__version__, device_gpu(cuda))
            plan = path.read_bytes() if path.is_file() else self._build(path)
            self._runtime = trt.Runtime(shared_logger())
            self._engine = self._runtime.deserialize_cuda_engine(plan)
            if self._engine is None:
                raise ModelError(f"TensorRT could not load the gallery engine {path} (see its log): delete it and "
                                 "start again to rebuild it")
            self._context = self._engine.create_execution_context()
            self._stream = cuda.Stream(flags=CU_STREAM_NON_BLOCKING)
            self._probes = cuda.mem_alloc(MAX_PROBES * dim * 4)
            self._scores_host = cuda.pagelocked_empty((MAX_PROBES, TOP_ROWS), np.float32)
            self._index_host = cuda.pagelocked_empty((MAX_PROBES, TOP_ROWS), np.int32)
            self._scores = cuda.mem_alloc(self._scores_host.nbytes)
            self._index = cuda.mem_alloc(self._index_host.nbytes)
        except BaseException:
            cuda.Context.pop()
            self._context_cuda.detach()
            raise
        cuda.Context.pop()

    def _build(self, path: Path) -> bytes:
        """probes (N, D) float32 x rows (M, D) float16 -> each probe's TOP_ROWS best (score, row)."""
        trt, dim = self._trt, self.dim
        builder = trt.Builder(shared_logger())
        network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
        probes = network.add_input("probes", trt.float32, (-1, dim))
        rows = network.add_input("rows", trt.float16, (-1, dim))
        wide = network.add_cast(rows, trt.float32).get_output(0)
        product = network.add_matrix_multiply(probes, trt.MatrixOperation.NONE, wide, trt.MatrixOperation.TRANSPOSE)
        top = network.add_topk(product.get_output(0), trt.TopKOperation.MAX, TOP_ROWS, 1 << 1)
        top.get_output(0).name, top.get_output(1).name = "scores", "rows_index"
        network.mark_output(top.get_output(0))
        network.mark_output(top.get_output(1))
        config = builder.create_builder_config()
        profile = builder.create_optimization_profile()
        profile.set_shape("probes", (1, dim), (8, dim), (MAX_PROBES, dim))
        profile.set_shape("rows", (TOP_ROWS, dim), (1 << 20, dim), (MAX_ROWS, dim))
        config.add_optimization_profile(profile)
        log.info("building the GPU gallery engine for %d-dimensional embeddings (once, seconds)", dim)
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise ModelError("TensorRT could not build the gallery engine (see its log); the CPU scan is used")
        data = bytes(plan)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, data, mode=0o644)
        return data

    def load(self, rows: Callable[[slice], np.ndarray], count: int, owner: object) -> None:
        """Put `count` rows (L2-normalised, `rows(slice)` giving them as float32) on the GPU as float16, in
        blocks (no second copy of a large gallery in memory), replacing the previous ones; `owner` is the
        gallery they are (see `holds`)."""
        if not TOP_ROWS <= count <= MAX_ROWS:
            raise ModelError(f"the GPU gallery takes {TOP_ROWS}-{MAX_ROWS} rows, not {count}")
        row_bytes = self.dim * 2
        with self._lock:
            self._context_cuda.push()
            try:
                if self._rows_device is not None:
                    self._rows_device.free()
                    self._rows_device, self._rows, self._owner = None, 0, None
                self._rows_device = self._cuda.mem_alloc(count * row_bytes)
                for start in range(0, count, _LOAD_BLOCK):
                    block = np.ascontiguousarray(rows(slice(start, min(start + _LOAD_BLOCK, count))), np.float16)
                    if block.shape[1:] != (self.dim,):
                        raise ModelError(f"the GPU gallery takes rows of {self.dim}, not {block.shape[1:]}")
                    self._cuda.memcpy_htod(int(self._rows_device) + start * row_bytes, block)
                self._rows, self._owner = count, weakref.ref(owner)
            finally:
                self._cuda.Context.pop()

    def holds(self, owner: object) -> bool:
        """Whether the rows on the GPU are `owner`'s (the gallery last loaded)."""
        return self._owner is not None and self._owner() is owner

    @property
    def rows(self) -> int:
        return self._rows

    def top_rows(self, probes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(scores, row indices), each (N, TOP_ROWS), best first, of the float16 product (within ERROR_BOUND)."""
        n = len(probes)
        if not 1 <= n <= MAX_PROBES or self._rows_device is None:
            raise ModelError(f"the GPU gallery matches 1-{MAX_PROBES} probes against loaded rows, not {n}")
        data = np.ascontiguousarray(probes, dtype=np.float32)
        with self._lock:
            self._context_cuda.push()
            try:
                cuda, context, stream = self._cuda, self._context, self._stream
                cuda.memcpy_htod_async(self._probes, data, stream)
                if not (context.set_input_shape("probes", (n, self.dim))
                        and context.set_input_shape("rows", (self._rows, self.dim))):
                    raise ModelError(f"the GPU gallery engine refused {n} probes x {self._rows} rows")
                for name, buffer in (("probes", self._probes), ("rows", self._rows_device),
                                     ("scores", self._scores), ("rows_index", self._index)):
                    context.set_tensor_address(name, int(buffer))
                if not context.execute_async_v3(stream.handle):
                    raise ModelError("TensorRT failed to run the gallery product (see its log)")
                cuda.memcpy_dtoh_async(self._scores_host, self._scores, stream)
                cuda.memcpy_dtoh_async(self._index_host, self._index, stream)
                stream.synchronize()
            finally:
                self._cuda.Context.pop()
        return self._scores_host[:n].copy(), self._index_host[:n].astype(np.int64)

    def close(self) -> None:
        with self._lock:
            self._context_cuda.push()
            try:
                for buffer in (self._rows_device, self._probes, self._scores, self._index):
                    if buffer is not None:
                        buffer.free()
                self._rows_device = None
                del self._context, self._engine, self._runtime
            finally:
                self._cuda.Context.pop()
                self._context_cuda.detach()
