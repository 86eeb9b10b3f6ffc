"""The outbox publisher: drains the device's durable outbox to the broker, one thread.

Each message is signed as it leaves (with `sent_at`) and published at QoS 1 with a bounded window of
unacknowledged messages; it leaves the outbox only when the broker has taken it. A refused PUBACK (e.g. ACL)
keeps it and retries later, and so does PUBACK 0x10 "No matching subscribers" (nobody would get it, e.g. HQ's
shared subscription was forgotten by a broker restart, or the handheld never connected): the topic is then
held, its messages wait in the outbox, and one of them probes with back-off until someone takes it.
"""

import bisect
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.config.link import LinkConfig
from edge.link.mqtt import Ack, MqttClient
from edge.link.outbox import Outbox
from edge.protocol.canonical import encode, sign
from edge.protocol.messages import iso, utc_now

log = logging.getLogger(__name__)

NO_MATCHING_SUBSCRIBERS = 0x10  # MQTT 5 PUBACK reason: accepted, but no subscription matched


@dataclass
class _Hold:
    """A topic the broker had no subscriber for: its messages wait in the outbox (`parked`, oldest first)
    and one of them (`probe`) is sent each `delay` seconds until the broker has someone to give it to."""

    delay: float
    until: float
    parked: list[int] = field(default_factory=list)
    probe: int | None = None


class OutboxPublisher:
    """Publishes what is in `outbox` through `client`, signed with the device key; start() once, stop() once."""

    def __init__(self, config: LinkConfig, outbox: Outbox, client: MqttClient, key: Ed25519PrivateKey) -> None:
        self.config = config
        self._outbox = outbox
        self._client = client
        self._key = key
        self._acks: queue.SimpleQueue[tuple[int, str, Ack]] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._inflight: set[int] = set()
        self._retry: dict[int, float] = {}
        self._held: dict[str, _Hold] = {}
        self._cursor = 0
        self.held = 0  # outbox messages waiting for a subscriber to their topic, as of the last pass
        self._thread = threading.Thread(target=self._run, name="edge-uplink-publisher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Something new is in the outbox, or the connection came back: look now, not at the next tick."""
        self._wake.set()

    def stop(self, timeout: float) -> None:
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            try:
                self._settle_acks()
                if self._client.connected:
                    self._send_more()
                self.held = sum(len(h.parked) + (h.probe is not None) for h in self._held.values())
            except Exception:
                log.exception("outbox publisher error; retrying in 1 s")
                self._stopping.wait(1.0)

    def _settle_acks(self) -> None:
        done: list[int] = []
        while True:
            try:
                entry_id, topic, ack = self._acks.get_nowait()
            except queue.Empty:
                break
            self._inflight.discard(entry_id)
            hold = self._held.get(topic)
            probe = hold is not None and hold.probe == entry_id
            if hold is not None and probe:
                hold.probe = None
            if ack.code == NO_MATCHING_SUBSCRIBERS:
                self._park(entry_id, topic, probe)
            elif ack.ok:
                done.append(entry_id)
                if hold is not None:
                    self._release(topic)
            else:
                log.error("broker refused outbox message %d (%s); keeping it, retry in %d s",
                          entry_id, ack.reason, self.config.reconnect_max_s)
                self._retry[entry_id] = time.monotonic() + self.config.reconnect_max_s
        self._outbox.remove(done)

    def _park(self, entry_id: int, topic: str, probe: bool) -> None:
        """Keep a message nobody subscribed to in the outbox; hold its topic and back off (logged once per hold)."""
        now = time.monotonic()
        hold = self._held.get(topic)
        if hold is None:
            hold = self._held[topic] = _Hold(self.config.reconnect_min_s, now + self.config.reconnect_min_s)
            log.warning("broker has no subscriber for %s yet (PUBACK 0x10): its messages stay in the outbox and "
                        "are retried with back-off up to %d s", topic, self.config.reconnect_max_s)
        elif probe:
            hold.delay = min(2 * hold.delay, self.config.reconnect_max_s)
            hold.until = now + hold.delay
        at = bisect.bisect_left(hold.parked, entry_id)
        if at == len(hold.parked) or hold.parked[at] != entry_id:
            hold.parked.insert(at, entry_id)

    def _release(self, topic: str) -> None:
        """Someone takes `topic` again: send what waited for it, oldest first."""
        hold = self._held.pop(topic)
        if hold.parked:
            log.info("broker has a subscriber for %s again: sending the %d message(s) held for it",
                     topic, len(hold.parked))
        now = time.monotonic()
        for entry_id in hold.parked:
            self._retry[entry_id] = now

    def _send_more(self) -> None:
        free = self.config.inflight - len(self._inflight)
        now = time.monotonic()
        wanted: list[int] = []
        for hold in self._held.values():
            if len(wanted) < free and hold.probe is None and hold.parked and hold.until <= now:
                hold.probe = hold.parked.pop(0)
                wanted.append(hold.probe)
        due = [i for i, when in self._retry.items() if when <= now][: free - len(wanted)]
        for entry_id in due:
            del self._retry[entry_id]
        entries = self._outbox.get(wanted + due)
        while len(entries) < free and (fresh := self._outbox.after(self._cursor, free - len(entries))):
            self._cursor = fresh[-1].id
            for entry in fresh:
                hold = self._held.get(entry.topic)
                if hold is None:
                    entries.append(entry)
                else:
                    bisect.insort(hold.parked, entry.id)
        for entry in entries:
            body = json.loads(entry.body)
            body["sent_at"] = iso(utc_now())
            self._inflight.add(entry.id)
            self._client.publish(entry.topic, encode(sign(body, self._key)), on_ack=self._acked(entry.id, entry.topic))

    def _acked(self, entry_id: int, topic: str) -> Callable[[Ack], None]:
        def on_ack(ack: Ack) -> None:
            self._acks.put((entry_id, topic, ack))
            self._wake.set()

        return on_ack
