"""A paired handheld that floods the device with signed decisions cannot fill its disk with audit records.

Before: every distinct decision a paired handheld signed was audited (fsynced) and queued for HQ, with no bound:
a runaway handheld, or whoever took its key, grew the device's audit log and outbox until the disk was full, and
the alerts then lived on the reserve. Real broker with the shipped config, `edge run` as a process, decisions
queued for it at the broker; the only stand-in is a lower hourly limit, so the test sends 12, not 600.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from daemon_helpers import audit_lines, paired_device_once_run

from edge.demo.trial import TrialFleet
from edge.keys import load_signing_private
from edge.link.mqtt import MqttClient
from edge.protocol import topics
from edge.protocol.adjudication import Adjudication
from edge.protocol.messages import new_event_id, utc_now

DEVICE, HANDHELD, LIMIT = "cam-flooded", "h1", 4

WITH_LIMIT = f"""
import sys
import edge.daemon.control
edge.daemon.control.DECISIONS_PER_HOUR = {LIMIT}
from edge.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture
def fleet(make_fleet) -> TrialFleet:
    return make_fleet("flooded", DEVICE)


def test_a_handheld_flooding_decisions_is_refused_past_the_hourly_limit(fleet: TrialFleet, demo_dir: Path,
                                                                        tmp_path: Path):
    broker = fleet.broker()
    broker.start()
    try:
        folder, config = paired_device_once_run(fleet, broker, demo_dir, tmp_path, DEVICE, HANDHELD)

        key = load_signing_private(folder / "handheld_signing.key")
        client = MqttClient(fleet.link(f"handheld-{HANDHELD}", broker.port, certs=folder / "tls"))
        client.start()
        try:
            client.wait_connected(10)
            for _ in range(3 * LIMIT):  # each on an alert id of its own: all distinct, all validly signed
                decision = Adjudication(adjudication_id=new_event_id(), event_id=new_event_id(), device=DEVICE,
                                        handheld=HANDHELD, officer_id="4711", officer_name="Sgt. Able",
                                        decision="confirm", decided_at=utc_now())
                assert client.publish_wait(topics.adjudications(HANDHELD), decision.signed(key), False, 10).ok
        finally:
            client.stop()

        flooded = subprocess.run([sys.executable, "-c", WITH_LIMIT, "-v", "run", "--config", str(config)],
                                 capture_output=True, text=True, timeout=240, env=dict(os.environ))
        assert flooded.returncode == 0, flooded.stderr[-3000:]
        audited = [r for r in audit_lines(fleet, DEVICE) if r["kind"] == "adjudication"]
        assert len(audited) == LIMIT, flooded.stderr[-3000:]
        assert flooded.stderr.count("(rate_limited)") == 2 * LIMIT, flooded.stderr[-3000:]
    finally:
        broker.stop()
