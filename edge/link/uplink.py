"""Device side of the link: durable outbox + publisher thread up; watchlist bundles, pairing records and
officers' decisions down.

The daemon calls `send_match` / `send_audit` / `send_watchlist_state` / `send_handheld_alert`; each returns
once the message is committed to the outbox, so from then on nothing short of losing the disk loses it; the
outbox publisher (edge.link.publisher) takes it from there. Retained bundles, the retained pairing record and
decisions arrive on one delivery thread that calls `on_bundle`, `on_pairing` and `on_adjudication` (never
paho's network thread). Every message is acknowledged once acted on or refused (edge.link.inbound: a handler's
exception refuses it; only a full disk holds it, bounded), so no message can jam the device. Status is retained on
`devices/<id>/status`; the broker's will turns it to offline when the device vanishes.
"""

import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import JsonValue

from edge.config.link import LinkConfig
from edge.config.watchlist import WatchlistConfig
from edge.link.chunks import Reassembler
from edge.link.inbound import InboundGate
from edge.link.mqtt import Incoming, LinkError, MqttClient, Will, read_identity
from edge.link.outbox import Outbox
from edge.link.publisher import OutboxPublisher
from edge.protocol import topics
from edge.protocol.alert import SealedAlert
from edge.protocol.canonical import encode
from edge.protocol.messages import (
    AuditEnvelope,
    AuditHead,
    DeviceStatus,
    MatchEvent,
    WatchlistRef,
    WatchlistState,
    new_event_id,
    utc_now,
)
from edge.protocol.refused import Refused
from edge.watchlist.timestamp import TIMESTAMP_LEVEL

log = logging.getLogger(__name__)

_SIGNATURE_ROOM = 200  # signature and sent_at are added at publish time


@dataclass(frozen=True)
class Bundle:
    """A watchlist bundle as HQ published it, in a spool file: `source` is "fleet:<name>" or "device:<id>".

    The file is the handler's to read until `on_bundle` returns; the link removes it then.
    """

    source: str
    sha256: str
    path: Path


