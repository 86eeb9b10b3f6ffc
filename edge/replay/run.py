"""Review recorded footage (or a live source) against a list: one line per alert decision."""

import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from edge.capture.open import open_source
from edge.pipeline import FaceCounters, Pipeline
from edge.track.decision import Alert, Threshold

log = logging.getLogger(__name__)


def alert_record(alert: Alert) -> dict[str, object]:
    """What a reviewer sees of an alert: who, how sure, against which threshold, on what quality of face."""
    return {
        "time": round(alert.timestamp, 3),
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


def format_alert(alert: Alert) -> str:
    minutes, seconds = divmod(alert.timestamp, 60)
    fpir = f", FPIR {fpir_text(alert.threshold)}" if alert.threshold.fpir else ""
    box = ",".join(f"{v:.0f}" for v in alert.box)
    return (f"{int(minutes):02d}:{seconds:05.2f}  track {alert.track_id:<3d} POSSIBLE MATCH {alert.label}  "
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


def replay(pipeline: Pipeline, uri: str, out: TextIO = sys.stdout, as_json: bool = False,
           on_alert: Callable[[Alert], None] | None = None) -> ReplaySummary:
    """Run every frame of the source through the pipeline, writing each alert as it is decided."""
    source = open_source(uri)
    alerts: list[Alert] = []
    start = time.perf_counter()
    try:
        while (frame := source.read()) is not None:
            for alert in pipeline.process(frame):
                alerts.append(alert)
                out.write((json.dumps(alert_record(alert)) if as_json else format_alert(alert)) + "\n")
                out.flush()
                if on_alert is not None:
                    on_alert(alert)
    finally:
        source.close()
        pipeline.finish()
    return ReplaySummary(pipeline.counters.frames, time.perf_counter() - start, pipeline.counters, alerts)
