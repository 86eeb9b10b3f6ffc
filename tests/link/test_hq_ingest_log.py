"""What `edge hq ingest` logs about a refused message is safe in a terminal: a device chooses the keys of its
JSON, and the refusal names a key it did not expect. Real broker, real `edge hq ingest` process."""

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from link_helpers import Broker

from edge.bench.synthetic import synthetic_match
from edge.link.mqtt import MqttClient
from edge.protocol import topics

HOSTILE = "\x1b]0;owned\x07\x1b[2J\x9b31m\u202e"


def test_a_hostile_key_in_a_refused_payload_reaches_the_log_escaped(broker: Broker, tmp_path: Path) -> None:
    certs = broker.fleet.certs
    hq = subprocess.Popen(
        [sys.executable, "-m", "edge", "hq", "ingest", "--broker", f"127.0.0.1:{broker.local.port}", "--ca",
         str(certs / "ca.crt"), "--cert", str(certs / "hq-ingest.crt"), "--key", str(certs / "hq-ingest.key"),
         "--db", str(tmp_path / "hq.sqlite"), "--device-keys", str(broker.fleet.device_keys)],
        stderr=subprocess.PIPE, text=True, errors="backslashreplace")
    assert hq.stderr is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(hq.stderr.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    device = MqttClient(broker.config("device-a"))
    try:
        deadline = time.monotonic() + 10
        while not any("connected and subscribed" in line for line in lines):
            assert time.monotonic() < deadline and hq.poll() is None, "".join(lines)
            time.sleep(0.05)
        device.start()
        device.wait_connected(5)
        body = synthetic_match("a", 1).body() | {HOSTILE: 1}
        assert device.publish_wait(topics.match_events("a"), json.dumps(body).encode(), False, 5).ok
        deadline = time.monotonic() + 10
        while not any("refused message" in line for line in lines):
            assert time.monotonic() < deadline and hq.poll() is None, "".join(lines)
            time.sleep(0.05)
    finally:
        device.stop()
        hq.send_signal(signal.SIGTERM)
        hq.wait(10)
        reader.join(5)
    said = "".join(lines)
    assert "refused message on edge/v1/devices/a/events/match" in said
    assert not any(c in said for c in "\x1b\x07\x9b\u202e"), said
    assert "\\x1b]0;owned\\x07" in said
