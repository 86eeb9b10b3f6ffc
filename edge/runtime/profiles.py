"""Optimization profiles for each model, choosing one at run time, and the equivalent trtexec line.

The detector has dynamic H and W but runs at a fixed size per source (letterbox), so it gets one
static profile per size the device configuration implies (edge.engines.sizes: 512x288 for 16:9 and
512x384 for 4:3 at the default detector.long_side, and 160x160 for the refinement's crops); kernels are
tuned for exactly the shapes it will see, and a size without a profile runs on ONNX Runtime
(edge.runtime.fallback). Embedders get one profile over the batch sizes a frame produces.
"""

import shlex
from pathlib import Path
from typing import Literal

from edge.errors import ConfigError, ModelError
from edge.models import ModelSpec
from edge.runtime.engine_file import Shape, ShapeRange

Profile = dict[str, ShapeRange]
Precision = Literal["fp32", "fp16", "int8"]

# What detector.long_side = 512 (the default) makes of 16:9 and 4:3 frames, and the crop detector.refine searches
# (edge.vision.detect.REFINE_INPUT); edge.engines.sizes derives the sizes of any configuration
# (tests/jetson/test_engine_sizes.py keeps the two in step).
DEFAULT_DETECTOR_SIZES: tuple[tuple[int, int], ...] = ((512, 288), (512, 384), (160, 160))
DEFAULT_BATCH = (1, 8, 32)


def parse_size(text: str) -> tuple[int, int]:
    """'640x384' -> (640, 384): width x height, each a positive multiple of 32 (the detector's stride)."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise ConfigError(f"detector size {text!r} is not WIDTHxHEIGHT, e.g. 640x384")
    width, height = int(parts[0]), int(parts[1])
    if width <= 0 or height <= 0 or width % 32 or height % 32:
        raise ConfigError(f"detector size {text!r}: width and height must be positive multiples of 32")
    return width, height


def parse_batch(text: str) -> tuple[int, int, int]:
    """'1,8,32' -> (1, 8, 32): the embedder's minimum, optimum and maximum batch."""
    parts = text.split(",")
    if len(parts) != 3 or not all(p.strip().isdigit() for p in parts):
        raise ConfigError(f"batch {text!r} is not MIN,OPT,MAX, e.g. 1,8,32")
    low, opt, high = (int(p) for p in parts)
    if not 1 <= low <= opt <= high:
        raise ConfigError(f"batch {text!r}: need 1 <= MIN <= OPT <= MAX")
    return low, opt, high


def input_shape(spec: ModelSpec, batch: int, size: tuple[int, int]) -> Shape:
    width, height = size
    return (batch, 3, height, width) if spec.layout == "NCHW" else (batch, height, width, 3)


def build_profiles(spec: ModelSpec, detector_sizes: tuple[tuple[int, int], ...] = DEFAULT_DETECTOR_SIZES,
                   batch: tuple[int, int, int] = DEFAULT_BATCH) -> list[Profile]:
    """One static profile per detector size (batch 1), or one batch-range profile for a fixed-size model."""
    if spec.size == "dynamic":
        if not detector_sizes:
            raise ConfigError(f"{spec.name} has a dynamic input size: give at least one detector size")
        profiles = []
        for size in dict.fromkeys(detector_sizes):
            shape = input_shape(spec, 1, size)
            profiles.append({spec.input: ShapeRange(min=shape, opt=shape, max=shape)})
        return profiles
    low, opt, high = batch
    size = (spec.size[1], spec.size[0])  # manifest sizes are (height, width)
    return [{spec.input: ShapeRange(min=input_shape(spec, low, size), opt=input_shape(spec, opt, size),
                                    max=input_shape(spec, high, size))}]


def find_profile(profiles: list[Profile], shapes: dict[str, Shape]) -> int | None:
    """The first profile that accepts every input shape, or None."""
    for index, profile in enumerate(profiles):
        if profile.keys() == shapes.keys() and all(profile[n].contains(s) for n, s in shapes.items()):
            return index
    return None


def pick_profile(profiles: list[Profile], shapes: dict[str, Shape]) -> int:
    """The first profile that accepts every input shape; an input no profile accepts is an error."""
    found = find_profile(profiles, shapes)
    if found is not None:
        return found
    accepted = "; ".join(
        ", ".join(f"{n} {_dims(r.min)}..{_dims(r.max)}" for n, r in p.items()) for p in profiles
    )
    given = ", ".join(f"{n} {_dims(s)}" for n, s in shapes.items())
    raise ModelError(
        f"no optimization profile of this engine accepts {given} (it accepts: {accepted}); rebuild the "
        "engine with this size, e.g. `edge engines build --detector-size WxH`, or run at a built size"
    )


def _dims(shape: Shape) -> str:
    return "x".join(str(d) for d in shape)


def _shape_arg(name: str, shape: Shape) -> str:
    # trtexec splits on ':' and ','; names holding them are wrapped in single quotes.
    quoted = f"'{name}'" if (":" in name or "," in name) else name
    return f"{quoted}:{_dims(shape)}"


def trtexec_command(onnx: Path, engine: Path, profiles: list[Profile], precision: Precision,
                    workspace_mib: int, timing_cache: Path | None = None,
                    calibration_cache: Path | None = None) -> str:
    """The trtexec line building the same network for maintainers (profiling, bisecting a TensorRT
    issue). Its plan lacks edge's metadata header, so the firmware refuses it: use `edge engines build`.
    One --minShapes/--optShapes/--maxShapes group per optimization profile."""
    args = ["trtexec", f"--onnx={onnx}", f"--saveEngine={engine}", f"--memPoolSize=workspace:{workspace_mib}"]
    for profile in profiles:
        for flag, pick in (("--minShapes", "min"), ("--optShapes", "opt"), ("--maxShapes", "max")):
            args.append(f"{flag}=" + ",".join(_shape_arg(n, getattr(r, pick)) for n, r in profile.items()))
    if precision in ("fp16", "int8"):
        args.append("--fp16")
    if precision == "int8":
        args.append("--int8")
        if calibration_cache is not None:
            args.append(f"--calib={calibration_cache}")
    if timing_cache is not None:
        args.append(f"--timingCacheFile={timing_cache}")
    args.append("--skipInference")
    return shlex.join(args)
