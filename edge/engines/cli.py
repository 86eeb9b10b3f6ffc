"""`edge engines build | check`: TensorRT engines for this device, and the JetPack pieces they need."""

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from edge.cliargs import Commands, data_root
from edge.config import EdgeConfig, load_config
from edge.config.detector import DetectorConfig
from edge.engines.check import Check, run_checks
from edge.engines.faces import FaceAligner
from edge.engines.sizes import detector_sizes, frame_letterboxes
from edge.errors import ConfigError, EdgeError, ModelError
from edge.models import ENGINES_DIR, Manifest, ModelSpec
from edge.runtime.engine_file import ShapeRange, calibration_cache_name, read_engine, rebuild_hint, timing_cache_name
from edge.runtime.profiles import (
    DEFAULT_BATCH,
    DEFAULT_DETECTOR_SIZES,
    Precision,
    Profile,
    build_profiles,
    parse_batch,
    parse_size,
    trtexec_command,
)
from edge.runtime.verify import verify_engine

if TYPE_CHECKING:
    from edge.runtime.build import BuildOptions


def register(commands: Commands) -> None:
    group = commands.group("engines", "TensorRT engines on this device: build them, check the JetPack pieces")
    build = group.add_parser(
        "build", help="build TensorRT engines from the ONNX models, on the board that will run them",
        description="Build a TensorRT engine per model for this GPU and TensorRT version (FP16 where the GPU "
                    "has fast FP16), then compare it with ONNX Runtime on real faces.")
    build.add_argument("--model", action="append", help="model name from models.toml (repeat; default: all)")
    _where(build, "where engines go")
    build.add_argument("--precision", choices=["auto", "fp32", "fp16", "int8"], default="auto",
                       help="auto: fp16 where the GPU has fast FP16, else fp32")
    build.add_argument("--calib-dir", type=Path, help="int8: folder of real frames from this camera (embedders "
                                                      "calibrate on the aligned faces found in them)")
    build.add_argument("--calib-images", type=int, default=512, help="int8: frames (detector) or faces (embedders) "
                                                                     "to calibrate on (default 512)")
    build.add_argument("--detector-size", action="append", type=_size, metavar="WxH",
                       help="detector input size, one profile each (repeat; default: the sizes --config's "
                            "detector.long_side gives 16:9 and 4:3 cameras and detector.refine's 160x160 crop; "
                            "512x288, 512x384 and 160x160 without it)")
    build.add_argument("--batch", type=_batch, default=DEFAULT_BATCH, metavar="MIN,OPT,MAX",
                       help="embedder batch sizes (default 1,8,32)")
    build.add_argument("--workspace-mib", type=int, default=1024, help="builder workspace (default 1024 MiB)")
    build.add_argument("--timing-cache", type=Path, help="timing cache file (default: one per TensorRT and GPU "
                                                          "in the engine folder)")
    build.add_argument("--if-missing", action="store_true", help="skip models whose engine exists and is valid")
    build.add_argument("--verify", choices=["auto", "required", "off"], default="auto",
                       help="compare each engine with ONNX Runtime on real faces: auto = when the evaluation "
                            "data is there, required = fail without it")
    build.add_argument("--data", type=Path, help="evaluation data folder (default: $EDGE_TEST_DATA or "
                                                 "../shared/data beside the repository)")
    build.add_argument("--verify-samples", type=int, default=64, help="images compared per profile (default 64)")
    build.add_argument("--dry-run", action="store_true", help="print what would be built and the trtexec "
                                                              "equivalent; needs no TensorRT")
    build.set_defaults(func=run_build)

    check = group.add_parser(
        "check", help="say which JetPack piece (tensorrt, pycuda, jetson_utils, nvidia runtime) or engine is missing",
        description="The Jetson install check: exit 0 when everything the TensorRT path needs is present.")
    _where(check, "where engines are")
    check.set_defaults(func=run_check)


def _where(parser: argparse.ArgumentParser, engines: str) -> None:
    parser.add_argument("--config", type=Path, help="the device's edge.toml: its models folder, engine folder "
                                                    "(<device.state_dir>/engines) and detector sizes")
    parser.add_argument("--manifest-dir", type=Path, help="folder with models.toml and the ONNX (default: "
                                                          "--config's runtime.engines_dir, else the shipped one)")
    parser.add_argument("--engine-dir", type=Path, help=f"{engines} (default: --config's runtime.engine_cache, "
                                                        "else the manifest folder)")


