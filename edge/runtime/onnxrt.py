"""ONNX Runtime backend: the CPU path, and HQ's enrollment path."""

import hashlib
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edge.errors import ModelError
from edge.runtime.prelu import expand_prelu


class OnnxRuntime:
    """One InferenceSession with a fixed thread count (intra-op; inter-op 1), PReLUs expanded (`prelu`)."""

    def __init__(self, path: Path, threads: int = 1, label: str | None = None, sha256: str | None = None,
                 note: str = "") -> None:
        """`sha256`: the bytes loaded must have it (they are read once, checked, and handed to ONNX Runtime, so a
        file swapped after an earlier check cannot slip in). `note`: why this runs here and not on TensorRT."""
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        model = path.read_bytes()
        if sha256 is not None and (digest := hashlib.sha256(model).hexdigest()) != sha256:
            raise ModelError(f"model file {path} has sha256 {digest}, the manifest expects {sha256}: the file was "
                             "altered or replaced; restore it from git or run scripts/rebuild-onnx")
        self._session = ort.InferenceSession(expand_prelu(model) or model, sess_options=opts,
                                             providers=["CPUExecutionProvider"])
        self._outputs = [o.name for o in self._session.get_outputs()]
        self.name = f"onnxruntime:{label or path.stem}:{threads}t"
        self.threads = threads
        self.note = note

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = self._session.run(self._outputs, inputs)
        return dict(zip(self._outputs, values, strict=True))

    def close(self) -> None:
        del self._session
