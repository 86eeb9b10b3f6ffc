"""HQ ingest: receive device records and officers' decisions from the broker, check them, store each once,
then acknowledge.

Subscriptions: by default plain persistent ones (`edge/v1/devices/+/events/match`, `…/audit`,
`…/watchlist/state`, `edge/v1/handhelds/+/adjudications`, and status). They live in the worker's broker
session, which survives a restart of single-node mosquitto, so what devices publish while the worker is away
waits for it. With `group`, workers share the stream through MQTT 5 shared subscriptions
(`$share/<group>/…`): run as many as needed, each with its own `hq-<id>` certificate. Clustered brokers
(EMQX, HiveMQ) keep shared subscriptions across restarts; mosquitto 2.0 forgets an offline client's shared
subscriptions when it restarts, and until the workers reconnect the broker answers device publishes with
PUBACK 0x10 "No matching subscribers" (the device uplink keeps those in its outbox and retries). Messages are
acknowledged (manual PUBACK) only after the batch holding them is committed, so a crash of the worker or its
store loses nothing; the broker redelivers and the store ignores ids it already has.

Checks of device records, in order: topic is a device topic; payload is JSON of a known schema matching the
topic; the `device` field equals the device in the topic (the broker's ACL guarantees who published on it);
the Ed25519 signature verifies against that device's public key. Decisions are checked by
`edge.protocol.adjudication.verify_adjudication` with the handheld's key, and count only if that handheld was
paired with the device at the decision's time (`edge.hq.pairings`: with `hq_public` the worker also stores the
HQ-signed pairing records from `devices/+/pairing`; without it every decision is refused). Anything failing
is stored in `rejected` with the reason and logged; it never stops the worker. A status that announces the
device's audit head is kept beside it (`EventStore.head`), and a head going backwards is recorded.
"""

import logging
import queue
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge.config.base import check_id
from edge.config.link import LinkConfig
from edge.hq.pairings import PairingHistory, pairing_event
from edge.hq.store import Batch, Event, EventStore, Head, Rejection, Status, StoreError
from edge.link.mqtt import Incoming, MqttClient
from edge.protocol import topics
from edge.protocol.adjudication import verify_adjudication
from edge.protocol.canonical import verify
from edge.protocol.messages import AuditEnvelope, DeviceStatus, MatchEvent, WatchlistState, decode, iso, utc_now
from edge.protocol.pairing import DevicePairing
from edge.protocol.refused import Refused

log = logging.getLogger(__name__)

_KINDS: dict[str, tuple[str, type[MatchEvent] | type[AuditEnvelope] | type[WatchlistState]]] = {
    "events/match": ("match", MatchEvent),
    "audit": ("audit", AuditEnvelope),
    "watchlist/state": ("watchlist_state", WatchlistState),
}


