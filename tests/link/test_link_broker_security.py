"""The broker, with the deploy config and the generated ACL, is what confines each client (not our client code)."""

import socket
import ssl
from pathlib import Path

import pytest
from link_helpers import Broker, connect
from mqtt_collector import Collector

from edge.link.mqtt import LinkError, MqttClient
from edge.protocol import topics

# MQTT 5 CONNECT: protocol "MQTT", level 5, clean start, keepalive 10 s, no properties, client id "x".
CONNECT = bytes([0x10, 14, 0, 4]) + b"MQTT" + bytes([5, 0x02, 0, 10, 0, 0, 1]) + b"x"
CONNACK = 0x20


def raw_connect(broker: Broker, cert: Path | None, key: Path | None) -> bytes:
    """TLS + MQTT CONNECT by hand, without our client: return the broker's first bytes (b"" when refused)."""
    context = ssl.create_default_context(cafile=str(broker.fleet.certs / "ca.crt"))
    if cert is not None and key is not None:
        context.load_cert_chain(str(cert), str(key))
    try:
        with (
            socket.create_connection(("127.0.0.1", broker.local.port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            tls.sendall(CONNECT)
            return tls.recv(5)
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        return b""


def test_client_without_certificate_is_refused(broker: Broker) -> None:
    certs = broker.fleet.certs
    assert raw_connect(broker, certs / "device-a.crt", certs / "device-a.key")[0] == CONNACK  # control
    assert raw_connect(broker, None, None) == b""


@pytest.mark.parametrize(
    ("folder", "reason"), [("other_ca_certs", "UNKNOWN_CA"), ("expired_certs", "CERTIFICATE_EXPIRED")]
)
def test_certificate_from_another_ca_or_expired_is_refused(broker: Broker, folder: str, reason: str) -> None:
    certs = getattr(broker.fleet, folder)
    assert raw_connect(broker, certs / "device-a.crt", certs / "device-a.key") == b""
    client = MqttClient(broker.config("device-a", certs))
    client.start()
    try:
        with pytest.raises(LinkError, match=reason):
            client.wait_connected(0.5)
    finally:
        client.stop()


def test_device_is_confined_to_its_own_topics(broker: Broker) -> None:
    inbox_a, inbox_hq = Collector(), Collector()
    hq = connect(broker, "hq-publisher")
    ingest = connect(broker, "hq-ingest", inbox_hq)
    ops = connect(broker, "hq-pairing")
    a = connect(broker, "device-a", inbox_a)
    b = connect(broker, "device-b")
    unlisted = connect(broker, "device-unlisted")
    try:
        # Retained watchlists for B, for B's fleet, and (control) for A.
        for prefix in (topics.device_bundle("b"), topics.fleet_bundle("south"), topics.device_bundle("a")):
            assert hq.publish_wait(f"{prefix}/manifest", prefix.encode(), True, 5).ok
        ingest.subscribe([topics.any_device("events/match")])
        a.subscribe([f"{topics.commands('b')}/#", f"{topics.device_bundle('b')}/#", f"{topics.fleet_bundle('south')}/#",
                     topics.any_device("events/match"), "edge/v1/#", "#", f"{topics.device_bundle('a')}/#",
                     f"{topics.commands('a')}/#"])
        ingest.wait_subscribed(5)
        a.wait_subscribed(5)
        assert inbox_a.wait_for(f"{topics.device_bundle('a')}/manifest")
        # What B sends and what HQ sends B must not reach A, whatever A subscribed to.
        assert b.publish_wait(topics.match_events("b"), b"b-event", False, 5).ok
        assert ops.publish_wait(f"{topics.commands('b')}/x", b"for-b", False, 5).ok
        # A may not publish as B, and a certificate that is not in the registry may not publish at all.
        refused = a.publish_wait(topics.match_events("b"), b"a-as-b", False, 5)
        assert not refused.ok and refused.reason == "Not authorized"
        assert not unlisted.publish_wait(topics.match_events("unlisted"), b"x", False, 5).ok
        # Control: A does receive its own commands, sent last.
        assert ops.publish_wait(f"{topics.commands('a')}/x", b"for-a", False, 5).ok
        assert inbox_a.wait_for(f"{topics.commands('a')}/x")
        assert inbox_hq.wait_for(topics.match_events("b"))
        assert inbox_a.topics() == {f"{topics.device_bundle('a')}/manifest", f"{topics.commands('a')}/x"}
        assert [m.payload for m in inbox_hq.messages] == [b"b-event"]
    finally:
        for client in (hq, ingest, ops, a, b, unlisted):
            client.stop()


def test_pairing_confines_alerts_and_decisions_and_takes_effect_on_reload(broker: Broker) -> None:
    """h1 is paired with device a, h2 with device b (link_helpers.Fleet.registry)."""
    at_h1, at_a = Collector(), Collector()
    hq = connect(broker, "hq-pairing")
    h1, h2 = connect(broker, "handheld-h1", at_h1), connect(broker, "handheld-h2")
    a, b = connect(broker, "device-a", at_a), connect(broker, "device-b")
    try:
        for topic in (topics.device_pairing("a"), topics.device_pairing("b"), topics.handheld_pairing("h1"),
                      topics.handheld_pairing("h2")):
            assert hq.publish_wait(topic, topic.encode(), True, 5).ok  # only HQ writes pairing records
        for device in (a, b):
            assert device.publish_wait(topics.status(device.identity.id), b"online", True, 5).ok
        h1.subscribe([topics.handheld_inbox_filter("h1"), topics.handheld_pairing("h1"), topics.status("a"),
                      topics.status("b"), topics.match_events("a"), topics.handheld_inbox_filter("h2"),
                      topics.adjudications("h2"), topics.handheld_pairing("h2")])
        a.subscribe([topics.all_adjudications(), topics.device_pairing("a"), topics.device_pairing("b"),
                     topics.handheld_inbox_filter("h1")])
        h1.wait_subscribed(5)
        a.wait_subscribed(5)
        # The handheld never reads match events (they may carry the crop its sealed alert keeps encrypted).
        assert a.publish_wait(topics.match_events("a"), b"event", False, 5).ok
        # A device writes only to paired handhelds' inboxes, and only under its own id.
        assert not a.publish_wait(topics.handheld_inbox("h1", "b"), b"a-as-b", False, 5).ok
        assert not a.publish_wait(topics.handheld_inbox("h2", "a"), b"unpaired", False, 5).ok
        assert b.publish_wait(topics.handheld_inbox("h2", "b"), b"for-h2", False, 5).ok
        # A handheld writes only its own decisions: not another's, not its pairing record, not an inbox.
        for topic in (topics.adjudications("h2"), topics.handheld_pairing("h1"), topics.handheld_inbox("h1", "a")):
            refused = h1.publish_wait(topic, b"forged", False, 5)
            assert not refused.ok and refused.reason == "Not authorized", topic
        assert h2.publish_wait(topics.adjudications("h2"), b"h2-decision", False, 5).ok  # not for device a
        # Controls, sent last: what each may get.
        assert a.publish_wait(topics.handheld_inbox("h1", "a"), b"alert", False, 5).ok
        assert h1.publish_wait(topics.adjudications("h1"), b"h1-decision", False, 5).ok
        assert at_h1.wait_for(topics.handheld_inbox("h1", "a")) and at_a.wait_for(topics.adjudications("h1"))
        assert at_h1.topics() == {topics.handheld_pairing("h1"), topics.status("a"), topics.handheld_inbox("h1", "a")}
        assert at_a.topics() == {topics.device_pairing("a"), topics.adjudications("h1")}

        broker.registry.pair("h1", "b")
        broker.update_acl()
        assert b.publish_wait(topics.handheld_inbox("h1", "b"), b"b-alert", False, 5).ok
        assert b.publish_wait(topics.status("b"), b"still online", True, 5).ok
        assert at_h1.wait_for(topics.status("b"))
        assert [m.payload for m in at_h1.messages if m.topic == topics.status("b")] == [b"still online"]
    finally:
        for client in (hq, h1, h2, a, b):
            client.stop()


def test_each_hq_client_has_only_its_role_s_rights(broker: Broker) -> None:
    """The ingest workers only read; the pairing tool writes pairing records and commands, never a watchlist;
    the publisher writes watchlists, never a pairing record. A compromised one cannot do another's job."""
    clients = {name: connect(broker, f"hq-{name}") for name in ("ingest", "pairing", "publisher")}
    bundles = (f"{topics.device_bundle('a')}/manifest", f"{topics.fleet_bundle('north')}/chunk/0")
    pairing = (topics.device_pairing("a"), topics.handheld_pairing("h1"), f"{topics.commands('a')}/x")
    device_own = (topics.match_events("a"), topics.audit("a"), topics.status("a"), topics.adjudications("h1"))
    allowed = {"ingest": set(), "pairing": set(pairing), "publisher": set(bundles)}
    try:
        for name, client in clients.items():
            for topic in (*bundles, *pairing, *device_own):
                ack = client.publish_wait(topic, b"", False, 5)  # empty, not retained: changes nothing if let in
                assert ack.ok == (topic in allowed[name]), (name, topic, ack.reason)
                if not ack.ok:
                    assert ack.reason == "Not authorized"
    finally:
        for client in clients.values():
            client.stop()
