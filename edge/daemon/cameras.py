"""One camera of the device: its capture thread, its frame queue, its pipeline, and what it counts.

Each camera opens, waits for and reopens its own source (with its own back-off); one that fails or goes silent is
logged and shown in the status under its id while the device keeps serving the others.
"""

import logging
import threading
import time

from edge.audit.counters import MinuteCounters
from edge.capture.base import Frame
from edge.capture.open import open_source
from edge.config.camera import CameraConfig
from edge.daemon.framequeue import FrameQueue
from edge.daemon.health import RateMeter
from edge.errors import EdgeError
from edge.pipeline import FaceCounters, Pipeline, process_together
from edge.track.decision import Alert

log = logging.getLogger(__name__)


class CameraFeed:
    """A camera's frames from its capture thread to the inference thread, and its figures for status and audit."""

    def __init__(self, cfg: CameraConfig, minutes: MinuteCounters, wake: threading.Event,
                 stop: threading.Event) -> None:
        """`minutes`: this camera's counters record; `wake` is set on every frame (the inference thread serves
        every camera's queue); `stop` ends the capture."""
        self.cfg = cfg
        self.id = cfg.id
        self.minutes = minutes
        self.queue = FrameQueue(cfg.queue, wake)
        self.fps = RateMeter()
        self.counters = FaceCounters()
        self.heartbeat = time.monotonic()  # when its last frame was processed
        self.failure: EdgeError | None = None  # its source could not be opened: it delivers nothing
        self.silent = False  # nothing for stall_s: said once until a frame comes
        self.pipeline: Pipeline | None = None  # the inference thread's
        self._stop = stop

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self._capture, name=f"edge-capture-{self.id}", daemon=True)
        thread.start()
        return thread

    def _capture(self) -> None:
        try:
            source = open_source(self.cfg.source, max_backoff=self.cfg.max_backoff, held=self.cfg.queue)
        except EdgeError as exc:
            log.error("camera %s: %s", self.id, exc)
            self.failure = exc
            self.queue.close()
            return
        try:
            while not self._stop.is_set() and (frame := source.read()) is not None:
                self.queue.put(frame)
                if not source.live:
                    self.queue.wait_for_room()  # the device's stop closes the queue
        finally:
            source.close()
            self.queue.close()

    def processed(self, before: tuple[int, int], frames: int = 1) -> None:
        """Count what the pipeline did since `before` (its discarded and seen faces then)."""
        assert self.pipeline is not None
        c = self.pipeline.counters
        discarded, seen = c.faces_discarded - before[0], c.faces_seen - before[1]
        self.minutes.add(frames=frames, faces_seen=seen, faces_discarded=discarded,
                         tracks_ended_without_match=discarded)
        self.counters = FaceCounters(**c.as_dict())
        if frames:
            self.fps.tick()

    def before(self) -> tuple[int, int]:
        assert self.pipeline is not None
        return self.pipeline.counters.faces_discarded, self.pipeline.counters.faces_seen

    def seconds_without_frame(self, now: float) -> int:
        return int(now - self.heartbeat)

    def check_silent(self, now: float) -> bool:
        """True while the camera has delivered nothing for its stall_s; logged once when it goes silent."""
        if now - self.heartbeat < self.cfg.stall_s:
            if self.silent:
                log.info("camera %s: frames again", self.id)
            self.silent = False
        elif not self.silent:
            self.silent = True
            why = f"its source failed: {self.failure}" if self.failure else "camera silent or inference stuck"
            log.error("camera %s: no frame processed for %.0f s (%s)", self.id, self.cfg.stall_s, why)
        return self.silent

    def status(self, now: float) -> dict[str, int]:
        """This camera's figures in the device status, as `cam.<id>.<figure>`."""
        c = self.counters
        values = {"frames": c.frames, "faces_seen": c.faces_seen, "alerts": c.alerts,
                  "dropped_frames": self.queue.dropped, "fps_x10": round(self.fps.rate() * 10),
                  "seconds_without_frame": self.seconds_without_frame(now), "source_failed": int(bool(self.failure))}
        return {f"cam.{self.id}.{k}": v for k, v in values.items()}


def take_frames(feeds: list[CameraFeed], wake: threading.Event, timeout: float) -> list[tuple[CameraFeed, Frame]]:
    """The oldest frame of each camera that has one (every camera served in turn, none starving the others);
    none within `timeout` seconds: an empty list. `wake` is the event every feed's queue sets."""
    wake.clear()  # before looking: a frame queued after the look sets it again
    work = [(feed, frame) for feed in feeds if (frame := feed.queue.get(timeout=0)) is not None]
    if not work:
        wake.wait(timeout)
    return work


def process_frames(work: list[tuple[CameraFeed, Frame]]) -> list[tuple[CameraFeed, list[Alert]]]:
    """Each camera's frame through its own pipeline, the faces of all embedded in one batch; counted per camera."""
    now = time.monotonic()
    befores = [feed.before() for feed, _ in work]
    pairs = [(feed.pipeline, frame) for feed, frame in work]
    assert all(pipeline is not None for pipeline, _ in pairs)
    results = process_together(pairs)  # type: ignore[arg-type]
    for (feed, _), before in zip(work, befores, strict=True):
        feed.heartbeat = now  # only a frame counts: a silent camera shows, and alone starves the watchdog
        feed.processed(before)
    return [(feed, alerts) for (feed, _), alerts in zip(work, results, strict=True)]


def total(feeds: list[CameraFeed]) -> FaceCounters:
    """The device's counts: every camera's added up."""
    out = FaceCounters()
    for feed in feeds:
        for key, value in feed.counters.as_dict().items():
            setattr(out, key, getattr(out, key) + value)
    return out
