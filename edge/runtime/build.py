"""ONNX -> TensorRT engine, on the board that will run it.

TensorRT's Python builder with its ONNX parser (every parser error is printed), FP16 where the GPU
has fast FP16, optional INT8 from a calibration cache built on real frames (the detector's letterboxed,
an embedder's on the aligned faces found in them), optimization profiles
from edge.runtime.profiles, and a timing cache kept between builds. The plan is written with the
metadata header of edge.runtime.engine_file, atomically, under the name the runtime looks for.
"""

import datetime
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from pydantic import ConfigDict, Field
from tqdm import tqdm

from edge.config.base import StrictModel
from edge.errors import ConfigError, ModelError
from edge.fsio import write_atomic
from edge.models import Manifest, ModelSpec
from edge.runtime import sample_inputs
from edge.runtime.engine_file import (
    EngineMeta,
    calibration_cache_name,
    engine_file_name,
    pack_engine,
    plan_digest,
    timing_cache_name,
)
from edge.runtime.profiles import DEFAULT_BATCH, DEFAULT_DETECTOR_SIZES, Precision, Profile, build_profiles
from edge.runtime.tensorrt import device_gpu, import_tensorrt, primary_context, shared_logger

log = logging.getLogger(__name__)


class BuildOptions(StrictModel):
    """How to build: precision, shapes, caches. `auto` precision is FP16 where the GPU has fast FP16."""

    model_config = ConfigDict(frozen=True)

    engine_dir: Path
    precision: Precision | None = None
    calibration_dir: Path | None = None
    calibration_images: int = Field(default=512, ge=8)
    detector_sizes: tuple[tuple[int, int], ...] = DEFAULT_DETECTOR_SIZES
    batch: tuple[int, int, int] = DEFAULT_BATCH
    workspace_mib: int = Field(default=1024, ge=64)
    timing_cache: Path | None = None
    # How an embedder's calibration frames become the aligned faces it is fed (edge.engines.faces: the
    # device's detector, face choice and alignment); INT8 calibration of an embedder needs it.
    face_crops: sample_inputs.FaceCrops | None = None


class BuildResult(StrictModel):
    """What was built, where, and how long it took."""

    model_config = ConfigDict(frozen=True)

    model: str
    path: Path
    meta: EngineMeta
    seconds: float


def _network_flags(trt: ModuleType) -> int:
    # TensorRT 10 networks are always explicit-batch; 8.x needs the flag.
    if int(trt.__version__.split(".")[0]) >= 10:
        return 0
    return 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)


def _has_fast_fp16(builder: Any, cuda: ModuleType) -> bool:
    flag = getattr(builder, "platform_has_fast_fp16", None)
    if flag is not None:
        return bool(flag)
    major, minor = cuda.Device(0).compute_capability()  # deprecated attribute gone: every Jetson GPU has it
    return (major, minor) >= (5, 3) and (major, minor) != (6, 1)


