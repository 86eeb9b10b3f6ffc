"""The device uplink's side of the handheld flow, through the real broker and ACL: the HQ-signed pairing
record in, sealed alerts out through the outbox (kept while the handheld has never connected), decisions in."""

import json
import logging
import queue
import threading

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from link_helpers import Broker, connect, wait
from mqtt_collector import Collector

from edge.bench.synthetic import synthetic_match
from edge.link.uplink import Uplink
from edge.protocol import topics
from edge.protocol.adjudication import Adjudication, verify_adjudication
from edge.protocol.alert import open_sealed
from edge.protocol.canonical import verify
from edge.protocol.pairing import DevicePairing, HandheldPeer, device_record, payload, raw_b64, read_record

JPEG = b"\xff\xd8\xff\xe0" + bytes(200)  # what the handheld checks: JPEG magic bytes


def test_uplink_pairing_sealed_alerts_and_decisions(broker: Broker, caplog: pytest.LogCaptureFixture) -> None:
    hq_key, h1_signing = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    h1_sealing = X25519PrivateKey.generate()
    device_key = broker.fleet.signing_key("a")
    h1_peer = HandheldPeer(id="h1", signing_key=raw_b64(h1_signing.public_key()),
                           encryption_key=raw_b64(h1_sealing.public_key()))
    hq = connect(broker, "hq-pairing")
    assert hq.publish_wait(topics.device_pairing("a"), payload(device_record("a", [h1_peer], hq_key)), True, 5).ok

    handled: queue.Queue[tuple[str, str, object]] = queue.Queue()
    pairings: list[DevicePairing] = []

    def on_pairing(data: bytes) -> None:
        pairings.append(read_record(data, DevicePairing, hq_key.public_key(), "a"))
        handled.put(("pairing", threading.current_thread().name, data))
        raise RuntimeError("a handler bug must not stop later deliveries")

    def on_adjudication(topic: str, data: bytes) -> None:
        decision = verify_adjudication(data, pairings[-1].handheld_keys(), topic=topic, device="a")
        handled.put(("decision", threading.current_thread().name, decision))

    uplink = Uplink(broker.config("device-a"), device_key, on_pairing=on_pairing, on_adjudication=on_adjudication)
    uplink.start()
    at_h1 = Collector()
    h1 = h2 = None
    try:
        kind, thread, _ = handled.get(timeout=5)
        assert (kind, thread) == ("pairing", "edge-uplink-delivery")  # not paho's network thread
        event = synthetic_match("a", 7)
        uplink.send_match(event)
        [(topic, envelope)] = pairings[-1].sealed_alerts(event, device_key, JPEG)
        with pytest.raises(ValueError, match="cannot go to"):
            uplink.send_handheld_alert(topics.handheld_inbox("h2", "a"), envelope)
        with pytest.raises(ValueError, match=r"not an edge\.sealed_alert/1"):
            uplink.send_handheld_alert(topic, b"{}")
        uplink.send_handheld_alert(topic, envelope)

        # Nobody subscribes yet (no HQ ingest; h1 never connected): PUBACK 0x10, both stay in the outbox.
        def warned(t: str) -> bool:
            return any("no subscriber" in r.getMessage() and t in r.getMessage() for r in caplog.records
                       if r.levelno == logging.WARNING)

        wait(lambda: warned(topic) and warned(topics.match_events("a")), 10, "PUBACK 0x10 on both topics")
        assert uplink.pending == 2
        h1 = connect(broker, "handheld-h1", at_h1)
        h1.subscribe([topics.handheld_inbox_filter("h1")])
        h1.wait_subscribed(5)
        assert at_h1.wait_for(topic, timeout=10)  # the next probe finds h1 and the held alert goes out
        wait(lambda: uplink.pending == 1, 5, "the alert to leave the outbox")  # the match event waits for HQ

        wire = at_h1.messages[0].payload
        body = json.loads(wire)
        assert body["sent_at"] and verify(body, device_key.public_key())  # outer signature added by the uplink
        alert = open_sealed(wire, h1_sealing, {"a": device_key.public_key()}, "h1")
        assert (alert.event_id, alert.score) == (event.event_id, event.score)

        # Decisions: the ACL gives device a only those of its paired handheld h1.
        h2 = connect(broker, "handheld-h2")
        assert h2.publish_wait(topics.adjudications("h2"), b"not for a", False, 5).ok
        decision = Adjudication.create(alert, "4711", "Sgt. Able", "confirm")
        assert h1.publish_wait(topics.adjudications("h1"), decision.signed(h1_signing), False, 5).ok
        kind, thread, received = handled.get(timeout=5)
        assert isinstance(received, Adjudication) and (kind, thread) == ("decision", "edge-uplink-delivery")
        assert (received.adjudication_id, received.event_id, received.decision) == (
            decision.adjudication_id, event.event_id, "confirm")
        assert handled.empty()
    finally:
        uplink.stop()
        for client in (hq, h1, h2):
            if client is not None:
                client.stop()

