"""A thousand hostile messages at a device's uplink through the real broker and ACL do not jam it: each is refused
and acknowledged, so a new watchlist bundle, a pairing change and a decision still arrive within seconds.

The broker sends a client at most `max_inflight_messages` (100) unacknowledged messages; a device that leaves
refused ones unacknowledged hears nothing more after a hundred of them.
"""

import errno
import logging
import os
import queue
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from link_helpers import Broker, connect, wait
from mqtt_collector import flood

from edge.audit.counters import MinuteCounters
from edge.audit.log import AuditLog
from edge.audit.records import AuditRecord, CountersBody
from edge.audit.verify import verify_file
from edge.bench.synthetic import synthetic_match
from edge.link.chunks import chunk_topic, manifest_topic, publish_bundle
from edge.link.inbound import MAX_HELD
from edge.link.uplink import Bundle, Uplink
from edge.protocol import topics
from edge.protocol.adjudication import Adjudication, verify_adjudication
from edge.protocol.alert import HandheldAlert
from edge.protocol.pairing import DevicePairing, HandheldPeer, device_record, payload, raw_b64, read_record

JPEG = b"\xff\xd8\xff\xe0" + bytes(200)
DEVICE_MAX_BYTES = 256 << 10  # the device's link.max_message_bytes here (the broker's max_packet_size is 1 MiB)


def poison(n: int, forger: Ed25519PrivateKey, alert: HandheldAlert) -> bytes:
    """The n-th hostile payload: nested, huge integers, not UTF-8, wrong types, oversized, forged."""
    kinds = [
        lambda: b"[" * 100_000,
        lambda: b'{"schema":"edge.adjudication/1","note":' + b"9" * 5_000 + b"}",
        lambda: b"\xff\xfe\x00" + os.urandom(64),
        lambda: b'{"schema":"edge.adjudication/1","adjudication_id":5,"decision":["confirm"]}',
        lambda: b'{"schema":' + b"{" * 50_000,
        lambda: Adjudication.create(alert, "4711", "Sgt. Forger", "reject").signed(forger),  # not h1's key
        lambda: b"null",
    ]
    if n % 100 == 99:
        return b"[" * (DEVICE_MAX_BYTES + 1)  # refused unread
    return kinds[n % len(kinds)]()


def test_thousand_hostile_messages_do_not_stop_bundles_pairing_or_decisions(broker: Broker, tmp_path: Path) -> None:
    hq_key, h1_key, forger = (Ed25519PrivateKey.generate() for _ in range(3))
    peer = HandheldPeer(id="h1", signing_key=raw_b64(h1_key.public_key()),
                        encryption_key=raw_b64(X25519PrivateKey.generate().public_key()))
    hq = connect(broker, "hq-pairing")  # the pairing tool's identity; bundles need the publisher's
    publisher = connect(broker, "hq-publisher")
    h1 = connect(broker, "handheld-h1")
    assert hq.publish_wait(topics.device_pairing("a"), payload(device_record("a", [peer], hq_key)), True, 5).ok

    pairings: list[DevicePairing] = []
    decisions: queue.Queue[Adjudication] = queue.Queue()
    bundles: queue.Queue[str] = queue.Queue()

    def on_pairing(data: bytes) -> None:  # as the daemon's DeviceControl: a refusal raises
        if pairings and data == payload(pairings[-1]):
            return
        pairings.append(read_record(data, DevicePairing, hq_key.public_key(), "a", pairings[-1] if pairings else None))

    def on_adjudication(topic: str, data: bytes) -> None:
        decisions.put(verify_adjudication(data, pairings[-1].handheld_keys(), topic=topic, device="a"))

    def on_bundle(bundle: Bundle) -> None:
        bundles.put(bundle.path.read_bytes().decode())

    audit_key = Ed25519PrivateKey.generate()
    audit = AuditLog.open(tmp_path / "audit.log", audit_key, 100, device_id="a")
    minutes = MinuteCounters(lambda body: audit.append("counters", body))  # as the daemon wires it

    def uplink() -> Uplink:
        config = broker.config("device-a", max_message_bytes=DEVICE_MAX_BYTES, chunk_bytes=1 << 17)
        link = Uplink(config, broker.fleet.signing_key("a"), fleet="north", on_bundle=on_bundle,
                      on_pairing=on_pairing, on_adjudication=on_adjudication,
                      on_refused=lambda code: minutes.add(messages_refused=1))
        link.start()
        link.wait_connected(5)
        return link

    device = uplink()
    try:
        wait(lambda: len(pairings) == 1, 5, "the first pairing record")
        alert = HandheldAlert.from_match(synthetic_match("a", 1), "h1", JPEG)
        decisions_topic = topics.adjudications("h1")
        attack = [(decisions_topic, poison(n, forger, alert), n % 50 == 49) for n in range(900)]
        attack += [(topics.device_pairing("a"), poison(n, forger, alert), n == 49) for n in range(50)]
        prefix = topics.device_bundle("a")
        attack += [(chunk_topic(prefix, n % 5) if n % 2 else manifest_topic(prefix), poison(n, forger, alert),
                    True) for n in range(50)]
        flood(h1, [m for m in attack if m[0] == decisions_topic])
        flood(hq, [m for m in attack if m[0] == topics.device_pairing("a")])
        flood(publisher, [m for m in attack if m[0].startswith(prefix)])
        wait(lambda: sum(device.refusals.values()) >= 1000, 60, "the device to refuse all 1,000")
        assert not device.refusals.get("error")  # every one refused for what it is, none by a handler failing
        device.stop()
        device = uplink()  # a reconnect: the retained poison (decision, pairing, bundle pieces) comes again
        wait(lambda: sum(device.refusals.values()) >= 3, 10, "the retained poison refused again")

        started = time.monotonic()
        newer = device_record("a", [peer], hq_key)
        assert hq.publish_wait(topics.device_pairing("a"), payload(newer), True, 5).ok
        publish_bundle(broker.config("hq-publisher"), prefix, b"watchlist bundle v2")
        genuine = Adjudication.create(alert, "4711", "Sgt. Alex Able", "confirm")
        assert h1.publish_wait(decisions_topic, genuine.signed(h1_key), False, 5).ok
        assert bundles.get(timeout=10) == "watchlist bundle v2"
        wait(lambda: pairings[-1].issued_at == newer.issued_at, 10, "the pairing change")
        assert decisions.get(timeout=10).adjudication_id == genuine.adjudication_id
        assert time.monotonic() - started < 10
        assert device.refusals["malformed"] >= 2 and device.refusals["oversized"] >= 1
        minutes.flush()  # each refusal is in the audit chain as a count, none of the messages themselves
        audit.close()
        lines = (tmp_path / "audit.log").read_bytes().splitlines()
        bodies = [AuditRecord.model_validate_json(line).body for line in lines]
        counted = [b for b in bodies if isinstance(b, CountersBody)]
        assert sum(r.messages_refused or 0 for r in counted) >= 1003
        assert verify_file(tmp_path / "audit.log", [audit_key.public_key()]).ok
    finally:
        device.stop()
        hq.stop()
        publisher.stop()
        h1.stop()


