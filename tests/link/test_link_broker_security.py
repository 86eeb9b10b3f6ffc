"""The broker, with the deploy config and the generated ACL, is what confines each client (not our client code)."""

import socket
import ssl
from pathlib import Path

import pytest
from link_helpers import Broker, Inbox, connect

from edge.link import topics
from edge.link.mqtt import LinkError, MqttClient

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
    inbox_a, inbox_hq = Inbox(), Inbox()
    hq = connect(broker, "hq-publisher", inbox_hq)
    a = connect(broker, "device-a", inbox_a)
    b = connect(broker, "device-b")
    unlisted = connect(broker, "device-unlisted")
    try:
        # Retained watchlists for B, for B's fleet, and (control) for A.
        for prefix in (topics.device_bundle("b"), topics.fleet_bundle("south"), topics.device_bundle("a")):
            assert hq.publish_wait(f"{prefix}/manifest", prefix.encode(), True, 5).ok
        hq.subscribe([topics.any_device("events/match")])
        a.subscribe([f"{topics.commands('b')}/#", f"{topics.device_bundle('b')}/#", f"{topics.fleet_bundle('south')}/#",
                     topics.any_device("events/match"), "edge/v1/#", "#", f"{topics.device_bundle('a')}/#",
                     f"{topics.commands('a')}/#"])
        hq.wait_subscribed(5)
        a.wait_subscribed(5)
        assert inbox_a.wait_for(f"{topics.device_bundle('a')}/manifest")
        # What B sends and what HQ sends B must not reach A, whatever A subscribed to.
        assert b.publish_wait(topics.match_events("b"), b"b-event", False, 5).ok
        assert hq.publish_wait(f"{topics.commands('b')}/x", b"for-b", False, 5).ok
        # A may not publish as B, and a certificate that is not in the registry may not publish at all.
        refused = a.publish_wait(topics.match_events("b"), b"a-as-b", False, 5)
        assert not refused.ok and refused.reason == "Not authorized"
        assert not unlisted.publish_wait(topics.match_events("unlisted"), b"x", False, 5).ok
        # Control: A does receive its own commands, sent last.
        assert hq.publish_wait(f"{topics.commands('a')}/x", b"for-a", False, 5).ok
        assert inbox_a.wait_for(f"{topics.commands('a')}/x")
        assert inbox_hq.wait_for(topics.match_events("b"))
        assert inbox_a.topics() == {f"{topics.device_bundle('a')}/manifest", f"{topics.commands('a')}/x"}
        assert [m.payload for m in inbox_hq.messages] == [b"b-event"]
    finally:
        for client in (hq, a, b, unlisted):
            client.stop()


def test_handheld_reads_only_paired_devices_and_pairing_takes_effect_on_reload(broker: Broker) -> None:
    inbox = Inbox()
    handheld = connect(broker, "handheld-h1", inbox)
    a = connect(broker, "device-a")
    b = connect(broker, "device-b")
    try:
        handheld.subscribe([topics.match_events("a"), topics.match_events("b"), topics.status("b")])
        handheld.wait_subscribed(5)
        assert b.publish_wait(topics.match_events("b"), b"b-1", False, 5).ok
        assert a.publish_wait(topics.match_events("a"), b"a-1", False, 5).ok
        assert inbox.wait_for(topics.match_events("a"))
        assert inbox.topics() == {topics.match_events("a")}

        broker.registry.pair("h1", "b")
        broker.update_acl()
        assert b.publish_wait(topics.match_events("b"), b"b-2", False, 5).ok
        assert inbox.wait_for(topics.match_events("b"))
        assert [m.payload for m in inbox.messages if m.topic == topics.match_events("b")] == [b"b-2"]
    finally:
        for client in (handheld, a, b):
            client.stop()
