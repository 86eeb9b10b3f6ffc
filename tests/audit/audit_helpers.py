"""Helpers for the audit tests: realistic bodies, a real log written through AuditLog, a forger's tools."""

import base64
import json
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.audit.log import AuditLog
from edge.audit.records import (
    AdjudicationBody,
    AlertBody,
    CountersBody,
    PeriodStartBody,
    PeriodStopBody,
    WatchlistInstalledBody,
    content_hash,
    signed_bytes,
)
from edge.keys import key_id

DEVICE = "cam-01"
T0 = 1_700_000_040.0  # a minute boundary
H = "ab" * 32


class FakeClock:
    """Wall time that tests move on by hand."""

    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def period_start(period_id: str = "p1", size: int = 3) -> PeriodStartBody:
    return PeriodStartBody(period_id=period_id, place="Main St / 5th Ave", camera="cam-01/front", operator="PC 4711",
                           purpose="case 2024-117", watchlist_id="wl-city", watchlist_version=7,
                           watchlist_size=size, threshold=0.5, threshold_policy="fixed (match.threshold)",
                           embedder_sha256=H)


def alert(event_id: str, score: float = 0.61) -> AlertBody:
    return AlertBody(event_id=event_id, track_id=3, frame=120, frame_time=T0 + 4.0, subject_id="s-17",
                     watchlist_id="wl-city", watchlist_version=7, score=score, threshold=0.5,
                     threshold_policy="fixed (match.threshold)", margin=0.2,
                     probe_quality=0.8, box=(10.0, 20.0, 110.0, 140.0), detector_sha256=H, embedder_sha256=H,
                     crop_sha256=H)


def counters(minute: int, frames: int = 1500) -> CountersBody:
    return CountersBody(minute_start=minute, minute_end=minute + 60, frames=frames, faces_seen=12,
                        faces_discarded=10, tracks_ended_without_match=9, alerts=1)


def write_log(path: Path, key: Ed25519PrivateKey, minutes: int = 30, every: int = 10) -> None:
    """A realistic session: period start, a watchlist, per-minute counters with an alert and decision, stop."""
    clock = FakeClock()
    with AuditLog.open(path, key, every, device_id=DEVICE, clock=clock) as log:
        log.append("watchlist_installed", WatchlistInstalledBody(
            watchlist_id="wl-city", version=7, entries=3, expires=T0 + 86400, bundle_sha256=H, model_sha256=H))
        log.append("period_start", period_start())
        for m in range(minutes):
            clock.t = T0 + 60 * (m + 1)
            log.append("counters", counters(int(T0) + 60 * m, frames=1500 + m))
            if m % 7 == 3:
                log.append("alert", alert(f"ev-{m}"))
                log.append("adjudication", AdjudicationBody(event_id=f"ev-{m}", decision="confirmed", by="PC 4711",
                                                            decided_at=clock.t + 5))
        log.append("period_stop", PeriodStopBody(period_id="p1", reason="operator"))


def read_lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def line_of(lines: list[bytes], seq: int) -> int:
    """Index in `lines` of the record with this seq."""
    return next(i for i, raw in enumerate(lines) if json.loads(raw)["seq"] == seq)


def rehash(record: dict) -> bytes:
    """A record re-serialised the way the device writes it, with its hash recomputed (what a forger does)."""
    record["hash"] = content_hash(record)
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def rewrite_from(lines: list[bytes], seq: int, edit: Callable[[dict], None],
                 key: Ed25519PrivateKey | None = None) -> list[bytes]:
    """Edit record `seq` and recompute every later hash and link (and re-sign every checkpoint with `key`): what
    someone without the device key can do."""
    out: list[bytes] = []
    for raw in lines:
        record = json.loads(raw)
        if record["seq"] == seq:
            edit(record)
        if out:
            record["prev"] = json.loads(out[-1])["hash"]
        if key is not None and record["kind"] == "checkpoint":
            record["body"]["key_id"] = key_id(key.public_key())
            record["body"]["signature"] = base64.b64encode(key.sign(signed_bytes(record))).decode()
        out.append(rehash(record))
    return out