def _resolve(args: argparse.Namespace) -> tuple[Manifest, Path, EdgeConfig | None]:
    """The manifest, the engine folder and the device config, from the options (which win) and --config."""
    cfg = load_config(args.config) if args.config is not None else None
    manifest = Manifest.load(args.manifest_dir or (cfg and cfg.runtime.engines_dir) or ENGINES_DIR)
    engine_dir = args.engine_dir or (cfg and cfg.runtime.engine_cache) or manifest.folder
    return manifest, engine_dir, cfg


def _size(text: str) -> tuple[int, int]:
    try:
        return parse_size(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _batch(text: str) -> tuple[int, int, int]:
    try:
        return parse_batch(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _profile_text(profile: Profile) -> str:
    def dims(shape: tuple[int, ...]) -> str:
        return "x".join(map(str, shape))

    def one(name: str, r: ShapeRange) -> str:
        return f"{name} {dims(r.min)}" if r.min == r.max else f"{name} {dims(r.min)} / {dims(r.opt)} / {dims(r.max)}"

    return ", ".join(one(n, r) for n, r in profile.items())


def run_build(args: argparse.Namespace) -> int:
    manifest, engine_dir, cfg = _resolve(args)
    models = args.model or list(manifest.models)
    for model in models:
        manifest.spec(model)
    sizes = tuple(args.detector_size or (detector_sizes(cfg.detector) if cfg else DEFAULT_DETECTOR_SIZES))
    precision: Precision | None = None if args.precision == "auto" else args.precision
    if precision == "int8" and args.calib_dir is not None and not args.calib_dir.is_dir():
        raise ConfigError(f"--calib-dir {args.calib_dir} is not a folder")
    if args.dry_run:
        return _dry_run(manifest, models, engine_dir, sizes, args.batch, precision, args)
    from edge.runtime.build import BuildOptions
    from edge.runtime.tensorrt import import_tensorrt

    import_tensorrt()
    aligner = FaceAligner(manifest)  # embedders calibrate and are checked on aligned faces
    options = BuildOptions(engine_dir=engine_dir, precision=precision, calibration_dir=args.calib_dir,
                           calibration_images=args.calib_images, detector_sizes=sizes, batch=args.batch,
                           workspace_mib=args.workspace_mib, timing_cache=args.timing_cache,
                           face_crops=aligner.frame_faces)
    data = args.data or data_root()
    try:
        return _build_all(manifest, models, engine_dir, options, aligner, data, args,
                          cfg.detector if cfg else DetectorConfig())
    finally:
        aligner.close()


def _build_all(manifest: Manifest, models: list[str], engine_dir: Path, options: "BuildOptions",
               aligner: FaceAligner, data: Path, args: argparse.Namespace, detector: DetectorConfig) -> int:
    from edge.runtime.build import build_engine
    from edge.runtime.tensorrt import engine_path_for

    took: dict[str, float] = {}
    for number, model in enumerate(models, 1):
        spec = manifest.spec(model)
        target = engine_path_for(manifest, model, engine_dir)
        if args.if_missing and target.is_file() and _engine_readable(target, model, engine_dir, spec.sha256):
            print(f"[{number}/{len(models)}] {model}: {target} is up to date")
            continue
        print(f"[{number}/{len(models)}] {model}")
        result = build_engine(manifest, model, options)
        print(f"built {model} -> {result.path} ({result.meta.precision}, {len(result.meta.profiles)} profile(s)) "
              f"in {result.seconds:.1f} s")
        print("trtexec equivalent: " + trtexec_command(
            manifest.path(model, verify=False), result.path.with_suffix(".plan"), result.meta.profiles,
            result.meta.precision, args.workspace_mib, engine_dir / timing_cache_name(result.meta.tensorrt,
                                                                                      result.meta.gpu),
            engine_dir / calibration_cache_name(spec.sha256, result.meta.tensorrt, spec.role == "embedder")))
        _verify(manifest, model, result.path, result.meta.profiles, result.meta.precision, data, aligner, args)
        took[model] = result.seconds
        if spec.role == "detector":
            _build_letterboxes(spec, engine_dir, detector)
    if took:
        print(f"built {len(took)} engine(s) in {sum(took.values()):.1f} s: "
              + ", ".join(f"{m} {s:.1f} s" for m, s in took.items()))
    return 0


def _build_letterboxes(spec: ModelSpec, engine_dir: Path, detector: DetectorConfig) -> None:
    """The GPU letterbox engines for the usual camera frames (edge.runtime.letterbox_trt), so that the daemon's
    first frame of each size loads one instead of building it on the inference thread."""
    from edge.runtime.letterbox import letterbox_model
    from edge.runtime.letterbox_trt import build_plan, plan_path
    from edge.runtime.tensorrt import import_tensorrt, primary_context

    _, cuda = import_tensorrt()
    mean = (float(spec.mean[0]), float(spec.mean[1]), float(spec.mean[2]))
    with primary_context(cuda):
        for (width, height), box in frame_letterboxes(detector):
            model = letterbox_model((width, height), box.resized, box.size, mean)
            path = plan_path(model, engine_dir)
            if not path.is_file():
                build_plan(model, path)
            print(f"GPU letterbox {width}x{height} -> {box.size[0]}x{box.size[1]}: {path}")


def _engine_readable(path: Path, model: str, engine_dir: Path, sha256: str) -> bool:
    try:
        meta, _ = read_engine(path, rebuild_hint(model, engine_dir))
    except ModelError:
        return False
    return meta.model_sha256 == sha256


def _verify(manifest: Manifest, model: str, engine: Path, profiles: list[Profile], precision: Precision,
            data: Path, aligner: FaceAligner, args: argparse.Namespace) -> None:
    if args.verify == "off":
        print(f"{model}: not compared with ONNX Runtime (--verify off)")
        return
    if not (data / "lfw").is_dir():
        if args.verify == "required":
            raise ConfigError(f"no evaluation data at {data} to verify {model}: pass --data DIR")
        print(f"warning: {model} NOT verified against ONNX Runtime: no evaluation data at {data} "
              "(pass --data DIR)", file=sys.stderr)
        return
    comparison = verify_engine(manifest, model, engine, profiles, data, args.verify_samples, precision,
                               aligner.photo_face)
    print(comparison.summary())
    if not comparison.ok:
        rejected = engine.with_name(engine.name + ".rejected")
        engine.replace(rejected)
        raise ModelError(f"engine for {model} disagrees with ONNX Runtime beyond {precision} tolerance; moved to "
                         f"{rejected} so the device does not load it: rebuild with --precision fp32, or report "
                         "the TensorRT version")


def _dry_run(manifest: Manifest, models: list[str], engine_dir: Path, sizes: tuple[tuple[int, int], ...],
             batch: tuple[int, int, int], precision: Precision | None, args: argparse.Namespace) -> int:
    for model in models:
        spec = manifest.spec(model)
        profiles = build_profiles(spec, sizes, batch)
        shown: Precision = precision or "fp16"
        engine = engine_dir / f"{spec.sha256[:16]}-trt<TensorRT version>-<gpu>.engine"
        print(f"{model}: {manifest.path(model)}")
        print(f"  precision: {precision or 'auto (fp16 where the GPU has fast FP16, else fp32)'}")
        for index, profile in enumerate(profiles):
            print(f"  profile {index}: {_profile_text(profile)}")
        print(f"  engine: {engine}")
        calib = engine_dir / calibration_cache_name(spec.sha256, "<TensorRT version>", spec.role == "embedder")
        print("  trtexec equivalent: " + trtexec_command(
            manifest.path(model, verify=False), engine_dir / f"{model}.plan", profiles, shown, args.workspace_mib,
            args.timing_cache or engine_dir / timing_cache_name("<TensorRT version>", "<gpu>"),
            calib if shown == "int8" else None))
    return 0


def _print_check(check: Check) -> None:
    status = "ok" if check.ok else ("MISSING" if check.required else "warn")
    print(f"{status:<8} {check.name:<15} {check.detail}")
    if not check.ok and check.fix:
        print(f"{'':<8} {'':<15} fix: {check.fix}")


def run_check(args: argparse.Namespace) -> int:
    checks = run_checks()
    for check in checks:
        _print_check(check)
    ready = all(c.ok for c in checks if c.required)
    manifest, engine_dir, _ = _resolve(args)
    if not ready:
        print(f"{'skipped':<8} {'engines':<15} needs the missing pieces above")
        return 1
    from edge.runtime.tensorrt import engine_path_for

    for model in manifest.models:
        try:
            path = engine_path_for(manifest, model, engine_dir)
        except EdgeError as exc:
            _print_check(Check(f"engine {model}", False, str(exc)))
            ready = False
            continue
        ok = path.is_file() and _engine_readable(path, model, engine_dir, manifest.spec(model).sha256)
        _print_check(Check(f"engine {model}", ok, str(path), f"edge engines build --model {model} "
                                                             f"--engine-dir {engine_dir}"))
        ready = ready and ok
    return 0 if ready else 1
