"""`edge bench`: where a frame's time goes, and frames per second against the face_recognition baseline.

Two workloads, both through the device's own code (VisionStack, Pipeline, match):
- cold frame: a frame of tiled real faces, every face new (detect, align, embed all, match); best of N runs;
- stream: every frame of the demo clip through the whole pipeline with tracking (edge.vision.replay).
A benchmark, not a test: it reports, it asserts nothing.
"""

import argparse
import io
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.bench import baseline
from edge.bench.frames import parse_size, tile_faces, watchlist_photos
from edge.capture.base import Frame
from edge.capture.open import open_source
from edge.config.detector import DetectorConfig
from edge.config.embedder import EmbedderConfig
from edge.config.match import MatchConfig
from edge.config.quality import QualityConfig
from edge.config.runtime import RuntimeConfig
from edge.errors import ConfigError, EdgeError
from edge.pipeline import Pipeline
from edge.track.decision import Threshold
from edge.vision.detect import input_size_for
from edge.vision.enroll import Enroller
from edge.vision.quality import assess
from edge.vision.replay import replay
from edge.vision.stack import VisionStack
from edge.watchlist.match import Gallery, match

REPO = Path(__file__).resolve().parent.parent.parent
COLD_TARGET = 6.0
STREAM_TARGET = 20.0


def register(commands) -> None:
    p = commands.add("bench", "per-stage latency and frames per second on real faces, against face_recognition")
    p.add_argument("--size", default="1280x720", help="cold frame size WIDTHxHEIGHT")
    p.add_argument("--faces", type=int, default=6, help="faces tiled into the cold frame")
    p.add_argument("--threads", type=int, default=1, help="inference (and OpenCV) threads")
    p.add_argument("--runs", type=int, default=5, help="cold frame: best of this many runs")
    p.add_argument("--stream-runs", type=int, default=2, help="stream: best of this many passes over the clip")
    p.add_argument("--clip", help="video for the stream workload (default: the shared demo clip)")
    p.add_argument("--no-stream", action="store_true", help="skip the stream workload")
    p.add_argument("--no-baseline", action="store_true", help="skip face_recognition even when installed")
    p.add_argument("--gallery-size", type=int, default=1000, help="watchlist size the matcher searches")
    p.add_argument("--embedder", default=EmbedderConfig().model, help="embedder model from engines/models.toml")
    p.add_argument("--long-side", default=str(DetectorConfig().long_side), help="detector input long side or 'full'")
    p.add_argument("--stride", type=int, default=DetectorConfig().stride, help="stream: detect every Nth frame")
    p.add_argument("--backend", choices=["auto", "onnxruntime", "tensorrt"], default="auto")
    p.add_argument("--data", type=Path, help="shared data folder (default $EDGE_TEST_DATA or ../shared/data)")
    p.add_argument("--json", type=Path, help="write the figures here")
    p.set_defaults(func=run_bench)


