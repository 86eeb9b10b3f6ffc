"""Messages HQ refused for want of a key are kept and accepted later: `edge hq ingest --retry-refused`.

The device deletes what the broker acknowledged, so HQ's kept copy is the only one left."""

import logging
import shutil
import signal
import subprocess
import sys
import tracemalloc
from pathlib import Path

from link_helpers import Broker, wait

from edge.bench.synthetic import synthetic_match
from edge.hq.ingest import Ingest, PublicKeys
from edge.hq.refused import retry_refused
from edge.hq.store import Batch, EventStore, Rejection
from edge.link.mqtt import MqttClient
from edge.link.uplink import Uplink
from edge.protocol import topics
from edge.protocol.canonical import encode

EVENTS = 3


def test_refused_for_a_missing_key_are_accepted_once_it_is_there(broker: Broker, tmp_path: Path) -> None:
    keys = tmp_path / "device-keys"  # HQ's key folder, without device a's key yet (a mis-named provisioning folder)
    keys.mkdir()
    db = tmp_path / "hq.sqlite"
    store = EventStore.open(str(db))
    ingest = Ingest(broker.config("hq-ingest"), store, PublicKeys(keys))
    ingest.start()
    ingest.wait_connected(5)
    uplink = Uplink(broker.config("device-a", outbox_sync="normal"), broker.fleet.signing["a"])
    uplink.start()
    forger = MqttClient(broker.config("device-a"))
    forger.start()
    try:
        uplink.wait_connected(5)
        for i in range(EVENTS):
            uplink.send_match(synthetic_match("a", i))
        forger.wait_connected(5)
        unsigned = encode(synthetic_match("a", 99).body())  # no signature: stays refused whatever the keys
        assert forger.publish_wait(topics.match_events("a"), unsigned, False, 5).ok
        wait(lambda: len(store.rejections()) == EVENTS + 1, 10, "every message refused at HQ")
        assert uplink.wait_drained(5), "the device has deleted what the broker acknowledged"
    finally:
        forger.stop()
        uplink.stop()
        ingest.stop()
    assert store.count() == 0
    store.close()

    shutil.copytree(broker.fleet.device_keys / "device-a", keys / "device-a")  # the key, where HQ looks
    certs = broker.fleet.certs
    hq = subprocess.Popen(
        [sys.executable, "-m", "edge", "hq", "ingest", "--broker", f"127.0.0.1:{broker.local.port}", "--ca",
         str(certs / "ca.crt"), "--cert", str(certs / "hq-ingest.crt"), "--key", str(certs / "hq-ingest.key"),
         "--db", str(db), "--device-keys", str(keys), "--retry-refused"],
        stderr=subprocess.PIPE, text=True)
    assert hq.stderr is not None
    lines = []
    while "connected and subscribed" not in (line := hq.stderr.readline()):
        assert line, "edge hq ingest exited: " + "".join(lines)
        lines.append(line)
    hq.send_signal(signal.SIGTERM)
    assert hq.wait(10) == 0
    said = "".join(lines)
    assert f"{EVENTS} of {EVENTS + 1} refused message(s) now accepted; 1 still refused" in said, said

    store = EventStore.open(str(db))
    try:
        assert sorted(e.event_id for e in store.events(kind="match")) == sorted(
            synthetic_match("a", i).event_id for i in range(EVENTS))
        left = store.rejections()
        assert len(left) == 1 and left[0].payload == unsigned
    finally:
        store.close()


def test_retrying_a_flood_of_refusals_does_not_load_them_all(broker: Broker, tmp_path: Path) -> None:
    """A hostile device's flood leaves refused messages of up to a whole packet each (1 MiB): `--retry-refused`
    once read every one into memory at once, so HQ could not start with it."""
    store = EventStore.open(str(tmp_path / "hq.sqlite"))
    junk = [Rejection("t", topics.match_events("a"), "unknown_sender", bytes([65 + i % 26]) * (1 << 20))
            for i in range(48)]
    store.write(Batch(rejections=junk))
    del junk
    worker = Ingest(broker.config("hq-ingest"), store, PublicKeys(tmp_path))  # not started: its checks only
    quiet = logging.getLogger("edge.hq.ingest")  # pytest keeps every log record, and with it each payload
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    tracemalloc.start()
    try:
        result = retry_refused(store, worker.recheck)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        quiet.setLevel(level)
        store.close()
    assert (result.checked, result.accepted) == (48, 0)
    assert peak < 24 << 20, f"{peak >> 20} MiB held at once"
