"""Device side of the link: durable outbox + publisher thread up, retained watchlist bundles down.

The daemon calls `send_match` / `send_audit` / `send_watchlist_state`; each returns once the message is
committed to the outbox, so from then on nothing short of losing the disk loses it. A publisher thread
signs each message (setting `sent_at`), publishes it at QoS 1 with a bounded window of unacknowledged
messages, and deletes it from the outbox only on a successful PUBACK; a refused PUBACK (e.g. ACL) keeps
it and retries later. Bundles published by HQ arrive reassembled on a delivery thread via `on_bundle`.
Status is retained on `devices/<id>/status`; the broker's will turns it to offline when the device vanishes.
"""

import hashlib
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import JsonValue

from edge.config.link import LinkConfig
from edge.link import topics
from edge.link.chunks import Reassembler
from edge.link.messages import (
    AuditEnvelope,
    DeviceStatus,
    MatchEvent,
    WatchlistRef,
    WatchlistState,
    encode,
    iso,
    new_event_id,
    sign,
    utc_now,
)
from edge.link.mqtt import Ack, Incoming, LinkError, MqttClient, Will, read_identity
from edge.link.outbox import Outbox

log = logging.getLogger(__name__)

_SIGNATURE_ROOM = 200  # signature and sent_at are added at publish time


@dataclass(frozen=True)
class Bundle:
    """A watchlist bundle as HQ published it: `source` is "fleet:<name>" or "device:<id>"."""

    source: str
    sha256: str
    data: bytes


