"""The handheld's core: receive sealed alerts over MQTT, keep them, and publish officers' signed decisions.

Threads: paho's network thread calls `_on_message` (open, verify, store, notify); page requests call
`decide` and `snapshot`. Listeners (the page's event streams) get every change through a queue each.
Nothing here knows HTTP; edge.handheld.web serves it.
"""

import collections
import contextlib
import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from edge.config.handheld import HandheldConfig, Officer
from edge.config.link import LinkConfig
from edge.config.pin import PinHash
from edge.errors import EdgeError
from edge.handheld.inbox import Inbox, InboxError
from edge.handheld.pins import PinGuard
from edge.keys import load_encryption_private, load_signing_private, load_signing_public
from edge.link.inbound import InboundGate
from edge.link.mqtt import Ack, Incoming, LinkError, MqttClient, read_identity
from edge.protocol.adjudication import Adjudication, Decision, tally
from edge.protocol.alert import HandheldAlert, open_sealed
from edge.protocol.messages import iso, utc_now
from edge.protocol.pairing import HandheldPairing, load_record, read_record, save_record
from edge.protocol.pairing import payload as record_payload
from edge.protocol.refused import Refused
from edge.protocol.topics import adjudications, handheld_inbox_filter, handheld_pairing

log = logging.getLogger(__name__)

Event = tuple[str, dict[str, Any]]
_LINK_POLL_S = 0.25
_HELD_UNPAIRED = 200  # alerts kept in memory in case their device's pairing record arrives just after them


class DecisionError(EdgeError):
    """A decision the page asked for cannot be taken; `status` is the HTTP status the page gets."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Listeners:
    """Fan-out of page events: each listener (an open event stream) has its own queue; None means stop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: set[queue.Queue[Event | None]] = set()
        self._closed = False

    def add(self) -> "queue.Queue[Event | None]":
        q: queue.Queue[Event | None] = queue.Queue(maxsize=1000)
        with self._lock:
            if self._closed:
                q.put_nowait(None)
            else:
                self._queues.add(q)
        return q

    def close(self) -> None:
        """End every stream, now and any that opens later."""
        with self._lock:
            self._closed = True
        self.send(None)

    def remove(self, q: "queue.Queue[Event | None]") -> None:
        with self._lock:
            self._queues.discard(q)

    def send(self, event: Event | None) -> None:
        """Queue `event` for every listener (None: end the stream)."""
        with self._lock:
            targets = list(self._queues)
        for q in targets:
            try:
                q.put_nowait(event)
            except queue.Full:  # a stalled page: end its stream; it reconnects and starts from a snapshot
                self.remove(q)
                with contextlib.suppress(queue.Empty):
                    while True:
                        q.get_nowait()
                q.put_nowait(None)
                log.warning("page event stream stalled; closed it")


