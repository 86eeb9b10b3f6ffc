"""Engine file names and the metadata header every engine carries.

A TensorRT plan only runs on the GPU and TensorRT version that built it, and only means something
for the ONNX it was built from. So an engine is named `<model sha256[:16]>-trt<version>-<gpu>.engine`
and starts with a small JSON header saying the same; the runtime refuses any engine whose name or
header does not match this device and this model, with a message saying how to rebuild it.
"""

import hashlib
import json
import re
import struct
from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field, ValidationError

from edge.config.base import StrictModel
from edge.errors import ModelError

MAGIC = b"EDGEENG1"
_LENGTH = struct.Struct("<I")
_MAX_HEADER = 1 << 20

Shape = tuple[int, ...]


class ShapeRange(StrictModel):
    """The shapes one optimization profile accepts for one input."""

    model_config = ConfigDict(frozen=True)

    min: Shape
    opt: Shape
    max: Shape

    def contains(self, shape: Shape) -> bool:
        return len(shape) == len(self.min) and all(
            lo <= s <= hi for lo, s, hi in zip(self.min, shape, self.max, strict=True)
        )


class EngineMeta(StrictModel):
    """What an engine was built from, where and how: checked before the plan is deserialized."""

    model_config = ConfigDict(frozen=True)

    format: Literal["edge.engine/1"] = "edge.engine/1"
    model: str
    model_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    tensorrt: str
    gpu: str
    precision: Literal["fp32", "fp16", "int8"]
    profiles: list[dict[str, ShapeRange]]
    inputs: list[str]
    outputs: list[str]
    plan_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    built_at: str
    build_seconds: float


def gpu_slug(name: str, compute_capability: tuple[int, int], multiprocessors: int) -> str:
    """A file-name-safe GPU id. The SM count tells apart boards that share a chip name
    (Orin Nano 4 GB / 8 GB, Orin NX, AGX Orin all report 'Orin', sm87)."""
    words = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    words = re.sub(r"^nvidia-", "", words) or "gpu"
    major, minor = compute_capability
    return f"{words}-sm{major}{minor}-{multiprocessors}sm"


def engine_file_name(model_sha256: str, tensorrt_version: str, gpu: str) -> str:
    return f"{model_sha256[:16]}-trt{tensorrt_version}-{gpu}.engine"


def timing_cache_name(tensorrt_version: str, gpu: str) -> str:
    """Timing caches are per TensorRT version and GPU, like the engines they speed up."""
    return f"trt{tensorrt_version}-{gpu}.timing-cache"


def calibration_cache_name(model_sha256: str, tensorrt_version: str, faces: bool = False) -> str:
    """INT8 calibration scales depend on the model and the TensorRT version, not on the board. An embedder's
    (`faces`) are measured on aligned faces and named apart, so a cache from before that, measured on whole
    frames, is never reused."""
    return f"{model_sha256[:16]}-trt{tensorrt_version}{'-faces' if faces else ''}.calib-cache"


def pack_engine(meta: EngineMeta, plan: bytes) -> bytes:
    header = meta.model_dump_json().encode()
    return MAGIC + _LENGTH.pack(len(header)) + header + plan


def plan_digest(plan: bytes) -> str:
    return hashlib.sha256(plan).hexdigest()


def read_engine(path: Path, rebuild_hint: str) -> tuple[EngineMeta, bytes]:
    """The header and the plan of an engine file; a file that is not an intact edge engine is refused."""
    data = path.read_bytes()
    start = len(MAGIC) + _LENGTH.size
    if not data.startswith(MAGIC) or len(data) < start:
        raise ModelError(
            f"{path} is not an edge engine (no metadata header: a plain trtexec plan?); {rebuild_hint}"
        )
    (length,) = _LENGTH.unpack_from(data, len(MAGIC))
    if length > _MAX_HEADER or start + length > len(data):
        raise ModelError(f"{path} has a truncated or corrupt header; {rebuild_hint}")
    try:
        meta = EngineMeta.model_validate(json.loads(data[start:start + length]))
    except (ValueError, ValidationError) as exc:
        reason = exc.__class__.__name__
        raise ModelError(f"{path} has an unreadable metadata header ({reason}); {rebuild_hint}") from exc
    plan = data[start + length:]
    if plan_digest(plan) != meta.plan_sha256:
        raise ModelError(f"{path} is truncated or altered (plan hash differs from its header); {rebuild_hint}")
    return meta, plan


def check_engine(path: Path, meta: EngineMeta, *, model: str, model_sha256: str, input_name: str,
                 outputs: list[str], tensorrt_version: str, gpu: str, rebuild_hint: str) -> None:
    """Refuse an engine built for another model, TensorRT version or GPU, or renamed to pass for one."""
    problems = []
    if meta.model_sha256 != model_sha256:
        problems.append(f"it was built from model sha256 {meta.model_sha256[:16]}…, "
                        f"the manifest's {model} is {model_sha256[:16]}…")
    if meta.tensorrt != tensorrt_version:
        problems.append(f"it was built with TensorRT {meta.tensorrt}, this device has {tensorrt_version}")
    if meta.gpu != gpu:
        problems.append(f"it was built for GPU {meta.gpu}, this device is {gpu}")
    expected = engine_file_name(meta.model_sha256, meta.tensorrt, meta.gpu)
    if path.name != expected:
        problems.append(f"its name does not match its header (expected {expected}: renamed or copied?)")
    if meta.inputs != [input_name]:
        problems.append(f"its inputs are {meta.inputs}, the manifest says [{input_name!r}]")
    missing = [o for o in outputs if o not in meta.outputs]
    if missing:
        problems.append(f"it lacks outputs {missing}")
    if problems:
        raise ModelError(f"engine {path} is refused: " + "; ".join(problems) + f"; {rebuild_hint}")


def rebuild_hint(model: str, engine_dir: Path) -> str:
    return f"rebuild it on this device with `edge engines build --model {model} --engine-dir {engine_dir}`"
