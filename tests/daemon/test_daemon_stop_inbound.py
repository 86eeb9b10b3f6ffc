"""A decision that reaches the device while it stops is audited, on this start or the next, never lost.

Before: `Device._close` closed the audit log while the link's delivery thread still ran, so a decision (or
a bundle, or a pairing record) handled in that window hit a closed log ("audit log ... is closed"); the link
took that for a bad message, refused and acknowledged it, and the broker never delivered it again: the
officer's decision was in no device audit log. Real broker with the shipped config, real handheld identity,
`edge run` as a process; the only stand-in is a pause once the audit log is closed, so the decision
arrives inside the window every time.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from daemon_helpers import audit_lines, paired_device_once_run, publish_decision, run_device

from edge.demo.trial import TrialFleet

DEVICE, HANDHELD = "cam-stopping", "h1"

PAUSE_AT_CLOSE = """
import os, pathlib, sys, time
from edge.audit import log as audit_log
flag = pathlib.Path(os.environ["EDGE_TEST_CLOSING"])
real_close = audit_log.AuditLog.close
def close(self):
    real_close(self)
    if not flag.exists():
        flag.write_text("closing")
        deadline = time.monotonic() + 30
        while not flag.with_suffix(".go").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.5)  # the decision reaches the device's link meanwhile
audit_log.AuditLog.close = close
from edge.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture
def fleet(make_fleet) -> TrialFleet:
    return make_fleet("stopping", DEVICE)


def test_a_decision_arriving_while_the_device_stops_is_audited_not_lost(fleet: TrialFleet, demo_dir: Path,
                                                                       tmp_path: Path):
    broker = fleet.broker()
    broker.start()
    try:
        handheld, config = paired_device_once_run(fleet, broker, demo_dir, tmp_path, DEVICE, HANDHELD)

        flag = tmp_path / "closing.flag"
        log = tmp_path / "device.log"
        with open(log, "w") as out:
            device = subprocess.Popen([sys.executable, "-c", PAUSE_AT_CLOSE, "-v", "run", "--config", str(config)],
                                      stdout=out, stderr=subprocess.STDOUT,
                                      env={**os.environ, "EDGE_TEST_CLOSING": str(flag)})
        try:
            deadline = time.monotonic() + 180
            while not flag.exists() and device.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            assert flag.exists(), log.read_text()[-3000:]
            decision = publish_decision(fleet, broker.port, handheld, DEVICE, HANDHELD, retain=False)
            flag.with_suffix(".go").write_text("go")
            assert device.wait(60) == 0, log.read_text()[-3000:]
        finally:
            if device.poll() is None:
                device.kill()
                device.wait()

        again = run_device(config)  # what was not audited before the stop is delivered again now
        assert again.returncode == 0, again.stderr[-3000:]
        audited = [r for r in audit_lines(fleet, DEVICE) if r["kind"] == "adjudication"]
        assert [r["body"]["event_id"] for r in audited] == [decision.event_id], log.read_text()[-3000:]
        assert "is closed" not in log.read_text(), log.read_text()[-3000:]
    finally:
        broker.stop()
