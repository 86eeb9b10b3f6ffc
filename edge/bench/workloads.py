"""The vision benchmark's two workloads, timed through the device's own code (VisionStack, Pipeline, match).

- cold frame: a frame of tiled real faces, every face new (detect, align, embed all, match); best of N runs;
- stream: every frame of a clip through the whole pipeline with tracking (edge.replay.run.replay), best pass;
and the same two for the face_recognition baseline.
"""

import io
import time
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from edge.bench import baseline
from edge.capture.base import Frame
from edge.capture.open import open_source
from edge.config.match import MatchConfig
from edge.config.quality import QualityConfig
from edge.errors import EdgeError
from edge.pipeline import Pipeline
from edge.replay.run import replay
from edge.track.decision import Threshold
from edge.vision.quality import assess
from edge.vision.stack import VisionStack
from edge.watchlist.calibration import load_policy
from edge.watchlist.match import Gallery, match


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


def _threshold(stack: VisionStack) -> Threshold:
    """The embedder's calibrated fixed threshold: the bench measures speed, the value only decides alerts."""
    spec = stack.embedder.spec
    return load_policy(MatchConfig(mode="fixed"), stack.manifest.folder, spec.name, spec.sha256).for_gallery(0)


def encode_jpeg(image: np.ndarray) -> bytes:
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise EdgeError("OpenCV could not encode the benchmark frame as JPEG")
    return jpeg.tobytes()


def cold_frame(stack: VisionStack, image: np.ndarray, gallery: Gallery, runs: int) -> dict[str, Any]:
    """Per-stage best times on one frame, and the whole pipeline with every face new."""
    data = encode_jpeg(image)
    quality = QualityConfig().for_embedder(stack.embedder.spec.quality_gate)
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
        pipeline = Pipeline(stack, gallery, _threshold(stack))  # fresh: every face is a new track
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
            pipeline = Pipeline(stack, gallery, _threshold(stack), stride=stride)
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
