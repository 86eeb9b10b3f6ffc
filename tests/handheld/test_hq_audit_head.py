"""A device whose audit log lost its end announces a lower head in its status: HQ notices and the report says
so. The device's real Uplink and AuditLog, the log cut as `head -n 7` would, real HQ ingest and `edge hq report`."""

import json
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from handheld_helpers import FleetFiles, edge, wait_until

from edge.audit.log import AuditLog
from edge.audit.records import AuditRecord, CountersBody, PeriodStartBody
from edge.cli import main as edge_main
from edge.hq.broker import LocalBroker
from edge.hq.ingest import Ingest, PublicKeys
from edge.hq.store import Batch, Event, EventStore, Head, Status
from edge.keys import load_signing_private, load_signing_public
from edge.link.uplink import Uplink


def start(fleet: FleetFiles, tmp_path: Path, device: str = "cam01") -> tuple[Uplink, AuditLog]:
    """A device starting as the daemon does: uplink built, audit log opened (its records to the outbox), connected."""
    key = load_signing_private(fleet.keys / f"device-{device}" / "device_signing.key")
    uplink = Uplink(fleet.link(f"device-{device}").model_copy(update={"outbox": tmp_path / "outbox.sqlite"}), key)
    audit = AuditLog.open(tmp_path / "audit.log", key, 5, device_id=device,
                          on_record=lambda r: uplink.send_audit(r.as_dict()))
    uplink.start()
    return uplink, audit


def stop(uplink: Uplink, audit: AuditLog) -> None:
    audit.close()
    assert uplink.wait_drained(10)
    uplink.stop()


