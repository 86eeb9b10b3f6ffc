"""Stand-ins for the other ends of the handheld's link (a device, HQ) as real MQTT clients, and test images."""

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mqtt_collector import Collector

from edge.cli import main
from edge.config.handheld import HandheldFile
from edge.config.link import LinkConfig
from edge.handheld.app import HandheldApp
from edge.handheld.web import PageServer
from edge.hq.broker import LocalBroker
from edge.hq.ingest import Ingest, PublicKeys
from edge.hq.store import EventStore
from edge.keys import load_signing_private, load_signing_public
from edge.link.mqtt import Ack, Incoming, MqttClient
from edge.protocol.alert import HandheldAlert, seal
from edge.protocol.pairing import DevicePairing, read_record
from edge.protocol.topics import all_adjudications, device_pairing, handheld_inbox

PINS = {"4711": "24681357", "4712": "97531864"}  # the officers' PINs in the `fleet` fixture's handheld


@dataclass(frozen=True)
class FleetFiles:
    root: Path
    port: int
    hq_public: Path
    keys: Path  # provisioning folders device-<id>/, handheld-<id>/
    tls: Path  # client certificates of HQ and devices
    handheld_toml: Path
    registry: Path

    def link(self, name: str) -> LinkConfig:
        return LinkConfig(host="127.0.0.1", port=self.port, ca=self.tls / "ca.crt", cert=self.tls / f"{name}.crt",
                          key=self.tls / f"{name}.key", reconnect_min_s=1, reconnect_max_s=2)


class DeviceSim:
    """A device's MQTT client as a test instrument (acks, raw and forged payloads): reads its pairing record,
    seals alerts, hears decisions (the ACL passes only its paired handhelds'). The daemon's real side,
    edge.link.uplink.Uplink, is tested in test_handheld_flow."""

    def __init__(self, fleet: FleetFiles, device: str) -> None:
        self.fleet = fleet
        self.device = device
        self.key = load_signing_private(fleet.keys / f"device-{device}" / "device_signing.key")
        self.received = Collector()
        self.client = MqttClient(fleet.link(f"device-{device}"), on_message=self.received)
        self.client.subscribe([device_pairing(device), all_adjudications()])
        self.client.start()
        self.client.wait_connected(5)
        self.client.wait_subscribed(5)

    def pairing(self, handhelds: list[str] | None = None) -> DevicePairing:
        """The HQ-signed record (retained, or a later one listing exactly `handhelds`), verified."""
        hq = load_signing_public(self.fleet.hq_public)

        def wanted(m: Incoming) -> bool:
            if m.topic != device_pairing(self.device):
                return False
            ids = [h.id for h in read_record(m.payload, DevicePairing, hq, self.device).handhelds]
            return handhelds is None or ids == handhelds

        return read_record(self.received.wait(wanted).payload, DevicePairing, hq, self.device)

    def send(self, alert: HandheldAlert, pairing: DevicePairing) -> list[Ack]:
        """Seal `alert` to each paired handheld (a copy naming each) and publish it at QoS 1."""
        acks = []
        for peer in pairing.handhelds:
            copy = alert.model_copy(update={"handheld": peer.id})
            acks.append(self.client.publish_wait(handheld_inbox(peer.id, self.device), seal(copy, self.key,
                                                                                    peer.encryption_public()),
                                                 False, 5))
        return acks

    def publish_raw(self, topic: str, payload: bytes) -> Ack:
        return self.client.publish_wait(topic, payload, False, 5)

    def stop(self) -> None:
        self.client.stop()


@contextlib.contextmanager
def running_handheld(fleet: FleetFiles, state_dir: Path, port: int = 0,
                     **changes: Any) -> Iterator[tuple[HandheldApp, PageServer]]:
    """Handheld h1 in this process, with its store and pairing file in `state_dir`, connected and serving."""
    loaded = HandheldFile.load(fleet.handheld_toml)
    config = loaded.handheld.model_copy(update={"state": state_dir / "handheld.sqlite",
                                                "pairing": state_dir / "pairing.json", **changes})
    link = loaded.link.model_copy(update={"reconnect_min_s": 1, "reconnect_max_s": 2})
    app = HandheldApp(config, link)
    server = PageServer(app, "127.0.0.1", port)
    app.start()
    server.start()
    try:
        app.wait_connected(5)
        yield app, server
    finally:
        server.stop()
        app.stop()


@contextlib.contextmanager
def hq_ingest(fleet: FleetFiles, db: Path) -> Iterator[EventStore]:
    """`edge hq ingest --hq-pub` in this process (plain persistent subscriptions), storing into `db`; yields the
    store."""
    store = EventStore.open(str(db))
    ingest = Ingest(fleet.link("hq-ingest"), store, PublicKeys(fleet.keys),
                    hq_public=load_signing_public(fleet.hq_public))
    ingest.start()
    try:
        ingest.wait_connected(5)
        yield store
    finally:
        ingest.stop()
        store.close()


def edge(*argv: str | Path) -> None:
    """Run an `edge` command in-process, as a user would type it."""
    assert main([str(a) for a in argv]) == 0, f"edge {' '.join(map(str, argv))} failed"


def pair(fleet: FleetFiles, broker: LocalBroker, handheld: str, device: str, *extra: str) -> None:
    edge("hq", "pair", "--handheld", handheld, "--device", device, *extra, "--registry", fleet.registry,
         "--keys", fleet.keys, "--hq-key", fleet.root / "hq" / "hq_signing.key",
         "--broker-pid", broker.workdir / "mosquitto.pid", "--broker", f"127.0.0.1:{broker.port}",
         "--ca", fleet.tls / "ca.crt", "--cert", fleet.tls / "hq-ops.crt", "--key", fleet.tls / "hq-ops.key")


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return predicate()
        time.sleep(0.02)
    return True