def _parse_onnx(trt: ModuleType, builder: Any, logger: Any, onnx_path: Path,
                spec: ModelSpec) -> tuple[Any, Any, list[str]]:
    """The parsed network, its parser (which must outlive the build) and the network's output names."""
    network = builder.create_network(_network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        for error in errors:
            print(f"onnx parser: {error}", file=sys.stderr)
        raise ModelError(f"TensorRT's ONNX parser rejected {onnx_path} ({len(errors)} errors above): "
                         "this TensorRT may not support an operator of the model")
    inputs = [network.get_input(i).name for i in range(network.num_inputs)]
    outputs = [network.get_output(i).name for i in range(network.num_outputs)]
    if inputs != [spec.input] or any(o not in outputs for o in spec.outputs):
        raise ModelError(f"{onnx_path} has inputs {inputs} and outputs {outputs}; the manifest expects "
                         f"input {spec.input!r} and outputs {spec.outputs}")
    return network, parser, outputs


def _progress_monitor(trt: ModuleType) -> Any:
    """tqdm bars for the builder's phases (TensorRT 10's IProgressMonitor); None on older TensorRT."""
    if not hasattr(trt, "IProgressMonitor"):
        return None

    class Monitor(trt.IProgressMonitor):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self._bars: dict[str, tqdm] = {}

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            self._bars[phase_name] = tqdm(total=num_steps, desc=phase_name, leave=False,
                                          position=len(self._bars), file=sys.stderr)

        def step_complete(self, phase_name: str, step: int) -> bool:
            bar = self._bars.get(phase_name)
            if bar is not None:
                bar.update(step + 1 - bar.n)
            return True

        def phase_finish(self, phase_name: str) -> None:
            bar = self._bars.pop(phase_name, None)
            if bar is not None:
                bar.close()

    return Monitor()


def _calibrator(trt: ModuleType, cuda: ModuleType, batches: Iterator[np.ndarray], batch_size: int,
                cache: Path, total: int) -> Any:
    """An entropy calibrator fed from real frames; its cache is reused by later builds."""

    class Calibrator(trt.IInt8EntropyCalibrator2):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self._device: Any = None
            self._bar = tqdm(total=total, desc="int8 calibration", unit="batch", file=sys.stderr)

        def get_batch_size(self) -> int:
            return batch_size

        def get_batch(self, names: list[str]) -> list[int] | None:
            batch = next(batches, None)
            if batch is None:
                self._bar.close()
                return None
            batch = np.ascontiguousarray(batch, np.float32)
            if self._device is None:
                self._device = cuda.mem_alloc(batch.nbytes)
            cuda.memcpy_htod(self._device, batch)
            self._bar.update(1)
            return [int(self._device)]

        def read_calibration_cache(self) -> bytes | None:
            return cache.read_bytes() if cache.is_file() else None

        def write_calibration_cache(self, data: Any) -> None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(cache, bytes(data))

    return Calibrator()


def _load_timing_cache(config: Any, path: Path) -> Any:
    data = path.read_bytes() if path.is_file() else b""
    cache = config.create_timing_cache(data)
    if cache is None and data:
        log.warning("timing cache %s is unusable (other TensorRT or GPU?): starting a new one", path)
        cache = config.create_timing_cache(b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    return cache


def resolve_precision(requested: Precision | None, fast_fp16: bool) -> Precision:
    if requested is None:
        return "fp16" if fast_fp16 else "fp32"
    if requested == "fp16" and not fast_fp16:
        raise ConfigError("fp16 asked for, but this GPU has no fast FP16: build with --precision fp32")
    return requested


def build_engine(manifest: Manifest, model: str, options: BuildOptions) -> BuildResult:
    """Build one model's engine for this device and write it where `engine_path_for` will look."""
    trt, cuda = import_tensorrt()
    spec = manifest.spec(model)
    onnx_path = manifest.path(model)
    profiles: list[Profile] = build_profiles(spec, options.detector_sizes, options.batch)
    started = time.monotonic()
    with primary_context(cuda):
        gpu = device_gpu(cuda)
        logger = shared_logger()
        builder = trt.Builder(logger)
        network, parser, outputs = _parse_onnx(trt, builder, logger, onnx_path, spec)
        # TensorRT holds raw pointers to these Python objects: they must outlive build_serialized_network.
        keep_alive: list[Any] = [parser]
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mib << 20)
        precision = resolve_precision(options.precision, _has_fast_fp16(builder, cuda))
        if precision in ("fp16", "int8"):
            config.set_flag(trt.BuilderFlag.FP16)
        trt_profiles = []
        for profile in profiles:
            trt_profile = builder.create_optimization_profile()
            for name, shapes in profile.items():
                trt_profile.set_shape(name, shapes.min, shapes.opt, shapes.max)
            config.add_optimization_profile(trt_profile)
            trt_profiles.append(trt_profile)
        if precision == "int8":
            keep_alive.append(_int8_setup(trt, cuda, builder, config, spec, profiles[0], trt_profiles[0], options))
        timing_path = options.timing_cache or options.engine_dir / timing_cache_name(trt.__version__, gpu)
        _load_timing_cache(config, timing_path)
        monitor = _progress_monitor(trt)
        if monitor is not None:
            config.progress_monitor = monitor
            keep_alive.append(monitor)
        print(f"building {model} ({precision}, {len(profiles)} profile(s)) for {gpu} with TensorRT "
              f"{trt.__version__}…", file=sys.stderr)
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise ModelError(f"TensorRT could not build {model} (its log above says why); try a larger "
                             "--workspace-mib or --precision fp32")
        timing_path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(timing_path, bytes(config.get_timing_cache().serialize()))
        plan_bytes = bytes(plan)
        # Release TensorRT's objects while their CUDA context is still current.
        keep_alive.clear()
        del plan, config, network, builder
    seconds = time.monotonic() - started
    meta = EngineMeta(
        model=model, model_sha256=spec.sha256, tensorrt=trt.__version__, gpu=gpu, precision=precision,
        profiles=profiles, inputs=[spec.input], outputs=outputs,
        plan_sha256=plan_digest(plan_bytes),
        built_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        build_seconds=round(seconds, 1),
    )
    path = options.engine_dir / engine_file_name(spec.sha256, trt.__version__, gpu)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, pack_engine(meta, plan_bytes))
    return BuildResult(model=model, path=path, meta=meta, seconds=seconds)


