"""A clean stop loses no audit record and a restart audits nothing twice: real broker, HQ ingest, `edge run`.

Before: the uplink stopped before the audit log closed, so the closing checkpoint hit a closed outbox
("upload hook failed: Cannot operate on a closed database"), HQ never got it and reported a gap after every
restart; and officers' decisions, retained on the broker, were audited again on every start.
"""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from daemon_helpers import audit_lines, edge, one_frame_folder, publish_decision, run_device, wait_for_hq_audit

from edge.demo.trial import TrialFleet

DEVICE, HANDHELD = "cam-restart", "h1"


@pytest.fixture
def fleet(make_fleet) -> TrialFleet:
    return make_fleet("restart", DEVICE)


def assert_clean_stop(run: subprocess.CompletedProcess) -> None:
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Traceback" not in run.stderr and "upload hook failed" not in run.stderr, run.stderr[-3000:]


def hq_report(fleet: TrialFleet) -> dict:
    out = subprocess.run([sys.executable, "-m", "edge", "hq", "report", "--db", str(fleet.hq_db), "--device", DEVICE,
                          "--device-keys", str(fleet.keys), "--json"], capture_output=True, text=True, check=True)
    [report] = json.loads(out.stdout)
    return report


def test_stop_delivers_every_record_and_a_restart_audits_a_retained_decision_once(fleet: TrialFleet, demo_dir: Path,
                                                                                 tmp_path: Path):
    broker = fleet.broker()
    broker.start()
    ingest = edge(*fleet.ingest_command(broker.port))
    try:
        handheld = fleet.provision_handheld(HANDHELD, broker.port, "--officer", "4711=Sgt. Able")
        fleet.pair(HANDHELD, DEVICE, broker)
        bundle = fleet.build_watchlist([DEVICE], demo_dir, {"lin-manuel-miranda.png": "Lin-Manuel Miranda"}, 1,
                                       fleet.hq / "v1.bundle")
        fleet.publish(bundle, broker.port)
        config = fleet.device_config(DEVICE, str(demo_dir / "short_hamilton_clip.mp4"), broker.port)
        first = run_device(config)
        assert_clean_stop(first)
        log = audit_lines(fleet, DEVICE)
        assert log[-1]["kind"] == "checkpoint" and log[-1]["body"]["reason"] == "close"
        at_hq = wait_for_hq_audit(fleet, DEVICE)
        assert sorted({r["seq"] for r in at_hq}) == list(range(len(log))), "HQ lacks device audit records"
        assert {r["hash"] for r in at_hq} == {r["hash"] for r in log}  # the closing checkpoint included

        decision = publish_decision(fleet, broker.port, handheld, DEVICE, HANDHELD, retain=True)
        one_frame = one_frame_folder(tmp_path / "frame", demo_dir)
        for start in range(2):  # audited on the first start after it was published, never again
            again = run_device(config, source=str(one_frame))
            assert_clean_stop(again)
            if start:
                assert f"decision {decision.adjudication_id} on" in again.stderr, again.stderr[-3000:]
        log = audit_lines(fleet, DEVICE)
        audited = [r for r in log if r["kind"] == "adjudication"]
        assert [(r["body"]["event_id"], r["body"]["by"]) for r in audited] == [(decision.event_id, "4711")]
        at_hq = wait_for_hq_audit(fleet, DEVICE)
        assert sorted({r["seq"] for r in at_hq}) == list(range(len(log)))
        deadline = time.monotonic() + 10
        while (report := hq_report(fleet))["integrity_problems"] and time.monotonic() < deadline:
            time.sleep(0.5)
        assert report["integrity_problems"] == [], report["integrity_problems"]  # no gap after the restarts
    finally:
        ingest.terminate()
        ingest.wait(10)
        broker.stop()
