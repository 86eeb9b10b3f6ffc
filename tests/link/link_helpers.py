"""Shared pieces of the link tests: the throwaway fleet's identities, a broker handle, connecting a client."""

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from mqtt_collector import Collector

from edge.config.link import LinkConfig
from edge.demo.trial import TrialFleet
from edge.hq.acl import Registry, write_acl
from edge.hq.broker import LocalBroker
from edge.keys import load_signing_private
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
    Identity("hq", "pairing"),
]
FLEETS = {"a": "north", "b": "south"}
SIGNING = ("a", "b")  # devices provisioned with signing keys


@dataclass(frozen=True)
class Fleet:
    trial: TrialFleet  # CA in trial.pki, client certificates of IDENTITIES in trial.certs
    other_ca_certs: Path  # device-a certificate from another CA
    expired_certs: Path  # device-a certificate that expired yesterday

    @property
    def ca(self) -> Path:
        return self.trial.pki

    @property
    def certs(self) -> Path:
        return self.trial.certs

    @property
    def device_keys(self) -> Path:
        """Provisioning folders (`device-<id>/device_signing.pub`), as HQ ingest reads them."""
        return self.trial.keys

    @property
    def signing(self) -> dict[str, Path]:
        """device -> its Ed25519 private key (PEM)."""
        return {device: self.trial.device_dir(device) / "device_signing.key" for device in SIGNING}

    def registry(self) -> Registry:
        registry = Registry()
        for identity in IDENTITIES:
            if identity.id != "unlisted":
                registry.add(identity, FLEETS.get(identity.id) if identity.role == "device" else None)
        registry.pair("h1", "a")
        registry.pair("h2", "b")
        return registry

    def signing_key(self, device: str) -> Ed25519PrivateKey:
        return load_signing_private(self.signing[device])


@dataclass
class Broker:
    local: LocalBroker
    fleet: Fleet
    acl: Path
    registry: Registry
    workdir: Path

    def config(self, name: str, certs: Path | None = None, **extra: object) -> LinkConfig:
        """LinkConfig for identity `name` (e.g. "device-a"); outbox in the test's folder; fast reconnects."""
        settings: dict[str, object] = {"outbox": self.workdir / f"{name}.outbox.sqlite", "reconnect_min_s": 1,
                                       "reconnect_max_s": 2, **extra}
        return self.fleet.trial.link(name, self.local.port, certs, **settings)

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
