"""Does a built engine compute what the ONNX model computes? Max difference and cosine per output,
judged against the tolerance of the precision it was built with."""

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from pydantic import ConfigDict

from edge.config.base import StrictModel
from edge.models import Manifest, ModelSpec
from edge.runtime import sample_inputs
from edge.runtime.base import Runtime
from edge.runtime.onnxrt import OnnxRuntime
from edge.runtime.profiles import Precision, Profile
from edge.runtime.tensorrt import TensorRTRuntime

# (allowed max |difference| relative to max(1, max |reference|), minimum per-sample cosine)
TOLERANCE: dict[str, tuple[float, float]] = {
    "fp32": (1e-3, 0.99999),
    "fp16": (2e-2, 0.999),
    "int8": (1e-1, 0.98),
}


class OutputDiff(StrictModel):
    """How far one output of the engine is from the reference."""

    model_config = ConfigDict(frozen=True)

    name: str
    max_abs: float
    min_cosine: float
    ok: bool


class Comparison(StrictModel):
    """An engine against ONNX Runtime on the same real inputs."""

    model_config = ConfigDict(frozen=True)

    model: str
    precision: Precision
    samples: int
    outputs: list[OutputDiff]

    @property
    def ok(self) -> bool:
        return bool(self.outputs) and all(o.ok for o in self.outputs)

    def summary(self) -> str:
        parts = ", ".join(f"{o.name}: max diff {o.max_abs:.3g}, min cosine {o.min_cosine:.6f}"
                          f"{'' if o.ok else ' OUT OF TOLERANCE'}" for o in self.outputs)
        return f"{self.model} ({self.precision}, {self.samples} inputs): {parts}"


# RetinaFace's face probability: column 1 of `conf`. Box and landmark regressions only mean something where
# there is a face, so they are compared on the anchors the reference scores as faces.
DETECTOR_SCORE = ("conf", 1)
FACE_PROBABILITY = 0.5


def diff_output(name: str, reference: np.ndarray, candidate: np.ndarray, precision: Precision,
                rows: np.ndarray | None = None) -> OutputDiff:
    """Max |difference| and the lowest per-sample cosine; `rows` (N, A) limits both to chosen anchors."""
    atol, min_cos = TOLERANCE[precision]
    if reference.shape != candidate.shape:
        return OutputDiff(name=name, max_abs=float("inf"), min_cosine=-1.0, ok=False)
    ref = reference.astype(np.float64)
    got = candidate.astype(np.float64)
    if rows is None:
        ref_rows, got_rows = ref.reshape(ref.shape[0], -1), got.reshape(got.shape[0], -1)
    else:
        weight = rows.reshape(rows.shape + (1,) * (ref.ndim - rows.ndim)).astype(np.float64)
        ref_rows, got_rows = (ref * weight).reshape(ref.shape[0], -1), (got * weight).reshape(got.shape[0], -1)
    max_abs = float(np.max(np.abs(ref_rows - got_rows))) if ref_rows.size else 0.0
    norms = np.linalg.norm(ref_rows, axis=1) * np.linalg.norm(got_rows, axis=1)
    dots = np.sum(ref_rows * got_rows, axis=1)
    cosines = np.where(norms > 0, dots / np.where(norms > 0, norms, 1.0), 1.0)
    min_cosine = float(np.min(cosines)) if cosines.size else 1.0
    scale = max(1.0, float(np.max(np.abs(ref_rows))) if ref_rows.size else 1.0)
    ok = bool(np.isfinite(max_abs) and max_abs <= atol * scale and min_cosine >= min_cos)
    return OutputDiff(name=name, max_abs=max_abs, min_cosine=min_cosine, ok=ok)


def _diffs(spec: ModelSpec, reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray],
           precision: Precision) -> list[OutputDiff]:
    rows = None
    score, column = DETECTOR_SCORE
    if spec.role == "detector" and score in reference:
        rows = reference[score][..., column] >= FACE_PROBABILITY
    return [diff_output(name, reference[name], candidate[name], precision,
                        None if spec.role != "detector" or name == score else rows)
            for name in spec.outputs]


def compare_runtimes(spec: ModelSpec, engine: Runtime, reference: Runtime, inputs: Iterable[np.ndarray],
                     precision: Precision) -> Comparison:
    """Run both runtimes on every batch (batches may differ in size) and keep each output's worst case."""
    worst: dict[str, OutputDiff] = {}
    samples = 0
    for batch in inputs:
        ours = engine.run({spec.input: batch})
        theirs = reference.run({spec.input: batch})
        samples += batch.shape[0]
        for diff in _diffs(spec, theirs, ours, precision):
            seen = worst.get(diff.name)
            worst[diff.name] = diff if seen is None else OutputDiff(
                name=diff.name, max_abs=max(seen.max_abs, diff.max_abs),
                min_cosine=min(seen.min_cosine, diff.min_cosine), ok=seen.ok and diff.ok)
    return Comparison(model=spec.name, precision=precision, samples=samples, outputs=list(worst.values()))


def verification_inputs(spec: ModelSpec, profiles: list[Profile], data_dir: Path, count: int,
                        face_crops: sample_inputs.FaceCrops | None = None) -> Iterator[np.ndarray]:
    """Whole LFW photos for the detector (at every profile's size); for embedders, the face each LFW photo is
    about, aligned by `face_crops` as the device aligns faces (at the optimum batch, then the smallest)."""
    if spec.size == "dynamic":
        images = sample_inputs.lfw_images(data_dir, count)
    elif face_crops is None:
        raise ValueError(f"{spec.name} is an embedder: it is checked on aligned faces, so pass face_crops "
                         "(edge.engines.faces.FaceAligner.photo_face)")
    else:
        images = sample_inputs.lfw_faces(data_dir, count, face_crops, spec.size[0])
    for profile in profiles:
        shapes = profile[spec.input]
        yield from sample_inputs.batches(images, spec, shapes.opt)
        if shapes.min != shapes.opt:
            yield from sample_inputs.batches(images[:shapes.min[0]], spec, shapes.min)


def verify_engine(manifest: Manifest, model: str, engine_path: Path, profiles: list[Profile], data_dir: Path,
                  count: int, precision: Precision, face_crops: sample_inputs.FaceCrops | None = None) -> Comparison:
    """The engine against ONNX Runtime (CPU) on real images from the evaluation data (`face_crops` aligns an
    embedder's faces)."""
    spec = manifest.spec(model)
    engine = TensorRTRuntime(engine_path, spec)
    reference = OnnxRuntime(manifest.path(model), threads=os.cpu_count() or 1, label=model)
    try:
        return compare_runtimes(spec, engine, reference,
                                verification_inputs(spec, profiles, data_dir, count, face_crops), precision)
    finally:
        engine.close()
        reference.close()