class HandheldApp:
    """One handheld: its keys, pairing, local store and broker connection."""

    def __init__(self, config: HandheldConfig, link: LinkConfig, clock: Callable[[], float] = time.time) -> None:
        identity = read_identity(link.cert)
        if (identity.role, identity.id) != ("handheld", config.id):
            raise EdgeError(f"certificate {link.cert} is for {identity.name}, but handheld.id is {config.id!r}: "
                            f"issue handheld-{config.id} with `edge hq pki issue` or fix the config")
        self.config = config
        self.required = 2 if config.two_officer_rule else 1
        self._clock = clock
        self._signing = load_signing_private(config.signing_key)
        self._encryption = load_encryption_private(config.encryption_key)
        self._hq_public = load_signing_public(config.hq_public_key)
        self._officers = {o.id: o for o in config.officers}
        self._pins = {o.id: PinHash.parse(o.pin) for o in config.officers if o.pin is not None}
        self._pin_guard = PinGuard()
        self._lock = threading.Lock()
        self._pairing = self._load_pairing()
        self._unpaired: collections.deque[bytes] = collections.deque(maxlen=_HELD_UNPAIRED)
        self._refused: collections.Counter[str] = collections.Counter()
        self._inflight: set[str] = set()
        self.listeners = Listeners()
        self.inbox = Inbox(config.state)
        self._purge()
        self._client = MqttClient(link, on_message=self._on_message, on_connect=self._send_unsent, manual_ack=True)
        self._client.subscribe([handheld_inbox_filter(config.id), handheld_pairing(config.id)])
        self._gate = InboundGate(self._client.ack, link.max_message_bytes)
        self._stopping = threading.Event()
        self._watcher = threading.Thread(target=self._watch_link, name="edge-handheld-link", daemon=True)

    # --- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background; reconnects by itself. Alerts queued at the broker arrive on connect."""
        self._client.start()
        self._watcher.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._watcher.is_alive():
            self._watcher.join()
        self.listeners.close()
        self._client.stop()
        self.inbox.close()

    @property
    def connected(self) -> bool:
        return self._client.connected

    def wait_connected(self, timeout: float) -> None:
        self._client.wait_connected(timeout)
        self._client.wait_subscribed(timeout)

    # --- what the page sees and does --------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything the page shows, newest alert first."""
        self._purge()
        return {"status": self.status(), "alerts": [self.view(a) for a in self.inbox.alerts()]}

    def status(self) -> dict[str, Any]:
        with self._lock:
            paired = [] if self._pairing is None else [d.id for d in self._pairing.devices]
            refused = dict(self._refused)
        for code, count in self._gate.refusals().items():
            refused[code] = refused.get(code, 0) + count
        return {
            "handheld": self.config.id,
            "connected": self._client.connected,
            "paired_devices": paired,
            "officers": [{"id": o.id, "name": o.name, "pin": o.pin is not None} for o in self.config.officers],
            "two_officer_rule": self.config.two_officer_rule,
            "refused": refused,
        }

    def view(self, alert: HandheldAlert) -> dict[str, Any]:
        decisions = self.inbox.decisions(alert.event_id)
        body = alert.body()
        del body["signature"]
        body["tally"] = tally([d.vote() for d, _ in decisions], self.required).model_dump()
        body["decisions"] = [
            {"officer_id": d.officer_id, "officer_name": d.officer_name, "decision": d.decision,
             "decided_at": iso(d.decided_at), "sent": sent}
            for d, sent in decisions
        ]
        # Grows with every change (a decision, an acknowledgement): the page ignores a view older than its own.
        body["revision"] = len(decisions) + sum(sent for _, sent in decisions)
        return body

    def decide(self, event_id: str, officer_id: str, decision: Decision, note: str = "",
               pin: str | None = None) -> dict[str, Any]:
        """Sign, keep and publish one officer's decision; returns the alert as the page now shows it.

        `pin` is required, and checked before anything is signed, when the officer has one.
        """
        alert = self.inbox.alert(event_id)
        if alert is None:
            raise DecisionError(404, f"no alert {event_id} on this handheld (expired or never received)")
        officer = self._officers.get(officer_id)
        if officer is None:
            raise DecisionError(400, f"officer {officer_id!r} is not configured on handheld {self.config.id}")
        self._check_pin(officer, pin, event_id)
        earlier = [d for d, _ in self.inbox.decisions(event_id) if d.officer_id == officer_id]
        if earlier and earlier[-1].decision == decision:
            raise DecisionError(409, f"{officer.name} already chose {decision} for this alert"
                                     + ("; a second officer must confirm" if decision == "confirm" and self.required > 1
                                        else ""))
        adjudication = Adjudication.create(alert, officer.id, officer.name, decision, note,
                                           confirmations_required=self.required, decided_at=utc_now())
        self.inbox.add_decision(adjudication, adjudication.signed(self._signing))
        log.info("officer %s: %s on alert %s (%s)", officer.id, decision, event_id, alert.label)
        view = self.view(alert)
        self.listeners.send(("alert", view))
        self._send_unsent()
        return view

    def _check_pin(self, officer: Officer, pin: str | None, event_id: str) -> None:
        """Refuse a decision without the officer's PIN; logs wrong tries and lockouts, never the PIN."""
        who = f"{officer.name} ({officer.id})"
        stored = self._pins.get(officer.id)
        if stored is None:
            if pin:
                raise DecisionError(400, f"{who} has no PIN on this handheld: send the decision without one")
            return
        if not pin:
            raise DecisionError(403, f"{who} has a PIN: enter it to decide as {officer.name}")
        verdict = self._pin_guard.check(officer.id, stored, pin)
        if verdict.ok:
            return
        wait = math.ceil(verdict.locked_s)
        if not verdict.checked:
            log.warning("decision as officer %s on alert %s refused unchecked: locked out for %d s more after wrong "
                        "PINs", officer.id, event_id, wait)
            raise DecisionError(429, f"too many wrong PINs for {who}: try again in {wait} s")
        if wait:
            log.warning("wrong PIN for officer %s on alert %s: too many in a row, locked out for %d s",
                        officer.id, event_id, wait)
            raise DecisionError(403, f"wrong PIN for {who}; too many wrong PINs: locked for {wait} s")
        log.warning("wrong PIN for officer %s on alert %s (%d more before a lockout)", officer.id, event_id,
                    verdict.tries_left)
        raise DecisionError(403, f"wrong PIN for {who}: {verdict.tries_left} more "
                                 f"{'try' if verdict.tries_left == 1 else 'tries'} before a lockout")

    # --- MQTT -----------------------------------------------------------------------------------------

    def _on_message(self, message: Incoming) -> None:
        """Acknowledged once acted on or refused (edge.link.inbound), so no message can stop later ones; only an
        alert the full store could not keep stays at the broker (bounded), which delivers it again on reconnect."""
        if message.topic == handheld_pairing(self.config.id):
            self._gate.handle(message, "pairing record", lambda: self._on_pairing(message.payload))
        elif message.topic.startswith(handheld_inbox_filter(self.config.id)[:-1]):
            self._gate.handle(message, "alert", lambda: self._on_alert(message.payload))
        else:
            self._gate.handle(message, "message", lambda: self._unexpected(message.topic))

    @staticmethod
    def _unexpected(topic: str) -> None:
        raise Refused("unexpected_topic", f"no handler for {topic}")

    def _on_alert(self, payload: bytes) -> None:
        with self._lock:
            keys = {} if self._pairing is None else self._pairing.device_keys()
        try:
            alert = open_sealed(payload, self._encryption, keys, self.config.id)
        except Refused as exc:
            if exc.code == "unpaired":
                self._unpaired.append(payload)
            log.warning("alert refused (%s): %s", exc.code, exc)
            with self._lock:
                self._refused[exc.code] += 1
            self.listeners.send(("status", self.status()))
            return
        if self.inbox.add_alert(alert, self._clock()):
            log.info("alert %s from %s: %s (score %.3f)", alert.event_id, alert.device, alert.label, alert.score)
            self.listeners.send(("alert", self.view(alert)))

    def _load_pairing(self) -> HandheldPairing | None:
        """The record saved last time; an unreadable one is set aside: the retained copy arrives on connect."""
        try:
            return load_record(self.config.pairing, HandheldPairing, self._hq_public, self.config.id)
        except Refused as exc:
            log.error("%s; starting unpaired until HQ's retained record arrives", exc)
            return None

    def _on_pairing(self, payload: bytes) -> None:
        with self._lock:
            current = self._pairing
        if current is not None and payload == record_payload(current):
            return  # the retained record in use, delivered again on every reconnect
        record = read_record(payload, HandheldPairing, self._hq_public, self.config.id, current)  # Refused: counted
        try:
            save_record(record, self.config.pairing)
        except OSError as exc:  # still used now; after a restart the broker's retained copy arrives again
            log.error("cannot save pairing record to %s: %s", self.config.pairing, exc.strerror)
        with self._lock:
            self._pairing = record
            held = list(self._unpaired)
            self._unpaired.clear()
            self._refused.pop("unpaired", None)  # the held ones are counted again if still unpaired
        log.info("paired devices now: %s", ", ".join(d.id for d in record.devices) or "none")
        for payload_held in held:
            try:
                self._on_alert(payload_held)
            except InboxError as exc:
                log.error("alert held until pairing is lost: %s", exc)
        self.listeners.send(("status", self.status()))

    def _send_unsent(self) -> None:
        """Publish every decision the broker has not acknowledged (on each decision and each reconnect)."""
        if not self._client.connected:
            return
        for adjudication_id, payload in self.inbox.unsent():
            with self._lock:
                if adjudication_id in self._inflight:
                    continue
                self._inflight.add(adjudication_id)
            try:
                self._client.publish(adjudications(self.config.id), payload, on_ack=self._acked(adjudication_id))
            except LinkError as exc:
                with self._lock:
                    self._inflight.discard(adjudication_id)
                log.warning("decision %s not sent yet: %s", adjudication_id, exc)

    def _acked(self, adjudication_id: str) -> Callable[[Ack], None]:
        def on_ack(ack: Ack) -> None:
            with self._lock:
                self._inflight.discard(adjudication_id)
            if not ack.ok:
                log.error("broker refused decision %s (%s); it stays unsent", adjudication_id, ack.reason)
                return
            event_id = self.inbox.mark_sent(adjudication_id)
            alert = None if event_id is None else self.inbox.alert(event_id)
            if alert is not None:
                self.listeners.send(("alert", self.view(alert)))

        return on_ack

    def _watch_link(self) -> None:
        """Tell the page when the broker connection drops or returns (the officer must know alerts may wait)."""
        shown = False
        while not self._stopping.wait(_LINK_POLL_S):
            if self._client.connected != shown:
                shown = not shown
                self.listeners.send(("status", self.status()))

    def _purge(self) -> None:
        removed = self.inbox.purge(self._clock() - self.config.retention_hours * 3600)
        if removed:
            log.info("deleted %d alert(s) older than %g h from the handheld", removed, self.config.retention_hours)
