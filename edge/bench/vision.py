"""`edge bench` (no COMMAND): where a frame's time goes, and frames per second against the face_recognition baseline.

Two workloads (edge.bench.workloads), both through the device's own code: a cold frame of tiled real faces,
every face new, and every frame of the demo clip through the whole pipeline with tracking.
A benchmark, not a test: it reports, it asserts nothing.
"""

import argparse
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.bench import baseline
from edge.bench.frames import parse_size, tile_faces, watchlist_photos
from edge.bench.workloads import cold_frame, cold_frame_baseline, stream, stream_baseline
from edge.cliargs import data_root, stack_from_args
from edge.config.detector import DetectorConfig
from edge.errors import ConfigError, EdgeError
from edge.vision.detect import input_size_for
from edge.vision.enroll import Enroller
from edge.vision.stack import VisionStack
from edge.watchlist.match import Gallery

COLD_TARGET = 6.0
STREAM_TARGET = 20.0


def run_bench(args: argparse.Namespace) -> int:
    width, height = parse_size(args.size)
    if args.runs < 1 or args.stream_runs < 1 or args.threads < 1 or args.stride < 1 or args.gallery_size < 1:
        raise ConfigError("--runs, --stream-runs, --threads, --stride and --gallery-size must be 1 or more")
    data = _data_dir(args)
    clip = args.clip or str(data / "demo" / "short_hamilton_clip.mp4")
    if not args.no_stream and not Path(clip).is_file():
        raise EdgeError(f"stream clip {clip} not found: give --clip or --no-stream")
    threads_before = cv2.getNumThreads()
    cv2.setNumThreads(args.threads)
    try:
        return _bench(args, width, height, data, clip)
    finally:
        cv2.setNumThreads(threads_before)


def _data_dir(args: argparse.Namespace) -> Path:
    root = args.data or data_root()
    if not (root / "lfw").is_dir():
        raise EdgeError(f"no LFW folder under {root}: give the shared data folder with --data or $EDGE_TEST_DATA")
    return root


def _bench(args: argparse.Namespace, width: int, height: int, data: Path, clip: str) -> int:
    lfw = data / "lfw"
    try:
        DetectorConfig(stride=args.stride)  # the device's bounds; the pipeline, not the models, takes it
    except ValueError as exc:
        raise ConfigError(f"--stride: {str(exc).splitlines()[-1]}") from exc
    stack = stack_from_args(args)
    try:
        report = _measure(args, stack, width, height, lfw, data, clip)
    finally:
        stack.close()
    print_report(report)
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(report, indent=2) + "\n")
    return 0


def _measure(args: argparse.Namespace, stack: VisionStack, width: int, height: int, lfw: Path, data: Path,
             clip: str) -> dict[str, Any]:
    """Both workloads for edge, and for the baseline where it is installed and wanted."""
    det_in = input_size_for(width, height, stack.detector.long_side)
    report: dict[str, Any] = {
        "threads": args.threads,
        "input_size": f"{width}x{height}",
        "faces": args.faces,
        "detector_input": f"{det_in[0]}x{det_in[1]}",
        "runtime": {"detector": stack.detector.runtime.name, "embedder": stack.embedder.runtime.name,
                    "onnxruntime": _ort_version(), "cpu": _cpu_model(), "cpus": os.cpu_count(),
                    "python": platform.python_version()},
        "embedder": args.embedder,
        "gallery_size": args.gallery_size,
        "runs": args.runs,
    }
    image = tile_faces(lfw, width, height, args.faces)
    gallery, real = _gallery(stack, watchlist_photos(lfw, args.faces), args.gallery_size)
    report["cold_frame"] = {"edge": cold_frame(stack, image, gallery, args.runs), "gallery_real_people": real}
    fr = None
    if args.no_baseline:
        skipped = "skipped (--no-baseline)"
    elif not baseline.available():
        skipped = f"skipped: {baseline.INSTALL}"
    else:
        skipped = ""
        fr = baseline.FaceRecognition()
        report["runtime"]["baseline"] = fr.runtime
        known = [e for _, p in watchlist_photos(lfw, args.faces) if (e := fr.encode_photo(p)) is not None]
        fr.set_known(_fill(np.array(known), args.gallery_size))
        report["cold_frame"]["face_recognition"] = cold_frame_baseline(fr, image, args.runs)
    _compare(report["cold_frame"], skipped, COLD_TARGET)
    if not args.no_stream:
        demo = data / "demo"
        people = [(name, demo / f"{name}.png") for name in ("lin-manuel-miranda", "alex-lacamoire")]
        sgallery, sreal = _gallery(stack, people, args.gallery_size)
        report["stream"] = {"clip": clip, "gallery_real_people": sreal,
                            "edge": stream(stack, clip, sgallery, args.stream_runs, args.stride)}
        if fr is not None:
            known = [e for _, p in people if (e := fr.encode_photo(p)) is not None]
            fr.set_known(_fill(np.array(known), args.gallery_size))
            report["stream"]["face_recognition"] = stream_baseline(fr, clip, args.stream_runs)
        _compare(report["stream"], skipped, STREAM_TARGET)
    return report


