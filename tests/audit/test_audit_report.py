"""HQ deployment report from ingested audit records: periods, watchlist, alerts and decisions, counters."""

import json
import random
from pathlib import Path

import pytest
from audit_helpers import DEVICE, T0, FakeClock, alert, counters, period_start, read_lines, rehash, write_log
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.audit.log import AuditLog
from edge.audit.records import (
    AdjudicationBody,
    AuditRecord,
    PeriodStopBody,
    WatchlistInstalledBody,
    WatchlistRefusedBody,
)
from edge.errors import EdgeError
from edge.hq.report import build_report, render_markdown

H = "cd" * 32


def ingest(path: Path) -> list[AuditRecord]:
    """What HQ holds after MQTT: every record, some twice, in arrival order."""
    records = [AuditRecord.model_validate_json(raw) for raw in read_lines(path)]
    arrived = records + random.Random(1).sample(records, min(8, len(records)))
    random.Random(2).shuffle(arrived)
    return arrived


def two_periods(path: Path, key: Ed25519PrivateKey) -> None:
    clock = FakeClock()
    with AuditLog.open(path, key, 10, device_id=DEVICE, clock=clock) as log:
        log.append("period_start", period_start("p1", size=3))
        for m, event in enumerate(["ev-a", "ev-b", "ev-c"]):
            clock.t = T0 + 60 * (m + 1)
            log.append("alert", alert(event))
            log.append("counters", counters(int(T0) + 60 * m, frames=100))
        log.append("adjudication", AdjudicationBody(event_id="ev-a", decision="confirmed", by="PC 4711",
                                                    decided_at=clock.t))
        log.append("adjudication", AdjudicationBody(event_id="ev-b", decision="unsure", by="PC 4711",
                                                    decided_at=clock.t))
        log.append("period_stop", PeriodStopBody(period_id="p1", reason="operator"))
        clock.t += 3600
        log.append("watchlist_refused", WatchlistRefusedBody(watchlist_id="wl-city", version=6, bundle_sha256=H,
                                                             reason="version 6 <= installed 7 (rollback)",
                                                             kept_watchlist_id="wl-city", kept_version=7))
        log.append("period_start", period_start("p2", size=3))
        log.append("alert", alert("ev-d"))
        log.append("counters", counters(int(clock.t) // 60 * 60, frames=50))
        log.append("adjudication", AdjudicationBody(event_id="ev-d", decision="rejected", by="PC 9",
                                                    decided_at=clock.t))
        clock.t += 600
        log.append("period_stop", PeriodStopBody(period_id="p2", reason="shutdown"))


def test_report_counts_periods_alerts_and_decisions(tmp_path: Path, device_key: Ed25519PrivateKey) -> None:
    path = tmp_path / "audit.log"
    two_periods(path, device_key)
    # HQ heard from the handheld that ev-b was in the end confirmed, and ev-c rejected.
    report = build_report(ingest(path), {"ev-b": "confirmed", "ev-c": "rejected"}, [device_key.public_key()])
    assert report.device == DEVICE and report.integrity_problems == [] and report.signatures_checked
    p1, p2 = report.periods
    assert (p1.period_id, p1.place, p1.camera, p1.operator, p1.stop_reason) == (
        "p1", "Main St / 5th Ave", "cam-01/front", "PC 4711", "operator")
    assert p1.start < p1.stop < p2.start < p2.stop
    assert [(w.watchlist_id, w.version, w.size) for w in p1.watchlists] == [("wl-city", 7, 3)]
    assert p1.outcomes.model_dump() == dict(alerts=3, confirmed=2, rejected=1, unsure=0, pending=0)
    assert p2.outcomes.model_dump() == dict(alerts=1, confirmed=0, rejected=1, unsure=0, pending=0)
    assert p1.counters.frames == 300 and p2.counters.frames == 50 and report.counters.faces_discarded == 40
    assert report.totals.alerts == 4 and report.disagreements == ["ev-b"]
    assert [r.reason for r in report.refusals] == ["version 6 <= installed 7 (rollback)"]

    text = render_markdown(report)
    assert "| p1 | 2023-11-14 22:14:00Z |" in text
    assert "| Main St / 5th Ave | cam-01/front | wl-city v7 (3) | 3 | 2 | 1 | 0 | 0 |" in text
    assert "checkpoints signed by the device through seq" in text
    assert "Decisions that differ between device and HQ: ev-b" in text


def test_report_flags_a_tampered_chain(tmp_path: Path, device_key: Ed25519PrivateKey) -> None:
    path = tmp_path / "audit.log"
    write_log(path, device_key, minutes=12)
    lines = read_lines(path)
    i = next(i for i, raw in enumerate(lines) if b'"kind":"adjudication"' in raw)
    record = json.loads(lines[i])
    record["body"]["decision"] = "rejected"
    lines[i] = rehash(record)
    path.write_bytes(b"".join(lines))
    report = build_report(ingest(path), keys=[device_key.public_key()])
    assert report.periods[0].outcomes.rejected == 1  # the figure is reported, and so is the reason to doubt it
    assert len(report.integrity_problems) == 1 and "chain broken" in report.integrity_problems[0]
    assert "**Integrity: the audit chain has problems" in render_markdown(report)


def test_report_without_stop_or_keys(tmp_path: Path, device_key: Ed25519PrivateKey) -> None:
    path = tmp_path / "audit.log"
    with AuditLog.open(path, device_key, 10, device_id=DEVICE) as log:
        log.append("period_start", period_start("p9", size=0))
        log.append("alert", alert("ev-x"))
    report = build_report(ingest(path))
    assert report.periods[0].stop is None and report.periods[0].outcomes.pending == 1
    text = render_markdown(report)
    assert "not recorded" in text and "signatures NOT checked" in text and "p9 has no stop record yet" in text


def test_report_refuses_nothing_or_mixed_devices(tmp_path: Path, device_key: Ed25519PrivateKey) -> None:
    with pytest.raises(EdgeError, match="no audit records"):
        build_report([])
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    write_log(a, device_key, minutes=1)
    with AuditLog.open(b, device_key, 10, device_id="cam-02"):
        pass
    with pytest.raises(EdgeError, match="several devices"):
        build_report(ingest(a) + ingest(b))


def test_records_written_before_the_threshold_policy_still_verify_and_report(tmp_path: Path,
                                                                              device_key: Ed25519PrivateKey) -> None:
    """Devices that predate the group policy wrote period starts and alerts without `threshold_policy` (and period
    starts without `embedder_sha256`): such records hash as written, verify, and the report says so."""
    path = tmp_path / "audit.log"
    with AuditLog.open(path, device_key, 10, device_id=DEVICE, clock=FakeClock()) as log:
        log.append("period_start", period_start("p1").model_copy(update={"threshold_policy": None,
                                                                         "embedder_sha256": None}))
        log.append("alert", alert("ev-a").model_copy(update={"threshold_policy": None}))
    bodies = {r["kind"]: r["body"] for r in map(json.loads, read_lines(path))}
    assert not {"threshold_policy", "embedder_sha256"} & set(bodies["period_start"])
    assert "threshold_policy" not in bodies["alert"]
    report = build_report(ingest(path), keys=[device_key.public_key()])
    assert report.integrity_problems == [] and report.periods[0].threshold_policy is None
    text = render_markdown(report)
    assert "threshold 0.5000 (rule not recorded)" in text
    assert "(policy not recorded)" in text and "**Not measured**" in text  # the alert's embedder, no table for it


def test_a_list_installed_mid_period_reports_the_threshold_it_brought(tmp_path: Path,
                                                                       device_key: Ed25519PrivateKey) -> None:
    """A larger list raises the constant-FPIR threshold: the install record says so, and so does the report."""
    clock = FakeClock()
    path = tmp_path / "audit.log"
    with AuditLog.open(path, device_key, 10, device_id=DEVICE, clock=clock) as log:
        log.append("period_start", period_start("p1", size=3))
        clock.t += 60
        log.append("watchlist_installed", WatchlistInstalledBody(
            watchlist_id="wl-city", version=8, entries=117, expires=T0 + 86400, bundle_sha256=H, model_sha256=H,
            previous_version=7, threshold=0.4839, threshold_policy="constant FPIR 0.001 at 117 people",
            embedder_sha256=H))
    report = build_report(ingest(path), keys=[device_key.public_key()])
    use = report.periods[0].watchlists[-1]
    assert (use.version, use.threshold, use.threshold_policy) == (8, 0.4839, "constant FPIR 0.001 at 117 people")
    text = render_markdown(report)
    assert "with wl-city v8: 0.4839 (constant FPIR 0.001 at 117 people)" in text
    assert "threshold 0.4839 (constant FPIR 0.001 at 117 people)" in text.split("## Error rates")[1]


def test_records_of_several_cameras_verify_beside_older_ones_and_report(tmp_path: Path,
                                                                         device_key: Ed25519PrivateKey) -> None:
    """A device that gained cameras: its older records (no camera named) hash as written, the newer ones name their
    camera, all verify together, and the report lists a period's cameras and adds up every camera's counts."""
    path = tmp_path / "audit.log"
    clock = FakeClock()
    with AuditLog.open(path, device_key, 10, device_id=DEVICE, clock=clock) as log:
        log.append("period_start", period_start("p1"))
        log.append("alert", alert("ev-old"))
        log.append("counters", counters(int(T0), frames=100))
        log.append("period_stop", PeriodStopBody(period_id="p1", reason="shutdown"))
        clock.t = T0 + 120
        log.append("period_start", period_start("p2").model_copy(update={"camera": "front",
                                                                         "cameras": ["front", "rear"]}))
        log.append("alert", alert("ev-new").model_copy(update={"camera": "rear"}))
        for camera in ("front", "rear"):
            log.append("counters", counters(int(T0) + 120, frames=50).model_copy(update={"camera": camera}))
    records = [r for r in map(json.loads, read_lines(path)) if r["kind"] != "checkpoint"]
    old, new = records[:4], records[4:]
    assert "cameras" not in old[0]["body"] and "camera" not in old[1]["body"] and "camera" not in old[2]["body"]
    assert [r["body"]["camera"] for r in new if r["kind"] in ("alert", "counters")] == ["rear", "front", "rear"]
    report = build_report(ingest(path), keys=[device_key.public_key()])
    assert report.integrity_problems == []
    assert [(p.period_id, p.camera, p.counters.frames) for p in report.periods] == [
        ("p1", "cam-01/front", 100), ("p2", "front, rear", 100)]
