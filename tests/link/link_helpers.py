"""Shared pieces of the link tests: the throwaway fleet's identities, a broker handle, connecting a client."""

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from mqtt_collector import Collector

from edge.config.link import LinkConfig
from edge.hq.acl import Registry, write_acl
from edge.hq.broker import LocalBroker
from edge.link.mqtt import MqttClient
from edge.protocol.topics import Identity

IDENTITIES = [
    Identity("device", "a"),
    Identity("device", "b"),
    Identity("device", "unlisted"),  # valid certificate, deliberately not in the registry
    Identity("handheld", "h1"),
    Identity("handheld", "h2"),
    Identity("hq", "ingest"),
    Identity("hq", "publisher"),
]
FLEETS = {"a": "north", "b": "south"}


@dataclass(frozen=True)
class Fleet:
    root: Path
    ca: Path  # folder with ca.crt/ca.key/broker.*
    certs: Path  # client certificates of IDENTITIES
    other_ca_certs: Path  # device-a certificate from another CA
    expired_certs: Path  # device-a certificate that expired yesterday
    device_keys: Path  # <device>.pub for HQ
    signing: dict[str, Path]  # device -> Ed25519 private key PEM

    def registry(self) -> Registry:
        registry = Registry()
        for identity in IDENTITIES:
            if identity.id != "unlisted":
                registry.add(identity, FLEETS.get(identity.id) if identity.role == "device" else None)
        registry.pair("h1", "a")
        registry.pair("h2", "b")
        return registry

    def signing_key(self, device: str) -> Ed25519PrivateKey:
        key = serialization.load_pem_private_key(self.signing[device].read_bytes(), password=None)
        assert isinstance(key, Ed25519PrivateKey)
        return key


@dataclass
class Broker:
    local: LocalBroker
    fleet: Fleet
    acl: Path
    registry: Registry
    workdir: Path

    def config(self, name: str, certs: Path | None = None, **extra: object) -> LinkConfig:
        """LinkConfig for identity `name` (e.g. "device-a"); outbox in the test's folder; fast reconnects."""
        folder = certs or self.fleet.certs
        settings: dict[str, object] = {
            "host": "127.0.0.1", "port": self.local.port, "ca": self.fleet.certs / "ca.crt",
            "cert": folder / f"{name}.crt", "key": folder / f"{name}.key",
            "outbox": self.workdir / f"{name}.outbox.sqlite", "reconnect_min_s": 1, "reconnect_max_s": 2,
        }
        settings.update(extra)
        return LinkConfig.model_validate(settings)

    def update_acl(self) -> None:
        """Rewrite the ACL from `registry` and make the running broker re-read it."""
        write_acl(self.registry, self.acl)
        self.local.reload()


def connect(broker: Broker, name: str, inbox: Collector | None = None, certs: Path | None = None) -> MqttClient:
    client = MqttClient(broker.config(name, certs), on_message=inbox)
    client.start()
    client.wait_connected(5)
    return client


def wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `predicate` until it holds; fail the test naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.05)
