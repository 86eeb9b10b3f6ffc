"""Per-minute counters of what the pipeline saw and let go, emitted as one `counters` record a minute."""

import logging
import threading
import time
from collections.abc import Callable

from edge.audit.records import CountersBody

logger = logging.getLogger(__name__)

FIELDS = ("frames", "faces_seen", "faces_discarded", "tracks_ended_without_match", "alerts", "messages_refused")


class MinuteCounters:
    """Thread-safe counts for the current minute; at each minute boundary the finished minute is emitted.

    A boundary is noticed by the next `add` or `tick` after it (the pipeline adds every frame; call `tick`
    from a timer when frames may stop). Call `flush` before the period_stop record so a period's counts
    precede its end. Minutes without counts emit nothing. If `emit` fails (full disk), the counts are kept
    and go out with the next minute's, the record then spanning both.
    """

    def __init__(self, emit: Callable[[CountersBody], object], clock: Callable[[], float] = time.time,
                 camera: str | None = None) -> None:
        """`camera`: the camera whose frames these are (None: the device's own counts, e.g. refused messages)."""
        self._emit = emit
        self._camera = camera
        self._clock = clock
        self._lock = threading.Lock()
        self._start: int | None = None  # first minute of the counts held
        self._due = 0  # minute boundary at which they are emitted
        self._counts = dict.fromkeys(FIELDS, 0)

    def add(self, *, frames: int = 0, faces_seen: int = 0, faces_discarded: int = 0,
            tracks_ended_without_match: int = 0, alerts: int = 0, messages_refused: int = 0) -> None:
        deltas = {"frames": frames, "faces_seen": faces_seen, "faces_discarded": faces_discarded,
                  "tracks_ended_without_match": tracks_ended_without_match, "alerts": alerts,
                  "messages_refused": messages_refused}
        if min(deltas.values()) < 0:
            raise ValueError(f"counters only grow: {deltas}")
        with self._lock:
            minute = self._roll()
            if self._start is None:
                self._start, self._due = minute, minute + 60
            for name, delta in deltas.items():
                self._counts[name] += delta

    def tick(self) -> None:
        """Emit the finished minute if a boundary has passed."""
        with self._lock:
            self._roll()

    def flush(self) -> None:
        """Emit what has been counted so far (at period stop), as a record ending at its minute's end."""
        with self._lock:
            self._send(retry_at=_minute(self._clock()) + 60)

    def _roll(self) -> int:
        minute = _minute(self._clock())
        if minute >= self._due:
            self._send(retry_at=minute + 60)
        return minute

    def _send(self, retry_at: int) -> None:
        if self._start is None:
            return
        if any(self._counts.values()):
            counts = {**self._counts, "messages_refused": self._counts["messages_refused"] or None}
            body = CountersBody(minute_start=self._start, minute_end=self._due, camera=self._camera, **counts)
            try:
                self._emit(body)
            except Exception:
                logger.exception("counters from minute %d not recorded yet; they carry over", self._start)
                self._due = retry_at  # next try at the next boundary, not on every frame
                return
        self._start = None
        self._counts = dict.fromkeys(FIELDS, 0)


def _minute(t: float) -> int:
    return int(t // 60) * 60