class TimedRuntime:
    """A Runtime that adds up the time spent inside the one it wraps (inference only)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.seconds = 0.0
        self.calls = 0

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        start = time.perf_counter()
        try:
            return self.inner.run(inputs)
        finally:
            self.seconds += time.perf_counter() - start
            self.calls += 1

    def reset(self) -> None:
        self.seconds, self.calls = 0.0, 0

    def close(self) -> None:
        self.inner.close()


def best_of(runs: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    """Shortest wall time of `runs` calls (after one warm-up call) and the last result."""
    result = fn()
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def _ms(seconds: float) -> float:
    return round(1000 * seconds, 3)


def _data_dir(args: argparse.Namespace) -> Path:
    root = args.data or Path(os.environ.get("EDGE_TEST_DATA", REPO.parent / "shared" / "data"))
    if not (root / "lfw").is_dir():
        raise EdgeError(f"no LFW folder under {root}: give the shared data folder with --data or $EDGE_TEST_DATA")
    return root


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


def _threshold() -> Threshold:
    return Threshold(MatchConfig().threshold, None, "fixed")


def encode_jpeg(image: np.ndarray) -> bytes:
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise EdgeError("OpenCV could not encode the benchmark frame as JPEG")
    return jpeg.tobytes()


def cold_frame(stack: VisionStack, image: np.ndarray, gallery: Gallery, runs: int) -> dict[str, Any]:
    """Per-stage best times on one frame, and the whole pipeline with every face new."""
    data = encode_jpeg(image)
    quality = QualityConfig()
    t_decode, img = best_of(runs, lambda: baseline.decode_jpeg(data))
    t_detect, det = best_of(runs, lambda: stack.detector(img))
    n = len(det)
    t_align, crops = best_of(runs, lambda: stack.embedder.crops(img, det.landmarks))
    t_quality, _ = best_of(runs, lambda: [assess(c, lm, float(s), quality)
                                          for c, lm, s in zip(crops, det.landmarks, det.scores, strict=True)])
    t_embed, emb = best_of(runs, lambda: stack.embedder.embed(crops))
    t_match, _ = best_of(runs, lambda: match(gallery, emb, time.time(), k=2))

    def whole() -> Pipeline:
        frame = Frame(baseline.decode_jpeg(data), 0, 0.0)
        pipeline = Pipeline(stack, gallery, _threshold())  # fresh: every face is a new track
        pipeline.process(frame)
        return pipeline

    cpu0 = time.process_time()
    wall0 = time.perf_counter()
    t_whole, pipeline = best_of(runs, whole)
    cpu_ratio = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
    per_face = max(n, 1)
    return {
        "faces_detected": n,
        "faces_embedded": pipeline.counters.embeddings,
        "decode_ms": _ms(t_decode),
        "detect_ms": _ms(t_detect),
        "align_ms_per_face": _ms(t_align / per_face),
        "quality_ms_per_face": _ms(t_quality / per_face),
        "embed_ms_per_face": _ms(t_embed / per_face),
        "match_ms": _ms(t_match),
        "frame_ms": _ms(t_whole),
        "fps": round(1 / t_whole, 2),
        "cpu_seconds_per_wall_second": round(cpu_ratio, 2),
    }


def cold_frame_baseline(fr: baseline.FaceRecognition, image: np.ndarray, runs: int) -> dict[str, Any]:
    data = encode_jpeg(image)
    best: dict[str, float] = {}
    cpu0, wall0 = time.process_time(), time.perf_counter()
    t_whole, stages = float("inf"), {}
    fr.frame(baseline.decode_jpeg(data))  # warm-up
    for _ in range(runs):
        start = time.perf_counter()
        img = baseline.decode_jpeg(data)
        t_dec = time.perf_counter() - start
        stages = fr.frame(img)
        t_whole = min(t_whole, time.perf_counter() - start)
        for k, v in {"decode": t_dec, **stages}.items():
            best[k] = min(best.get(k, float("inf")), v)
    cpu_ratio = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
    faces = int(stages.get("faces", 0))
    return {
        "faces_detected": faces,
        "decode_ms": _ms(best["decode"]),
        "detect_ms": _ms(best["detect"]),
        "align_embed_ms_per_face": _ms(best["align+embed"] / max(faces, 1)),
        "match_ms": _ms(best["match"]),
        "frame_ms": _ms(t_whole),
        "fps": round(1 / t_whole, 2),
        "cpu_seconds_per_wall_second": round(cpu_ratio, 2),
    }


def stream(stack: VisionStack, clip: str, gallery: Gallery, runs: int, stride: int) -> dict[str, Any]:
    """Every frame of the clip through decode + Pipeline (tracking, embed when useful); best pass."""
    det_rt, emb_rt = TimedRuntime(stack.detector.runtime), TimedRuntime(stack.embedder.runtime)
    stack.detector.runtime, stack.embedder.runtime = det_rt, emb_rt
    try:
        best: dict[str, Any] | None = None
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for _ in range(runs):
            det_rt.reset()
            emb_rt.reset()
            pipeline = Pipeline(stack, gallery, _threshold(), stride=stride)
            summary = replay(pipeline, clip, io.StringIO())
            c = summary.counters
            run = {
                "frames": c.frames,
                "seconds": round(summary.seconds, 3),
                "fps": round(c.frames / summary.seconds, 2),
                "detector_calls": det_rt.calls,
                "detector_inference_ms_per_frame": _ms(det_rt.seconds / c.frames),
                "embeddings": c.embeddings,
                "embedder_inference_ms_per_frame": _ms(emb_rt.seconds / c.frames),
                "faces_seen": c.faces_seen,
                "alerts": [f"{a.label} (track {a.track_id}, frame {a.frame}, score {a.score:.3f})"
                           for a in summary.alerts],
            }
            if best is None or run["seconds"] < best["seconds"]:
                best = run
        assert best is not None
        best["cpu_seconds_per_wall_second"] = round(
            (time.process_time() - cpu0) / (time.perf_counter() - wall0), 2)
    finally:
        stack.detector.runtime, stack.embedder.runtime = det_rt.inner, emb_rt.inner
    decode = _decode_time(clip)
    best["decode_ms_per_frame"] = _ms(decode / best["frames"])
    rest = best["seconds"] / best["frames"] - (decode / best["frames"]) \
        - (best["detector_inference_ms_per_frame"] + best["embedder_inference_ms_per_frame"]) / 1000
    best["other_ms_per_frame"] = _ms(max(rest, 0.0))
    best["stride"] = stride
    return best


def _decode_time(clip: str) -> float:
    source = open_source(clip, prefer_jetson=False)
    start = time.perf_counter()
    try:
        while source.read() is not None:
            pass
    finally:
        source.close()
    return time.perf_counter() - start


def stream_baseline(fr: baseline.FaceRecognition, clip: str, runs: int) -> dict[str, Any]:
    best: dict[str, Any] | None = None
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(runs):
        source = open_source(clip, prefer_jetson=False)
        frames, faces = 0, 0
        start = time.perf_counter()
        try:
            while (frame := source.read()) is not None:
                faces += int(fr.frame(frame.image)["faces"])
                frames += 1
        finally:
            source.close()
        seconds = time.perf_counter() - start
        if best is None or seconds < best["seconds"]:
            best = {"frames": frames, "seconds": round(seconds, 3), "fps": round(frames / seconds, 2),
                    "faces_encoded": faces}
    assert best is not None
    best["cpu_seconds_per_wall_second"] = round((time.process_time() - cpu0) / (time.perf_counter() - wall0), 2)
    return best


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


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


def _bench(args: argparse.Namespace, width: int, height: int, data: Path, clip: str) -> int:
    lfw = data / "lfw"
    try:
        long_side: int | str = args.long_side if args.long_side == "full" else int(args.long_side)
        det_cfg = DetectorConfig(long_side=long_side, stride=args.stride)
    except ValueError as exc:
        raise ConfigError(f"--long-side or --stride: {str(exc).splitlines()[-1]}") from exc
    stack = VisionStack.open(det_cfg, EmbedderConfig(model=args.embedder),
                             RuntimeConfig(threads=args.threads, backend=args.backend))
    try:
        report = _measure(args, stack, width, height, lfw, data, clip)
    finally:
        stack.close()
    print_report(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
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
