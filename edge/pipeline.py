"""Frames in, alerts out: detect, track, embed when it helps, match, decide per track.

Everything about a face that matches no one stays inside this module's tracks and is dropped when the
track ends; the only outputs are alerts (matches) and counts.
"""

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from edge.capture.base import Frame
from edge.config.quality import QualityConfig
from edge.config.track import TrackConfig
from edge.runtime.gallery_trt import MAX_ROWS, TensorRTRowSearch
from edge.track.decision import Alert, Threshold, decide
from edge.track.tracker import Evidence, Track, Tracker
from edge.vision.detect import Detections
from edge.vision.quality import Quality, assess
from edge.vision.stack import VisionStack
from edge.watchlist.match import INT8_MIN_ROWS, Gallery, MatchResult, RowSearch, match

log = logging.getLogger(__name__)

REFINE_PER_FRAME = 8  # faces refined on the full-resolution frame per detection round, at most


@dataclass
class FaceCounters:
    """Counts only, so that non-retention can be shown: what was seen, and what was let go."""

    frames: int = 0
    detections: int = 0
    faces_seen: int = 0
    faces_discarded: int = 0
    embeddings: int = 0
    alerts: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class GpuGallery:
    """The GPU's pass over a large gallery: made when first needed, loaded once per gallery; shared by the
    pipelines of one VisionStack (every camera's), which all match against the same gallery."""

    search: TensorRTRowSearch | None = None
    unusable: bool = False  # it could not be made: the CPU scans, said once in the log