def _gallery(stack: VisionStack, photos: list[tuple[str, Path]], size: int, seed: int = 0) -> tuple[Gallery, int]:
    """The real people enrolled with the Enroller, plus random unit vectors up to `size` subjects.

    The fillers only make the matcher search a watchlist of realistic size: its cost does not depend on
    what the vectors hold.
    """
    enroller = Enroller(stack)
    subjects = []
    for person, path in photos:
        e = enroller.enroll(path)
        if e.embedding is not None:
            subjects.append((person, person, e.embedding[None]))
    real = len(subjects)
    rng = np.random.default_rng(seed)
    for i in range(max(0, size - real)):
        v = rng.standard_normal(stack.embedder.dim).astype(np.float32)
        subjects.append((f"filler-{i}", f"filler-{i}", (v / np.linalg.norm(v))[None]))
    return Gallery.from_subjects(subjects), real


def _fill(known: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """The baseline's known faces padded with random encodings of the same scale to the watchlist size."""
    rng = np.random.default_rng(seed)
    extra = max(0, size - len(known))
    fillers = rng.standard_normal((extra, 128)) * 0.09  # dlib encodings: norm about 1, components ~0.09
    return np.concatenate([known.reshape(-1, 128), fillers])


def _compare(section: dict[str, Any], skipped: str, target: float) -> None:
    if skipped:
        section["face_recognition"] = {"skipped": skipped}
        return
    speedup = section["edge"]["fps"] / section["face_recognition"]["fps"]
    section["speedup"] = round(speedup, 2)
    section["target"] = target
    section["meets_target"] = bool(speedup >= target)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ort_version() -> str | None:
    try:
        import onnxruntime

        return str(onnxruntime.__version__)
    except ModuleNotFoundError:
        return None


def print_report(r: dict[str, Any]) -> None:
    out = sys.stdout
    rt = r["runtime"]
    out.write(f"edge bench: {r['threads']} thread(s); {rt['detector']}, {rt['embedder']} "
              f"(onnxruntime {rt['onnxruntime']}); {rt['cpu']}\n")
    cold = r["cold_frame"]
    e = cold["edge"]
    out.write(f"cold frame {r['input_size']}, {r['faces']} real faces, every face new "
              f"(detector input {r['detector_input']}, watchlist {r['gallery_size']}), best of {r['runs']}:\n")
    out.write(f"  edge:  decode {e['decode_ms']:.1f} ms, detect {e['detect_ms']:.1f} ms, align "
              f"{e['align_ms_per_face']:.2f} ms/face, quality {e['quality_ms_per_face']:.2f} ms/face, embed "
              f"{e['embed_ms_per_face']:.1f} ms/face, match {e['match_ms']:.2f} ms; whole frame {e['frame_ms']:.1f} ms "
              f"= {e['fps']:.1f} frames/s ({e['faces_detected']} detected, {e['faces_embedded']} embedded)\n")
    _print_baseline(out, cold)
    if "stream" in r:
        s = r["stream"]
        e = s["edge"]
        out.write(f"stream {s['clip']} ({e['frames']} frames, detect every {e['stride']}), best of passes:\n")
        out.write(f"  edge:  {e['fps']:.1f} frames/s; per frame: decode {e['decode_ms_per_frame']:.2f} ms, detector "
                  f"{e['detector_inference_ms_per_frame']:.2f} ms ({e['detector_calls']} calls), embedder "
                  f"{e['embedder_inference_ms_per_frame']:.2f} ms ({e['embeddings']} faces), rest "
                  f"{e['other_ms_per_frame']:.2f} ms; alerts: {', '.join(e['alerts']) or 'none'}\n")
        _print_baseline(out, s)


def _print_baseline(out: Any, section: dict[str, Any]) -> None:
    b = section["face_recognition"]
    if "skipped" in b:
        out.write(f"  face_recognition: {b['skipped']}\n")
        return
    detail = (f"detect {b['detect_ms']:.0f} ms, align+embed {b['align_embed_ms_per_face']:.0f} ms/face; "
              if "detect_ms" in b else "")
    out.write(f"  face_recognition: {detail}{b['fps']:.2f} frames/s\n")
    out.write(f"  speed-up {section['speedup']:.1f}x (target {section['target']:.0f}x: "
              f"{'met' if section['meets_target'] else 'MISSED'})\n")