def _int8_setup(trt: ModuleType, cuda: ModuleType, builder: Any, config: Any, spec: ModelSpec, profile: Profile,
                trt_profile: Any, options: BuildOptions) -> Any:
    """Turn on INT8 with a calibrator over the calibration folder (or the cache an earlier build left)."""
    if not getattr(builder, "platform_has_fast_int8", True):
        raise ConfigError("int8 asked for, but this GPU has no fast INT8: build with --precision fp16")
    cache = options.engine_dir / calibration_cache_name(spec.sha256, trt.__version__, spec.role == "embedder")
    shape = profile[spec.input].opt
    batches, total = calibration_batches(spec, shape, options, cache)
    config.set_flag(trt.BuilderFlag.INT8)
    calibrator = _calibrator(trt, cuda, batches, shape[0], cache, total)
    config.int8_calibrator = calibrator
    config.set_calibration_profile(trt_profile)
    return calibrator


def calibration_batches(spec: ModelSpec, shape: tuple[int, ...], options: BuildOptions,
                        cache: Path) -> tuple[Iterator[np.ndarray], int]:
    """The calibrator's batches (of `shape`) and how many there are.

    The detector reads whole frames lazily, letterboxed to the profile's size. An embedder is calibrated on
    the faces the device would embed, aligned at its input size, found before the build starts (so that too
    few faces fails here, with what to pass, not inside TensorRT's callback). With a cache from an earlier
    build TensorRT asks for no batches, and an embedder's frames are not read.
    """
    if options.calibration_dir is None and not cache.is_file():
        raise ConfigError(f"int8 needs calibration frames: pass --calib-dir with real frames from the camera "
                          f"(no calibration cache {cache} yet)")
    if options.calibration_dir is None:
        return iter(()), 0
    if spec.role == "detector":
        images = sample_inputs.folder_images(options.calibration_dir, options.calibration_images)
        return sample_inputs.batches(images, spec, shape), options.calibration_images // shape[0]
    if cache.is_file():
        print(f"{spec.name}: using calibration cache {cache} (delete it to calibrate on {options.calibration_dir})",
              file=sys.stderr)
        return iter(()), 0
    if options.face_crops is None:
        raise ConfigError(f"int8 calibration of embedder {spec.name} needs aligned faces, not whole frames: "
                          "build it with `edge engines build`, which finds and aligns them")
    if options.calibration_images < shape[0]:
        raise ConfigError(f"--calib-images {options.calibration_images} is less than one batch of {spec.name} "
                          f"({shape[0]}, the optimum of --batch): pass --calib-images {shape[0]} or more")
    size = sample_inputs.shape_size(spec, shape)[0]
    minimum = max(shape[0], min(options.calibration_images, sample_inputs.MIN_CALIBRATION_FACES))
    faces = sample_inputs.folder_faces(options.calibration_dir, options.face_crops, size,
                                       options.calibration_images, minimum, spec.name)
    return sample_inputs.batches(faces, spec, shape), len(faces) // shape[0]
