"""Per-minute counters: one record per finished minute, exact under threads, nothing lost when writing fails."""

import json
import threading
from pathlib import Path

import pytest
from audit_helpers import DEVICE, T0, FakeClock, read_lines
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.audit.counters import MinuteCounters
from edge.audit.log import AuditLog
from edge.audit.records import CountersBody
from edge.audit.verify import verify_file

M0 = int(T0)


def test_one_record_per_finished_minute() -> None:
    clock, out = FakeClock(T0 + 5), []
    counters = MinuteCounters(out.append, clock)
    counters.add(frames=10, faces_seen=2)
    clock.t = T0 + 59.9
    counters.add(frames=5, faces_discarded=1, tracks_ended_without_match=1)
    assert out == []
    clock.t = T0 + 61
    counters.add(frames=7, alerts=1)  # the first add of a new minute closes the last one
    assert out == [CountersBody(minute_start=M0, minute_end=M0 + 60, frames=15, faces_seen=2, faces_discarded=1,
                                tracks_ended_without_match=1)]
    clock.t = T0 + 200
    counters.tick()  # frames stopped: the timer closes the minute
    assert out[1] == CountersBody(minute_start=M0 + 60, minute_end=M0 + 120, frames=7, alerts=1)
    counters.tick()
    counters.flush()
    assert len(out) == 2  # nothing counted since: nothing emitted
    counters.add(frames=1)
    counters.flush()  # at period stop
    assert out[2] == CountersBody(minute_start=M0 + 180, minute_end=M0 + 240, frames=1)


def test_threads_lose_no_counts() -> None:
    clock, out = FakeClock(), []
    counters = MinuteCounters(out.append, clock)
    start = threading.Barrier(3)

    def pipeline() -> None:
        start.wait()
        for _ in range(5000):
            counters.add(frames=1, faces_seen=2)

    def minutes() -> None:
        start.wait()
        for i in range(50):
            clock.t = T0 + 60 * i
            counters.tick()

    threads = [threading.Thread(target=f) for f in (pipeline, pipeline, minutes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    counters.flush()
    assert sum(b.frames for b in out) == 10_000 and sum(b.faces_seen for b in out) == 20_000
    starts = [b.minute_start for b in out]
    assert starts == sorted(set(starts))


def test_failed_write_carries_counts_over(caplog: pytest.LogCaptureFixture) -> None:
    clock, out, fail = FakeClock(), [], [True]

    def emit(body: CountersBody) -> None:
        if fail[0]:
            raise OSError("No space left on device")
        out.append(body)

    counters = MinuteCounters(emit, clock)
    counters.add(frames=4)
    clock.t = T0 + 60
    counters.add(frames=3)  # emitting minute 0 fails: kept
    counters.add(frames=2)  # no retry within the same minute
    assert "carry over" in caplog.text and caplog.text.count("carry over") == 1
    fail[0] = False
    clock.t = T0 + 120
    counters.tick()
    assert out == [CountersBody(minute_start=M0, minute_end=M0 + 120, frames=9)]


def test_counters_go_into_the_audit_log(tmp_path: Path, device_key: Ed25519PrivateKey) -> None:
    path, clock = tmp_path / "audit.log", FakeClock()
    with AuditLog.open(path, device_key, 100, device_id=DEVICE, clock=clock) as log:
        counters = MinuteCounters(lambda body: log.append("counters", body), clock)
        for second in range(0, 180, 2):
            clock.t = T0 + second
            counters.add(frames=2, faces_seen=1, faces_discarded=1)
        counters.flush()
    bodies = [json.loads(raw)["body"] for raw in read_lines(path) if b'"kind":"counters"' in raw]
    assert [(b["minute_start"], b["frames"], b["faces_discarded"]) for b in bodies] == [
        (M0, 60, 30), (M0 + 60, 60, 30), (M0 + 120, 60, 30)]
    assert verify_file(path, [device_key.public_key()]).ok


def test_counts_only_grow() -> None:
    with pytest.raises(ValueError, match="only grow"):
        MinuteCounters(lambda body: None).add(frames=-1)