@dataclass(frozen=True)
class _Inbound:
    """Work for the delivery thread: call `handler`, then acknowledge `message` (if any) to the broker."""

    what: str
    handler: Callable[[], None]
    message: Incoming | None = None


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
        on_pairing: Callable[[bytes], None] | None = None,
        on_adjudication: Callable[[str, bytes], None] | None = None,
        software: str = "",
        on_timestamp: Callable[[bytes], None] | None = None,
        max_bundle_bytes: int = WatchlistConfig().max_bundle_bytes,
        on_refused: Callable[[str], None] | None = None,
    ) -> None:
        """`on_bundle(bundle)`: a complete watchlist bundle, spooled in `config.bundle_spool`; `on_pairing(payload)`:
        the retained HQ-signed pairing record on `devices/<id>/pairing` (again on every reconnect);
        `on_adjudication(topic, payload)`: an officer's signed decision from a paired handheld. Verifying them is
        the caller's job. `on_timestamp(payload)`: HQ's retained freshness statement beside a bundle
        (`<bundle prefix>/timestamp`, edge.watchlist.timestamp). `max_bundle_bytes` (watchlist.max_bundle_mb)
        bounds what the spool takes in. `on_refused(code)`: told of each inbound message refused."""
        identity = read_identity(config.cert)
        if identity.role != "device":
            raise LinkError(f"certificate {config.cert} is for {identity.name}, not a device-<id> identity")
        self.config = config
        self.device_id = identity.id
        self._key = load_signing_key(signing_key)
        self._outbox = Outbox(config.outbox, config.outbox_sync)
        self._on_bundle = on_bundle
        self._on_pairing = on_pairing
        self._on_adjudication = on_adjudication
        self._on_timestamp = on_timestamp
        self._status_lock = threading.Lock()
        self._status = DeviceStatus(device=self.device_id, online=True, reason="running", software=software)
        self._prefixes = {topics.device_bundle(self.device_id): f"device:{self.device_id}"}
        if fleet is not None:
            self._prefixes[topics.fleet_bundle(fleet)] = f"fleet:{fleet}"
        spool = config.bundle_spool if config.bundle_spool.is_absolute() else config.outbox.parent / config.bundle_spool
        self._reassembler = Reassembler(spool, max_bundle_bytes) if on_bundle is not None else None
        self._deliveries: queue.Queue[_Inbound | None] = queue.Queue()
        will = DeviceStatus(device=self.device_id, online=False, reason="connection lost", software=software)
        self._client = MqttClient(
            config,
            will=Will(topics.status(self.device_id), encode(will.body())),
            on_message=self._handle_message,
            on_connect=self._publish_status,
            manual_ack=True,
        )
        self._gate = InboundGate(self._client.ack, config.max_message_bytes, on_refused=on_refused)
        self._publisher = OutboxPublisher(config, self._outbox, self._client, self._key)
        self._threads: list[threading.Thread] = []
        if on_bundle is not None or on_pairing is not None or on_adjudication is not None:
            self._threads.append(threading.Thread(target=self._deliverer, name="edge-uplink-delivery", daemon=True))

    # --- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background (reconnecting with back-off) and start publishing the outbox."""
        filters = [f"{prefix}/#" for prefix in self._prefixes] if self._on_bundle is not None else []
        if self._on_pairing is not None:
            filters.append(topics.device_pairing(self.device_id))
        if self._on_adjudication is not None:
            filters.append(topics.all_adjudications())
        self._client.subscribe(filters)
        self._client.start()
        self._publisher.start()
        for thread in self._threads:
            thread.start()

    def stop_inbound(self, timeout: float) -> bool:
        """Finish the message being handled and hand no more to the handlers; True once the delivery thread ended.

        What arrives from now on stays unacknowledged (a decision, a pairing record) or is retained (bundles,
        freshness statements): the broker delivers it again after the next start. The daemon calls this before
        it closes its audit log, so nothing is handled that could no longer be audited."""
        self._deliveries.put(None)
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout)
        return not any(thread.is_alive() for thread in self._threads)

    def stop(self, timeout: float = 5.0) -> None:
        """Say offline (retained), stop the threads and disconnect. Unacknowledged messages stay in the outbox."""
        if self._client.connected:
            with self._status_lock:
                self._status = self._status.model_copy(update={"online": False, "reason": "stopped"})
            try:
                self._client.publish_wait(topics.status(self.device_id), self._status_payload(), True, timeout)
            except LinkError as exc:
                log.warning("could not publish offline status: %s", exc)
        self._publisher.stop(timeout)
        self._deliveries.put(None)
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
        """Messages in the outbox the broker has not taken yet (held for want of a subscriber included)."""
        return len(self._outbox)

    def wait_drained(self, timeout: float) -> bool:
        """True once the broker took every message it has a subscriber for (those held for want of one, e.g.
        for a handheld that is offline, wait for the next start), False after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while self.pending > self._publisher.held:
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
        if (head := AuditHead.of(record)) is not None:  # announced in the status, outside the log file
            with self._status_lock:
                self._status = self._status.model_copy(update={"audit_head": head})
        self._put(topics.audit(self.device_id), envelope.body())
        return envelope.event_id

    def send_watchlist_state(self, state: WatchlistState) -> None:
        """Queue what the device did with an offered watchlist (installed, refused and why, unchanged)."""
        self._put(topics.watchlist_state(self.device_id), self._own(state).body())

    def send_handheld_alert(self, topic: str, envelope: dict[str, Any] | bytes) -> None:
        """Queue a sealed alert (`edge.sealed_alert/1`, from `DevicePairing.sealed_alerts`) for one paired
        handheld durably; the publisher adds `sent_at` and the device's outer signature, which the handheld
        verifies. `topic` must be that handheld's inbox for this device."""
        try:
            body = json.loads(envelope) if isinstance(envelope, bytes) else dict(envelope)
            sealed = SealedAlert.model_validate(body)
        except ValueError as exc:  # JSON, UTF-8 and pydantic validation errors all are
            raise ValueError(f"not an edge.sealed_alert/1 envelope: {exc}") from exc
        if sealed.device != self.device_id:
            raise ValueError(f"sealed alert names device {sealed.device!r} but this uplink is {self.device_id!r}")
        if topic != topics.handheld_inbox(sealed.handheld, self.device_id):
            raise ValueError(f"sealed alert for handheld {sealed.handheld} cannot go to {topic}; "
                             f"use {topics.handheld_inbox(sealed.handheld, self.device_id)}")
        self._put(topic, body)

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

    def set_runtime(self, runtime: str) -> None:
        """Which runtime each model runs on and why (e.g. ONNX Runtime because CUDA did not start): sent with
        the next status, so a Jetson running on its CPU is visible at HQ."""
        with self._status_lock:
            self._status = self._status.model_copy(update={"runtime": runtime[:512]})

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
        self._publisher.wake()

    def _status_payload(self) -> bytes:
        refused = {f"refused_{code}": count for code, count in self._gate.refusals().items()}
        with self._status_lock:
            status = self._status.model_copy(update={"at": utc_now(), "counters": {**self._status.counters, **refused}})
        return encode(status.body())

    def _publish_status(self) -> None:
        try:
            self._client.publish(topics.status(self.device_id), self._status_payload(), retain=True)
        except LinkError as exc:
            log.warning("could not publish status: %s", exc)

    @property
    def refusals(self) -> dict[str, int]:
        """Inbound messages refused so far, by reason code (also in the retained status as `refused_<code>`)."""
        return self._gate.refusals()

    def _handle_message(self, message: Incoming) -> None:
        """On paho's thread: hand the work to the delivery thread. Decisions and pairing records are acknowledged
        once handled (a crash before that gets them again); bundle chunks at once (retained, sent again anyway)."""
        topic = message.topic
        where = topics.parse_handheld_topic(topic)
        if self._on_pairing is not None and topic == topics.device_pairing(self.device_id):
            self._deliveries.put(_Inbound(f"pairing record on {topic}", partial(self._on_pairing, message.payload),
                                           message))
        elif self._on_adjudication is not None and where is not None and where.suffix == "adjudications":
            self._deliveries.put(_Inbound(f"decision on {topic}", partial(self._on_adjudication, topic,
                                                                           message.payload), message))
        else:
            self._gate.handle(message, "watchlist bundle piece", partial(self._feed_bundle, message))

    def _feed_bundle(self, message: Incoming) -> None:
        reassembler = self._reassembler
        for prefix, source in self._prefixes.items():
            if reassembler is not None and message.topic.startswith(prefix + "/"):
                kind = message.topic[len(prefix) + 1 :].split("/", 1)[0]
                if kind == TIMESTAMP_LEVEL:
                    if self._on_timestamp is not None and message.payload:
                        self._deliveries.put(_Inbound(f"freshness statement on {message.topic}",
                                                      partial(self._on_timestamp, message.payload)))
                    return
                spooled = reassembler.feed(prefix, kind, message.payload)
                if spooled is not None:
                    bundle = Bundle(source, spooled.sha256, spooled.path)
                    log.info("watchlist bundle from %s complete: %d bytes, sha256 %s", source, spooled.size,
                             bundle.sha256)
                    self._deliveries.put(_Inbound(f"watchlist bundle from {source} {bundle.sha256}",
                                                   partial(self._deliver_bundle, bundle)))
                return
        raise Refused("unexpected_topic", "no handler for this topic")

    def _deliver_bundle(self, bundle: Bundle) -> None:
        try:
            if self._on_bundle is not None:
                self._on_bundle(bundle)
        finally:
            bundle.path.unlink(missing_ok=True)

    def _deliverer(self) -> None:
        while (delivery := self._deliveries.get()) is not None:
            if delivery.message is not None:
                self._gate.handle(delivery.message, delivery.what, delivery.handler)
                continue
            try:
                delivery.handler()
            except Refused as exc:  # a bundle or freshness statement, acknowledged when it arrived
                self._gate.note_refusal(delivery.what, "", exc.code, str(exc))
            except Exception:  # the retained copy comes again on reconnect
                log.exception("handler failed for %s", delivery.what)