def load_signing_key(key: Ed25519PrivateKey | Path) -> Ed25519PrivateKey:
    if isinstance(key, Ed25519PrivateKey):
        return key
    try:
        loaded = serialization.load_pem_private_key(key.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise LinkError(f"cannot read device signing key {key}: {exc}") from exc
    if not isinstance(loaded, Ed25519PrivateKey):
        raise LinkError(f"device signing key {key} is not an Ed25519 private key")
    return loaded


class Uplink:
    """One device's connection to the fleet broker. Thread-safe; start() once, stop() once."""

    def __init__(
        self,
        config: LinkConfig,
        signing_key: Ed25519PrivateKey | Path,
        fleet: str | None = None,
        on_bundle: Callable[[Bundle], None] | None = None,
        software: str = "",
    ) -> None:
        identity = read_identity(config.cert)
        if identity.role != "device":
            raise LinkError(f"certificate {config.cert} is for {identity.name}, not a device-<id> identity")
        self.config = config
        self.device_id = identity.id
        self._key = load_signing_key(signing_key)
        self._outbox = Outbox(config.outbox, config.outbox_sync)
        self._on_bundle = on_bundle
        self._status_lock = threading.Lock()
        self._status = DeviceStatus(device=self.device_id, online=True, reason="running", software=software)
        self._prefixes = {topics.device_bundle(self.device_id): f"device:{self.device_id}"}
        if fleet is not None:
            self._prefixes[topics.fleet_bundle(fleet)] = f"fleet:{fleet}"
        self._reassembler = Reassembler()
        self._bundles: queue.Queue[Bundle | None] = queue.Queue()
        self._acks: queue.SimpleQueue[tuple[int, Ack]] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._inflight: set[int] = set()
        self._retry: dict[int, float] = {}
        self._cursor = 0
        will = DeviceStatus(device=self.device_id, online=False, reason="connection lost", software=software)
        self._client = MqttClient(
            config,
            will=Will(topics.status(self.device_id), encode(will.body())),
            on_message=self._handle_message,
            on_connect=self._publish_status,
        )
        self._threads = [threading.Thread(target=self._publisher, name="edge-uplink-publisher", daemon=True)]
        if on_bundle is not None:
            self._threads.append(threading.Thread(target=self._deliverer, name="edge-uplink-bundles", daemon=True))

    # --- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background (reconnecting with back-off) and start publishing the outbox."""
        if self._on_bundle is not None:
            self._client.subscribe([f"{prefix}/#" for prefix in self._prefixes])
        self._client.start()
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Say offline (retained), stop the threads and disconnect. Unacknowledged messages stay in the outbox."""
        if self._client.connected:
            with self._status_lock:
                self._status = self._status.model_copy(update={"online": False, "reason": "stopped"})
            try:
                self._client.publish_wait(topics.status(self.device_id), self._status_payload(), True, timeout)
            except LinkError as exc:
                log.warning("could not publish offline status: %s", exc)
        self._stopping.set()
        self._wake.set()
        self._bundles.put(None)
        for thread in self._threads:
            thread.join(timeout)
        self._client.stop()
        self._outbox.close()

    @property
    def connected(self) -> bool:
        return self._client.connected

    def wait_connected(self, timeout: float) -> None:
        self._client.wait_connected(timeout)

    @property
    def pending(self) -> int:
        """Messages in the outbox not yet acknowledged by the broker."""
        return len(self._outbox)

    def wait_drained(self, timeout: float) -> bool:
        """True once the outbox is empty (every message acknowledged), False after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while self.pending:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    # --- what the daemon sends ------------------------------------------------------------------------

    def send_match(self, event: MatchEvent) -> None:
        """Queue a match event durably. A probe crop that would make it too large for the broker is dropped."""
        body = self._own(event).body()
        if len(encode(body)) + _SIGNATURE_ROOM > self.config.max_message_bytes and event.probe_crop is not None:
            log.warning("match event %s too large with its probe crop; sending it without", event.event_id)
            body = event.model_copy(update={"probe_crop": None}).body()
        self._put(topics.match_events(self.device_id), body)

    def send_audit(self, record: Mapping[str, JsonValue]) -> str:
        """Queue one audit record (a JSON object defined by edge.audit) durably; return its envelope's event id."""
        envelope = AuditEnvelope(event_id=new_event_id(), device=self.device_id, record=dict(record))
        self._put(topics.audit(self.device_id), envelope.body())
        return envelope.event_id

    def send_watchlist_state(self, state: WatchlistState) -> None:
        """Queue what the device did with an offered watchlist (installed, refused and why, unchanged)."""
        self._put(topics.watchlist_state(self.device_id), self._own(state).body())

    def set_status(
        self, watchlist: WatchlistRef | None = None, counters: Mapping[str, int] | None = None, reason: str = "running"
    ) -> None:
        """Update the retained online status (current watchlist, counters such as faces seen/discarded)."""
        update: dict[str, Any] = {"online": True, "reason": reason}
        if watchlist is not None:
            update["watchlist"] = watchlist
        if counters is not None:
            update["counters"] = dict(counters)
        with self._status_lock:
            self._status = self._status.model_copy(update=update)
        self._publish_status()

    # --- internals ------------------------------------------------------------------------------------

    def _own(self, message: MatchEvent | WatchlistState) -> MatchEvent | WatchlistState:
        if message.device != self.device_id:
            raise ValueError(f"message names device {message.device!r} but this uplink is device {self.device_id!r}")
        return message

    def _put(self, topic: str, body: dict[str, Any]) -> None:
        data = encode(body)
        if len(data) + _SIGNATURE_ROOM > self.config.max_message_bytes:
            raise LinkError(
                f"{body.get('schema')} message of {len(data)} bytes exceeds link.max_message_bytes "
                f"({self.config.max_message_bytes}); it was not queued"
            )
        self._outbox.put(topic, data)
        self._wake.set()

    def _status_payload(self) -> bytes:
        with self._status_lock:
            status = self._status.model_copy(update={"at": utc_now()})
        return encode(status.body())

    def _publish_status(self) -> None:
        try:
            self._client.publish(topics.status(self.device_id), self._status_payload(), retain=True)
        except LinkError as exc:
            log.warning("could not publish status: %s", exc)

    def _publisher(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            try:
                self._settle_acks()
                if self._client.connected:
                    self._send_more()
            except Exception:
                log.exception("outbox publisher error; retrying in 1 s")
                self._stopping.wait(1.0)

    def _settle_acks(self) -> None:
        done: list[int] = []
        while True:
            try:
                entry_id, ack = self._acks.get_nowait()
            except queue.Empty:
                break
            self._inflight.discard(entry_id)
            if ack.ok:
                done.append(entry_id)
            else:
                log.error("broker refused outbox message %d (%s); keeping it, retry in %d s",
                          entry_id, ack.reason, self.config.reconnect_max_s)
                self._retry[entry_id] = time.monotonic() + self.config.reconnect_max_s
        self._outbox.remove(done)

    def _send_more(self) -> None:
        free = self.config.inflight - len(self._inflight)
        now = time.monotonic()
        due = [i for i, when in self._retry.items() if when <= now][:free]
        for entry_id in due:
            del self._retry[entry_id]
        entries = self._outbox.get(due)
        if free - len(entries) > 0:
            fresh = self._outbox.after(self._cursor, free - len(entries))
            if fresh:
                self._cursor = fresh[-1].id
            entries += fresh
        for entry in entries:
            body = json.loads(entry.body)
            body["sent_at"] = iso(utc_now())
            self._inflight.add(entry.id)
            self._client.publish(entry.topic, encode(sign(body, self._key)), on_ack=self._acked(entry.id))

    def _acked(self, entry_id: int) -> Callable[[Ack], None]:
        def on_ack(ack: Ack) -> None:
            self._acks.put((entry_id, ack))
            self._wake.set()

        return on_ack

    def _handle_message(self, message: Incoming) -> None:
        topic = message.topic
        for prefix, source in self._prefixes.items():
            if topic.startswith(prefix + "/"):
                kind = topic[len(prefix) + 1 :].split("/", 1)[0]
                data = self._reassembler.feed(prefix, kind, message.payload)
                if data is not None:
                    bundle = Bundle(source, hashlib.sha256(data).hexdigest(), data)
                    log.info("watchlist bundle from %s complete: %d bytes, sha256 %s", source, len(data), bundle.sha256)
                    self._bundles.put(bundle)
                return
        log.warning("ignored message on unexpected topic %s", topic)

    def _deliverer(self) -> None:
        assert self._on_bundle is not None
        while (bundle := self._bundles.get()) is not None:
            try:
                self._on_bundle(bundle)
            except Exception:
                log.exception("watchlist bundle handler failed for %s %s", bundle.source, bundle.sha256)