def test_full_disk_holds_only_a_bounded_number_of_messages(broker: Broker, caplog: pytest.LogCaptureFixture) -> None:
    """Decisions the device cannot write for want of disk stay at the broker, at most MAX_HELD of them (the rest
    are dropped, loudly); the next decision still arrives, and the held ones come again after a reconnect."""
    hq_key, h1_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    peer = HandheldPeer(id="h1", signing_key=raw_b64(h1_key.public_key()),
                        encryption_key=raw_b64(X25519PrivateKey.generate().public_key()))
    record = device_record("a", [peer], hq_key)
    hq = connect(broker, "hq-pairing")
    h1 = connect(broker, "handheld-h1")
    assert hq.publish_wait(topics.device_pairing("a"), payload(record), True, 5).ok
    disk_full = True
    written: list[str] = []

    def on_adjudication(topic: str, data: bytes) -> None:
        decision = verify_adjudication(data, record.handheld_keys(), topic=topic, device="a")
        if disk_full:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(decision.adjudication_id)

    def uplink() -> Uplink:
        link = Uplink(broker.config("device-a"), broker.fleet.signing_key("a"), on_adjudication=on_adjudication,
                      on_pairing=lambda _data: None)
        link.start()
        link.wait_connected(5)
        return link

    device = uplink()
    alert = HandheldAlert.from_match(synthetic_match("a", 2), "h1", JPEG)
    sent = [Adjudication.create(alert, "4711", "Sgt. Alex Able", "unsure") for _ in range(150)]
    try:
        flood(h1, [(topics.adjudications("h1"), d.signed(h1_key), False) for d in sent])
        wait(lambda: device.refusals.get("dropped_local_failure", 0) == 150 - MAX_HELD, 20, "the drops")
        assert sum(r.levelno == logging.CRITICAL and "DROPPED" in r.getMessage() for r in caplog.records) == 140
        disk_full = False
        late = Adjudication.create(alert, "4711", "Sgt. Alex Able", "confirm")
        assert h1.publish_wait(topics.adjudications("h1"), late.signed(h1_key), False, 5).ok
        wait(lambda: late.adjudication_id in written, 5, "the decision after the held ones")
        device.stop()
        device = uplink()  # the broker delivers the held ones again: now they are written
        wait(lambda: len(written) == 1 + MAX_HELD, 10, "the held decisions, delivered again")
        assert set(written) <= {d.adjudication_id for d in sent} | {late.adjudication_id}
    finally:
        device.stop()
        hq.stop()
        h1.stop()