class Pipeline:
    """One camera's face pipeline. Not thread-safe: one inference thread owns it (and the CUDA context)."""

    def __init__(self, stack: VisionStack, gallery: Gallery, threshold: Threshold,
                 quality: QualityConfig | None = None, track: TrackConfig | None = None, stride: int = 1,
                 clock: Callable[[], float] = time.time, gpu: "GpuGallery | None" = None) -> None:
        """`gpu`: the GPU gallery scan shared with the other cameras' pipelines on the same VisionStack (one copy
        of the watchlist in GPU memory, not one per camera)."""
        self.stack = stack
        self.quality = quality or QualityConfig()
        self._resolved: tuple[str, QualityConfig] | None = None  # (embedder sha256, its resolved quality settings)
        self.track_cfg = track or TrackConfig()
        self.stride = stride
        self.clock = clock
        self.tracker = Tracker(self.track_cfg.iou, self.track_cfg.max_missed)
        self.counters = FaceCounters()
        self.gallery = gallery
        self.threshold = threshold
        self._gpu = gpu or GpuGallery()

    def swap_watchlist(self, gallery: Gallery, threshold: Threshold) -> None:
        """Install a new watchlist between frames; live tracks are re-judged against it from now on.

        Evidence (and the aggregate) refers to the old list's subjects and is dropped; who a track already alerted
        on is kept (by subject id), so an update never raises a second alert on the same person.
        """
        self.gallery, self.threshold = gallery, threshold
        for track in self.tracker.tracks.values():
            track.drop_looks()
            track.best_quality = 0.0
            track.last_embed_frame = -(10**9)

    def process(self, frame: Frame) -> list[Alert]:
        """One frame of a sequence: every `stride`-th is detected, faces are tracked, a track decides on
        `min_evidence` agreeing embeddings."""
        self.counters.frames += 1
        if frame.index % self.stride:
            return []
        return self._detect_and_decide(frame, self.track_cfg.min_evidence)

    def process_still(self, frame: Frame) -> list[Alert]:
        """One photo on its own: every face in it is new, one embedding decides, and nothing carries over to the
        next photo (a photo is one look at a face; the two-look rule guards against a video's single bad frame)."""
        self.counters.frames += 1
        try:
            return self._detect_and_decide(frame, 1)
        finally:
            self._forget(self.tracker.close())

    def _gallery_search(self) -> RowSearch | None:
        """The GPU's pass over a large gallery when the embedder runs on TensorRT (its CUDA context), holding the
        current gallery (loaded on the first frame after a swap); None: the CPU's 8-bit scan."""
        rows = len(self.gallery.owner)
        gpu = self._gpu
        if gpu.unusable or rows < INT8_MIN_ROWS or not self.stack.embedder_on_gpu():
            return None
        try:
            if gpu.search is None or gpu.search.dim != self.gallery.dim:
                gpu.search = TensorRTRowSearch(self.gallery.dim, self.stack.engine_dir)
            if not gpu.search.holds(self.gallery) and rows <= MAX_ROWS:
                gpu.search.load(self.gallery.rows, rows, self.gallery)
        except Exception as exc:  # no engine can be built, out of GPU memory: matching goes on, on the CPU
            log.warning("the GPU gallery scan is unavailable (%s: %s); the CPU scans the watchlist",
                        type(exc).__name__, exc)
            gpu.unusable = True
            return None
        return gpu.search

    def _detect_and_decide(self, frame: Frame, min_evidence: int) -> list[Alert]:
        todo = self._look(frame)
        if not todo:
            return []
        return self._judge(frame, todo, self.stack.embedder.embed(np.stack([c for _, c, _ in todo])), min_evidence)

    def _look(self, frame: Frame) -> list[tuple[Track, np.ndarray, Quality]]:
        """Detect and track; the faces worth embedding now (none while the watchlist is empty)."""
        det = self.stack.detector(frame.image, frame.device)
        self.counters.detections += len(det)
        seen, dead = self.tracker.update(det, frame.index)
        self._forget(dead)
        self.counters.faces_seen += sum(1 for t, _ in seen if t.hits == 1)
        todo = self._worth_embedding(frame, seen)
        return todo if self.gallery.size else []

    def _judge(self, frame: Frame, todo: list[tuple[Track, np.ndarray, Quality]], embeddings: np.ndarray,
               min_evidence: int) -> list[Alert]:
        """Match the embeddings of `todo`'s faces (and, for the `aggregate` rule, each track's aggregate with them
        in the same pass) and decide per track."""
        self.counters.embeddings += len(todo)
        rule, n = self.track_cfg.decision, len(todo)
        probes = embeddings
        if rule == "aggregate":
            probes = np.concatenate([embeddings, np.stack([t.pool(e, q.score) for (t, _, q), e in zip(todo, embeddings,
                                                                                                    strict=True)])])
        results = match(self.gallery, probes, self.clock(), k=2, search=self._gallery_search())
        del embeddings, probes
        alerts = []
        for i, (track, crop, q) in enumerate(todo):
            res, pooled = results[i], results[n + i] if rule == "aggregate" else None
            best, pooled_best = res.best, pooled.best if pooled else None
            if track.evidence and track.evidence[-1].score < self.threshold.value:
                track.evidence[-1].crop = None  # no longer the latest look, and never a candidate on its own
            keep = pooled is not None or (best is not None and best.score >= self.threshold.value)
            track.evidence.append(Evidence(
                frame.index, q, best.subject_index if best else None, best.score if best else -1.0, res.margin,
                crop if keep else None,
                pooled_best.subject_index if pooled_best else None, pooled_best.score if pooled_best else -1.0,
                pooled.margin if pooled else 0.0))
            track.last_embed_frame = frame.index
            track.best_quality = max(track.best_quality, q.score)
            decided = decide(track, self.threshold.value, min_evidence, self.gallery.subject_ids, rule)
            if decided is not None:
                alerts.append(self._alert(track, frame, decided[0], decided[1], pooled or res))
        return alerts

    def _worth_embedding(self, frame: Frame, seen: list[tuple[Track, int]]) -> list[tuple[Track, np.ndarray, Quality]]:
        """Tracks whose face now is usable and new, clearly better, or due for another look.

        Those that would be embedded now (by timing, or by their reduced search's quality) are first looked at
        again on the full-resolution frame (`Detector.refine`, at most REFINE_PER_FRAME, most overdue first):
        their refined landmarks and score are what is aligned, gated and kept on the track.
        """
        cfg = self.track_cfg
        gate = self._gate()
        looks = []
        for track, _ in seen:
            crop = self.stack.embedder.crops(frame.image, track.landmarks[None])[0]
            looks.append((track, crop, assess(crop, track.landmarks, track.score, gate)))
        looks = self._refined(frame, looks, gate)
        todo = []
        for track, crop, q in looks:
            if not q.ok:
                continue
            first = not track.evidence
            better = q.score > track.best_quality * cfg.better_quality
            due = self._due(track, frame)
            if first or better or due:
                todo.append((track, crop, q))
        return todo

    def _due(self, track: Track, frame: Frame) -> bool:
        cfg = self.track_cfg
        return (not track.matched and len(track.evidence) < cfg.max_embeddings
                and frame.index - track.last_embed_frame >= cfg.reembed_every)

    def _refined(self, frame: Frame, looks: list[tuple[Track, np.ndarray, Quality]],
                 gate: QualityConfig) -> list[tuple[Track, np.ndarray, Quality]]:
        """`looks` with the faces about to be embedded refined on the full-resolution frame."""
        detector = self.stack.detector
        if not detector.refines or not self.gallery.size:
            return looks
        wanted = [i for i, (track, _, q) in enumerate(looks)
                  if not track.evidence or self._due(track, frame)
                  or q.score > track.best_quality * self.track_cfg.better_quality]
        wanted = sorted(wanted, key=lambda i: looks[i][0].last_embed_frame)[:REFINE_PER_FRAME]
        if not wanted:
            return looks
        tracks = [looks[i][0] for i in wanted]
        coarse = Detections(np.stack([t.box for t in tracks]).astype(np.float32),
                            np.array([t.score for t in tracks], np.float32), np.stack([t.landmarks for t in tracks]))
        fine = detector.refine(frame.image, coarse)
        out = list(looks)
        for k, (i, track) in enumerate(zip(wanted, tracks, strict=True)):
            if fine.scores[k] == coarse.scores[k] and np.array_equal(fine.landmarks[k], coarse.landmarks[k]):
                continue  # not refined: too large to gain, or its crop found nothing
            track.landmarks, track.score = fine.landmarks[k], float(fine.scores[k])
            crop = self.stack.embedder.crops(frame.image, track.landmarks[None])[0]
            out[i] = (track, crop, assess(crop, track.landmarks, track.score, gate))
        return out

    def _gate(self) -> QualityConfig:
        """The quality settings with the running embedder's gate, resolved again only when the embedder changes."""
        spec = self.stack.embedder.spec
        if self._resolved is None or self._resolved[0] != spec.sha256:
            self._resolved = (spec.sha256, self.quality.for_embedder(spec.quality_gate))
        return self._resolved[1]

    def _alert(self, track: Track, frame: Frame, subject: int, agreeing: list[int], res: MatchResult) -> Alert:
        """The alert shows the agreeing face that scored highest (its crop and quality); its score, margin and
        runner-up are that face's under the `votes` rule and the aggregate's (`res`) under the `aggregate` rule."""
        track.alerted.add(self.gallery.subject_ids[subject])
        self.counters.alerts += 1
        kept = (track.evidence[i] for i in agreeing if track.evidence[i].crop is not None)
        shown = max(kept, key=lambda ev: ev.score)
        assert shown.crop is not None  # kept for every face at or above the threshold, and for the latest look
        pooled = self.track_cfg.decision == "aggregate"
        score, margin = (track.evidence[-1].pooled_score, track.evidence[-1].pooled_margin) if pooled else \
            (shown.score, shown.margin)
        runner = next((c.subject_id for c in res.candidates if c.subject_index != subject), None)
        labels = self.gallery.labels
        return Alert(
            track_id=track.id,
            frame=frame.index,
            timestamp=frame.timestamp,
            subject_index=subject,
            subject_id=self.gallery.subject_ids[subject],
            label=labels[subject] if labels else self.gallery.subject_ids[subject],
            score=round(score, 4),
            threshold=self.threshold,
            margin=round(margin, 4),
            runner_up=runner,
            quality=shown.probe,
            box=tuple(round(float(v), 1) for v in track.box),
            crop=shown.crop,
            evidence=len(agreeing),
        )

    def _forget(self, dead: list[Track]) -> None:
        for track in dead:
            if not track.matched:
                self.counters.faces_discarded += 1
            track.drop_looks()

    def finish(self) -> None:
        """End of source: every track ends, and whatever they held is dropped."""
        self._forget(self.tracker.close())


def process_together(work: Sequence[tuple[Pipeline, Frame]]) -> list[list[Alert]]:
    """One frame from each of several cameras, each pipeline (its own tracker) detecting and tracking its own;
    the faces of all of them are embedded in one call, so the embedder's batch serves every camera.

    The pipelines share one VisionStack (the models are loaded once). The detector takes one frame per call:
    its engines have one static shape per frame size, and cameras may differ in size.
    """
    looks = []
    for pipeline, frame in work:
        pipeline.counters.frames += 1
        looks.append(pipeline._look(frame) if frame.index % pipeline.stride == 0 else [])
    crops = [crop for todo in looks for _, crop, _ in todo]
    if not crops:
        return [[] for _ in work]
    stacks = {id(pipeline.stack) for pipeline, _ in work}
    if len(stacks) != 1:
        raise ValueError("process_together needs pipelines sharing one VisionStack")
    embeddings = work[0][0].stack.embedder.embed(np.stack(crops))
    out, at = [], 0
    for (pipeline, frame), todo in zip(work, looks, strict=True):
        out.append(pipeline._judge(frame, todo, embeddings[at:at + len(todo)], pipeline.track_cfg.min_evidence)
                   if todo else [])
        at += len(todo)
    return out
