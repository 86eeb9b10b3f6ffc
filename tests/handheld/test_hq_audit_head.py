"""A device whose audit log lost its end announces a lower head in its status: HQ notices and the report says
so. The device's real Uplink and AuditLog, the log cut as `head -n 7` would, real HQ ingest and `edge hq report`."""

import json
from pathlib import Path

import pytest
from handheld_helpers import FleetFiles, wait_until

from edge.audit.log import AuditLog
from edge.audit.records import CountersBody, PeriodStartBody
from edge.cli import main as edge_main
from edge.hq.store import EventStore, Head
from edge.keys import load_signing_private
from edge.link.uplink import Uplink


def start(fleet: FleetFiles, tmp_path: Path) -> tuple[Uplink, AuditLog]:
    """cam01 starting as the daemon does: uplink built, audit log opened (its records to the outbox), connected."""
    key = load_signing_private(fleet.keys / "device-cam01" / "device_signing.key")
    uplink = Uplink(fleet.link("device-cam01").model_copy(update={"outbox": tmp_path / "outbox.sqlite"}), key)
    audit = AuditLog.open(tmp_path / "audit.log", key, 5, device_id="cam01",
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