class PublicKeys:
    """Ed25519 public keys (PEM SubjectPublicKeyInfo) of devices and handhelds, from one folder laid out as
    provisioning writes it: `device-<id>/device_signing.pub` (`edge device provision`; `<device-id>.pub` also
    works) and `handheld-<id>/handheld_signing.pub` (`edge handheld provision`).

    Read on first use and re-read when the file changes or appears, so enrolling or rotating a key needs no
    restart; deleting the file revokes it.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._cache: dict[Path, tuple[float, Ed25519PublicKey]] = {}

    def device_paths(self, device: str) -> list[Path]:
        check_id(device, "device id")
        return [self.folder / f"{device}.pub", self.folder / f"device-{device}" / "device_signing.pub"]

    def handheld_paths(self, handheld: str) -> list[Path]:
        check_id(handheld, "handheld id")
        return [self.folder / f"handheld-{handheld}" / "handheld_signing.pub"]

    def device(self, device: str) -> Ed25519PublicKey | None:
        return self._first(self.device_paths(device))

    def handheld(self, handheld: str) -> Ed25519PublicKey | None:
        return self._first(self.handheld_paths(handheld))

    def _first(self, paths: list[Path]) -> Ed25519PublicKey | None:
        path = next((p for p in paths if p.is_file()), None)
        if path is None:
            for p in paths:
                self._cache.pop(p, None)
            return None
        mtime = path.stat().st_mtime
        cached = self._cache.get(path)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        try:
            key = serialization.load_pem_public_key(path.read_bytes())
        except (OSError, ValueError) as exc:
            log.error("public key %s is unreadable: %s", path, exc)
            return None
        if not isinstance(key, Ed25519PublicKey):
            log.error("public key %s is not an Ed25519 public key", path)
            return None
        self._cache[path] = (mtime, key)
        return key


@dataclass
class IngestStats:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0


class Ingest:
    """One ingest worker: an MQTT client feeding a writer thread that batches into the store."""

    def __init__(
        self, config: LinkConfig, store: EventStore, keys: PublicKeys, group: str | None = None, batch_size: int = 500,
        hq_public: Ed25519PublicKey | None = None,
    ) -> None:
        """`group`: share the stream with other workers through MQTT 5 shared subscriptions of this name;
        `hq_public`: the pinned HQ key that signs pairing records (without it no decision counts)."""
        self.store = store
        self.keys = keys
        self.hq_public = hq_public
        self._batch_pairings: list[DevicePairing] = []  # accepted in the batch being classified, not yet stored
        self.stats = IngestStats()
        self._batch_size = batch_size
        self._queue: queue.Queue[Incoming] = queue.Queue()
        self._stopping = threading.Event()
        self._client = MqttClient(config, on_message=self._queue.put, manual_ack=True)
        streams = [topics.any_device(suffix) for suffix in _KINDS] + [topics.all_adjudications()]
        if hq_public is not None:
            streams.append(topics.any_device("pairing"))
        self._client.subscribe([topics.shared(group, f) if group else f for f in streams]
                               + [topics.any_device("status")])
        self._writer = threading.Thread(target=self._write_loop, name="edge-hq-ingest", daemon=True)

    def start(self) -> None:
        self._writer.start()
        self._client.start()

    def wait_connected(self, timeout: float) -> None:
        self._client.wait_connected(timeout)
        self._client.wait_subscribed(timeout)

    def stop(self) -> None:
        """Store and acknowledge what has arrived, then disconnect."""
        self._stopping.set()
        self._writer.join()
        self._client.stop()

    def recheck(self, messages: list[Incoming]) -> Batch:
        """Run these messages through this worker's checks again, storing nothing (edge.hq.refused)."""
        return self._classify(messages)

    def _write_loop(self) -> None:
        pending: list[Incoming] = []
        while True:
            if not pending:
                try:
                    pending.append(self._queue.get(timeout=0.2))
                except queue.Empty:
                    if self._stopping.is_set():
                        return
                    continue
                while len(pending) < self._batch_size:
                    try:
                        pending.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
            batch = self._classify(pending)
            try:
                new = self.store.write(batch)
            except StoreError as exc:
                log.error("%s; retrying in 1 s (messages stay unacknowledged at the broker)", exc)
                if self._stopping.wait(1.0):
                    return
                continue
            self.stats.received += len(pending)
            self.stats.stored += new
            self.stats.duplicates += len(batch.events) - new
            self.stats.rejected += len(batch.rejections)
            for message in pending:
                self._client.ack(message)
            pending = []

    def _classify(self, messages: list[Incoming]) -> Batch:
        now = iso(utc_now())
        events: list[Event] = []
        rejections: list[Rejection] = []
        statuses: list[Status] = []
        self._batch_pairings = []
        for message in messages:
            try:
                result = self._check(message, now)
            except Refused as exc:
                log.warning("refused message on %s: %s", message.topic, exc)
                rejections.append(Rejection(now, message.topic, str(exc), message.payload))
                continue
            except Exception as exc:  # one hostile or broken message must never stop ingest for the fleet
                log.exception("refused message on %s: could not be checked", message.topic)
                rejections.append(Rejection(now, message.topic, f"could not be checked: {type(exc).__name__}",
                                            message.payload))
                continue
            if isinstance(result, Event):
                events.append(result)
                if result.kind == "pairing":
                    self._batch_pairings.append(DevicePairing.model_validate_json(result.payload))
            elif isinstance(result, Status):
                statuses.append(result)
        return Batch(events, rejections, statuses)

    def _check(self, message: Incoming, now: str) -> Event | Status | None:
        if (handheld := topics.parse_handheld_topic(message.topic)) is not None:
            return self._adjudication(handheld.owner, message, now)
        where = topics.parse_device_topic(message.topic)
        if where is None:
            raise Refused("wrong_topic", "not a device or handheld topic")
        device = where.owner
        if where.suffix == "status":
            if not message.payload:  # a cleared retained status
                return None
            _, status = decode(message.payload)
            if not isinstance(status, DeviceStatus) or status.device != device:
                raise Refused("wrong_topic", f"status topic of {device} carries something else")
            updated = iso(status.at) if status.at is not None else now
            head = None if status.audit_head is None else Head(status.audit_head.seq, status.audit_head.hash)
            return Status(device, status.online, updated, message.payload.decode("utf-8"), head)
        if where.suffix == "pairing" and self.hq_public is not None:
            return pairing_event(message.payload, device, self.hq_public, now)
        if where.suffix not in _KINDS:
            raise Refused("wrong_topic", f"unexpected device topic suffix {where.suffix!r}")
        kind, expected = _KINDS[where.suffix]
        raw, record = decode(message.payload)
        if not isinstance(record, expected):
            raise Refused("wrong_topic", f"{record.schema_} payload on a {kind} topic")
        if record.device != device:
            raise Refused("not_ours", f"payload names device {record.device!r} but was published by {device!r}")
        key = self.keys.device(device)
        if key is None:
            paths = " or ".join(map(str, self.keys.device_paths(device)))
            raise Refused("unknown_sender", f"no public key for device {device!r}: expected {paths}")
        if not verify(raw, key):
            raise Refused("bad_signature", f"signature does not verify with {device}'s key")
        if isinstance(record, MatchEvent):
            occurred = record.observed_at
        elif isinstance(record, WatchlistState):
            occurred = record.at
        else:
            occurred = record.sent_at or utc_now()
        return Event(record.event_id, kind, device, iso(occurred), now, message.payload.decode("utf-8"))

    def _adjudication(self, handheld: str, message: Incoming, now: str) -> Event:
        """An officer's decision: signed by the handheld whose topic it came on (the ACL confines each handheld)."""
        if message.topic != topics.adjudications(handheld):
            raise Refused("wrong_topic", "unexpected handheld topic")
        key = self.keys.handheld(handheld)
        if key is None:
            paths = " or ".join(map(str, self.keys.handheld_paths(handheld)))
            raise Refused("unknown_sender", f"no public key for handheld {handheld!r}: expected {paths}")
        try:
            decision = verify_adjudication(message.payload, {handheld: key}, topic=message.topic)
        except Refused as exc:
            raise Refused(exc.code, f"adjudication refused ({exc.code}): {exc}") from exc
        who = f"decision {decision.adjudication_id} on device {decision.device}'s alert"
        if self.hq_public is None:
            raise Refused("not_paired", f"{who}: ingest has no HQ public key to check pairing records with, so no "
                                        "decision can be counted; start it with --hq-pub hq_signing.pub")
        try:
            history = PairingHistory.of(self.store, decision.device, self._batch_pairings)
            history.check(handheld, decision.decided_at, who)
        except Refused as exc:
            raise Refused(exc.code, f"adjudication refused ({exc.code}): {exc}") from exc
        return Event(decision.adjudication_id, "adjudication", decision.device, iso(decision.decided_at), now,
                     message.payload.decode("utf-8"))
