"""A camera that delivers nothing is visible: the watchdog is fed only on frames, the log says so once, and the
status HQ receives counts the seconds without a frame. Real broker, real `edge run`, a systemd notify socket."""

import json
import time
from pathlib import Path

from daemon_helpers import NotifiedDevice

from edge.demo.trial import TrialFleet
from edge.link.mqtt import MqttClient
from edge.protocol import topics

DEVICE = "cam-silent"


def test_a_silent_camera_starves_the_watchdog_and_shows_in_the_status(make_fleet, tmp_path: Path) -> None:
    fleet: TrialFleet = make_fleet("silent", DEVICE)
    broker = fleet.broker()
    broker.start()
    statuses: list[dict] = []
    hq = MqttClient(fleet.link("hq-ingest", broker.port),
                    on_message=lambda m: statuses.append(json.loads(m.payload)) if m.payload else None)
    hq.start()
    hq.wait_connected(10)
    hq.subscribe([topics.status(DEVICE)])
    config = fleet.device_config(DEVICE, "/dev/video97", broker.port)  # no such camera: the daemon waits for it
    config.write_text(config.read_text().replace("[camera]\n", "[camera]\nstall_s = 3\n"))
    device = NotifiedDevice(config, tmp_path, 0.5)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            device.receive()
            ready = device.ready_at()
            if ready and time.monotonic() - ready > 12 and \
                    any(s.get("counters", {}).get("seconds_without_frame", 0) >= 3 for s in statuses):
                break
        ready_at = device.ready_at()
        assert ready_at is not None, "edge run never told systemd it was ready"
        fed = [t for t, n in device.notes if "WATCHDOG=1" in n]
        assert fed, "the watchdog was never fed while the camera had not yet been silent for stall_s"
        assert max(fed) - ready_at < 3 + 2, "fed after the camera had been silent for stall_s"
        assert not [t for t in fed if t > ready_at + 6]
        assert any(s.get("counters", {}).get("seconds_without_frame", 0) >= 3 for s in statuses), statuses[-1:]
    finally:
        err = device.stop()
        hq.stop()
        broker.stop()
    assert err.count("no frame processed for 3 s") == 1, err[-3000:]
