"""Review recorded footage (or a live source) against a list: one line per alert decision."""

import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from edge.capture.base import FrameSource
from edge.capture.open import open_source
from edge.errors import SourceError
from edge.pipeline import FaceCounters, Pipeline
from edge.track.decision import Alert, Threshold

log = logging.getLogger(__name__)


def alert_record(alert: Alert, photo: str | None = None) -> dict[str, object]:
    """What a reviewer sees of an alert: who, how sure, against which threshold, on what quality of face."""
    return {
        **({"photo": photo} if photo is not None else {"time": round(alert.timestamp, 3)}),
        "frame": alert.frame,
        "track": alert.track_id,
        "subject_id": alert.subject_id,
        "person": alert.label,
        "score": alert.score,
        "threshold": alert.threshold.value,
        "threshold_mode": alert.threshold.mode,
        "threshold_policy": alert.threshold.policy,
        "fpir": alert.threshold.fpir,
        "fpir_is_upper_bound": alert.threshold.fpir_bound,
        "margin": alert.margin,
        "runner_up": alert.runner_up,
        "quality": alert.quality.score,
        "box": list(alert.box),
        "evidence": alert.evidence,
        "status": "candidate: to be verified by a person before any action",
    }


def format_alert(alert: Alert, photo: str | None = None) -> str:
    """One line: where (time and track in a video, the file for a photo), who, and how sure."""
    minutes, seconds = divmod(alert.timestamp, 60)
    fpir = f", FPIR {fpir_text(alert.threshold)}" if alert.threshold.fpir else ""
    box = ",".join(f"{v:.0f}" for v in alert.box)
    where = f"{photo}  face {alert.track_id:<3d}" if photo is not None else \
        f"{int(minutes):02d}:{seconds:05.2f}  track {alert.track_id:<3d}"
    return (f"{where} POSSIBLE MATCH {alert.label}  "
            f"score {alert.score:.3f}  threshold {alert.threshold.value:.3f}{fpir}  margin {alert.margin:.3f}  "
            f"quality {alert.quality.score:.2f}  box [{box}]")


def fpir_text(threshold: Threshold) -> str:
    return f"{'<=' if threshold.fpir_bound else '~'}{threshold.fpir:.1e}"


@dataclass(frozen=True)
class ReplaySummary:
    frames: int
    seconds: float
    counters: FaceCounters
    alerts: list[Alert]
    stills: bool = False


def replay(pipeline: Pipeline, uri: str | FrameSource, out: TextIO = sys.stdout, as_json: bool = False,
           on_alert: Callable[[Alert], None] | None = None) -> ReplaySummary:
    """Run every frame of the source (a URI, or a source already open; closed at the end) through the pipeline,
    writing each alert as it is decided.

    Photos (an image folder) are judged one by one (`Pipeline.process_still`), video frames as a sequence.
    A source that yields no frame at all is a SourceError: nothing was reviewed.
    """
    source = open_source(uri) if isinstance(uri, str) else uri
    process = pipeline.process_still if source.stills else pipeline.process
    alerts: list[Alert] = []
    frames = 0
    start = time.perf_counter()
    try:
        while (frame := source.read()) is not None:
            frames += 1
            for alert in process(frame):
                alerts.append(alert)
                out.write((json.dumps(alert_record(alert, frame.name)) if as_json
                           else format_alert(alert, frame.name)) + "\n")
                out.flush()
                if on_alert is not None:
                    on_alert(alert)
    finally:
        source.close()
        pipeline.finish()
    if frames == 0:
        what = "no readable image" if source.stills else "no frame"
        raise SourceError(f"{source.uri} gave {what}: nothing was reviewed; check that it is a video, an image folder "
                          "or a camera that delivers frames")
    return ReplaySummary(frames, time.perf_counter() - start, pipeline.counters, alerts,
                         source.stills)