def test_hq_flags_an_audit_head_that_went_backwards(fleet: FleetFiles, hq_store: EventStore, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    uplink, audit = start(fleet, tmp_path)
    audit.append("period_start", PeriodStartBody(period_id="p1", place="Market St", camera="cam01/front",
                                                 watchlist_size=0, threshold=0.5))
    for minute in range(12):
        audit.append("counters", CountersBody(minute_start=60 * minute, minute_end=60 * minute + 60, frames=10))
    uplink.set_status()  # what the daemon does every 10 s
    stop(uplink, audit)  # the offline status announces the closing checkpoint
    last = json.loads((tmp_path / "audit.log").read_bytes().splitlines()[-1])
    assert wait_until(lambda: hq_store.head("cam01") == Head(last["seq"], last["hash"]), 10)
    assert hq_store.regressions("cam01") == []

    log = tmp_path / "audit.log"
    log.write_bytes(b"".join(log.read_bytes().splitlines(keepends=True)[:7]))  # head -n 7
    uplink, audit = start(fleet, tmp_path)  # the device goes on with the cut file
    try:
        assert wait_until(lambda: len(hq_store.regressions("cam01")) == 1, 10)
    finally:
        stop(uplink, audit)
    regression = hq_store.regressions("cam01")[0]
    assert (regression.before, regression.after.seq) == (Head(last["seq"], last["hash"]), 7)
    capsys.readouterr()
    assert edge_main(["hq", "report", "--db", hq_store.location, "--device", "cam01"]) == 0
    text = capsys.readouterr().out
    assert "**Integrity: the audit chain has problems" in text
    assert (f"audit head went backwards (noticed {regression.noticed_at}): the device announced seq 7 after it had "
            f"announced seq {last['seq']}: its log's end was cut off") in text.replace("\\", "")
    assert f"--anchor {last['seq']}:{last['hash']}" in text.replace("\\", "")


def test_several_ingest_workers_do_not_cry_cut_log(fleet_broker: tuple[FleetFiles, LocalBroker],
                                                   tmp_path: Path) -> None:
    """Workers of one --group each get every status and write at their own pace: a late copy of an older status
    once counted as the head going backwards, so an honest device's report claimed a cut log."""
    fleet, broker = fleet_broker
    edge("hq", "pki", "issue", "--role", "hq", "--id", "ingest2", "--hq-role", "ingest", "--ca-dir",
         fleet.root / "ca", "--out", fleet.tls, "--registry", fleet.registry)
    broker.reload()
    db = str(tmp_path / "hq.sqlite")
    workers = [Ingest(fleet.link(name), EventStore.open(db), PublicKeys(fleet.keys), group="hq", batch_size=3,
                      hq_public=load_signing_public(fleet.hq_public)) for name in ("hq-ingest", "hq-ingest2")]
    for worker in workers:
        worker.start()
        worker.wait_connected(5)
    uplink, audit = start(fleet, tmp_path, "cam02")  # its first status in this fleet
    try:
        for minute in range(150):
            audit.append("counters", CountersBody(minute_start=60 * minute, minute_end=60 * minute + 60, frames=1))
            uplink.set_status()  # each announces a higher head
        last = audit.head
        store = workers[0].store
        assert wait_until(lambda: store.head("cam02") == Head(*last) and uplink.pending == 0, 15)
        time.sleep(1)  # both workers done with every status
        assert store.regressions("cam02") == []
        assert store.head("cam02") == Head(*last)
    finally:
        stop(uplink, audit)
        for worker in workers:
            worker.stop()
            worker.store.close()


def test_a_log_cut_and_written_on_past_an_announced_head_is_flagged(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """HQ had the head announced (seq 14) but not yet the records 7-14 (still in the device's outbox) when the log
    was cut to 7 lines, the anchor file removed and the outbox wiped: the device went on past seq 14 before it
    next said its head, so the head never went backwards. The head HQ saw is still evidence."""
    key = Ed25519PrivateKey.generate()
    path = tmp_path / "audit.log"
    with AuditLog.open(path, key, 5, device_id="cam01") as audit:
        for minute in range(12):
            audit.append("counters", CountersBody(minute_start=60 * minute, minute_end=60 * minute + 60, frames=1))
        announced = Head(*audit.head)
    records = [AuditRecord.model_validate_json(line) for line in path.read_bytes().splitlines()]
    store = EventStore.open(str(tmp_path / "hq.sqlite"))

    def arrive(rs: list[AuditRecord], head: Head) -> None:
        events = [Event(f"{r.seq}-{r.hash[:8]}", "audit", "cam01", "t", "t", json.dumps({"record": r.as_dict()}))
                  for r in rs]
        store.write(Batch(events=events, statuses=[Status("cam01", True, "t", "{}", head)]))

    arrive(records[:7], announced)
    path.write_bytes(b"".join(path.read_bytes().splitlines(keepends=True)[:7]))
    with AuditLog.open(path, key, 5, device_id="cam01") as audit:
        for minute in range(20):
            audit.append("counters", CountersBody(minute_start=60 * minute, minute_end=60 * minute + 60, frames=1))
        now = Head(*audit.head)
    assert now.seq > announced.seq
    arrive([AuditRecord.model_validate_json(line) for line in path.read_bytes().splitlines()[7:]], now)
    assert store.regressions("cam01") == []  # the head only went up
    store.close()
    capsys.readouterr()
    assert edge_main(["hq", "report", "--db", str(tmp_path / "hq.sqlite"), "--device", "cam01"]) == 0
    text = capsys.readouterr().out.replace("\\", "")
    assert "**Integrity: the audit chain has problems" in text
    assert (f"1 audit head(s) the device announced are not the records HQ holds at those seqs (first: seq "
            f"{announced.seq}, {announced.hash[:12]}…)") in text


def test_statuses_queued_while_offline_do_not_cry_cut_log(fleet_broker: tuple[FleetFiles, LocalBroker],
                                                          hq_store: EventStore, tmp_path: Path) -> None:
    """A device says its status every 10 s, connected or not; paho sends what it queued while offline after the
    status `on_connect` says, so HQ once read the older heads as the head going backwards on every reconnect."""
    fleet, broker = fleet_broker
    uplink, audit = start(fleet, tmp_path, "cam02")
    try:
        uplink.wait_connected(5)
        uplink.set_status()
        assert wait_until(lambda: hq_store.head("cam02") == Head(*audit.head), 10)
        before = len(hq_store.regressions("cam02"))  # (this fleet's cam02 may have run another log before)
        broker.stop()
        for minute in range(5):
            audit.append("counters", CountersBody(minute_start=60 * minute, minute_end=60 * minute + 60, frames=1))
            uplink.set_status()  # queued in paho until the broker is back
        last = audit.head
        broker.start()
        uplink.wait_connected(15)
        assert wait_until(lambda: hq_store.head("cam02") == Head(*last), 15)
        time.sleep(1)  # the queued ones, too
        assert len(hq_store.regressions("cam02")) == before
        assert hq_store.head("cam02") == Head(*last)
    finally:
        if not broker.running:
            broker.start()
        stop(uplink, audit)
