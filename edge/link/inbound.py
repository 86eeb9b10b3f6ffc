"""What a client does with each message it receives: act on it or refuse it, and acknowledge it either way.

The broker holds at most `max_inflight_messages` unacknowledged messages per client and sends nothing more
until one is acknowledged, so a message left unacknowledged because it could not be handled is a slot lost
until the next reconnect, and a hundred of them stop every later watchlist, pairing record and decision. The
rule here: a message is acknowledged once it was acted on or refused (oversized, malformed, forged, or one
that made the handler fail); the refusal is counted by code and logged with its reason. Only a local,
transient failure to act (a full disk: an OSError or SQLite error, as such or as the cause of the handler's
error) holds the acknowledgement, so the broker delivers the message again after a reconnect, and that is
bounded: at most `max_held` messages of one connection are held, each at most `max_tries` times; past
either bound the message is acknowledged and dropped with a CRITICAL line saying what was lost.
"""

import collections
import hashlib
import logging
import sqlite3
import threading
from collections.abc import Callable
from typing import Literal

from edge.link.mqtt import Incoming
from edge.protocol.refused import Refused

log = logging.getLogger(__name__)

Outcome = Literal["acted", "refused", "held", "dropped"]
MAX_HELD = 10  # of the broker's 100 in-flight slots (deploy/mosquitto/mosquitto.conf), at most these are held
MAX_TRIES = 3  # deliveries of one message that may fail for want of disk before it is given up
_REMEMBERED = 1000  # messages whose failed tries are remembered (oldest forgotten first)


def local_failure(exc: BaseException) -> bool:
    """Whether `exc` is, or was caused by, a failure of this machine (disk, database), not of the message."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError | sqlite3.Error):
            return True
        seen = seen.__cause__
    return False


class InboundGate:
    """Runs a client's handler on each message and acknowledges it by the rule above. Thread-safe."""

    def __init__(self, ack: Callable[[Incoming], bool], max_bytes: int, max_held: int = MAX_HELD,
                 max_tries: int = MAX_TRIES, on_refused: Callable[[str], None] | None = None) -> None:
        """`ack`: the client's acknowledgement (MqttClient.ack); `max_bytes`: larger payloads are refused unread;
        `on_refused(code)`: told of each refusal (the device counts them into its audited minutes)."""
        self._ack = ack
        self._on_refused = on_refused
        self._max_bytes = max_bytes
        self._max_held = max_held
        self._max_tries = max_tries
        self._lock = threading.Lock()
        self._refused: collections.Counter[str] = collections.Counter()
        self._held: set[tuple[int, int]] = set()  # (connection generation, mid) of messages not acknowledged
        self._tries: collections.OrderedDict[str, int] = collections.OrderedDict()

    def refusals(self) -> dict[str, int]:
        """Messages refused so far, by reason code (for status and counters)."""
        with self._lock:
            return dict(self._refused)

    def handle(self, message: Incoming, what: str, act: Callable[[], None]) -> Outcome:
        """Run `act` on `message` (described as `what` in logs), then acknowledge it unless it is to be held."""
        try:
            if len(message.payload) > self._max_bytes:
                raise Refused("oversized", f"{len(message.payload)} bytes, over the {self._max_bytes} accepted")
            act()
        except Refused as exc:
            return self._refuse(message, what, exc.code, str(exc))
        except Exception as exc:
            if local_failure(exc):
                return self._hold(message, what, exc)
            log.exception("%s on %s could not be handled; refused and acknowledged", what, message.topic)
            return self._refuse(message, what, "error", f"{type(exc).__name__}: {exc}")
        self._settle(message)
        return "acted"

    def note_refusal(self, what: str, topic: str, code: str, why: str) -> None:
        """Count and log a refusal (also of a message acknowledged before it was handled, e.g. a bundle)."""
        self._count(code)
        log.warning("refused %s on %s (%s): %s", what, topic, code, why[:300])

    def _count(self, code: str) -> None:
        with self._lock:
            self._refused[code] += 1
        if self._on_refused is not None:
            self._on_refused(code)

    def _refuse(self, message: Incoming, what: str, code: str, why: str) -> Outcome:
        self.note_refusal(what, message.topic, code, why)
        self._settle(message)
        return "refused"

    def _hold(self, message: Incoming, what: str, exc: Exception) -> Outcome:
        key = hashlib.sha256(message.topic.encode() + b"\0" + message.payload).hexdigest()
        with self._lock:
            self._held = {h for h in self._held if h[0] == message.generation}  # older ones come again anyway
            tries = self._tries.pop(key, 0) + 1
            hold = tries < self._max_tries and len(self._held) < self._max_held
            if hold:
                self._held.add((message.generation, message.mid))
                self._tries[key] = tries
                while len(self._tries) > _REMEMBERED:
                    self._tries.popitem(last=False)
        if hold:
            log.error("%s on %s not acted on: %s; held unacknowledged (try %d of %d), the broker delivers it again "
                      "after a reconnect", what, message.topic, exc, tries, self._max_tries)
            return "held"
        log.critical("%s on %s DROPPED: %s; %s: acknowledged so later messages still arrive. Fix the disk; the "
                     "sender must send it again", what, message.topic, exc,
                     f"it failed {tries} times" if tries >= self._max_tries else f"{self._max_held} messages are "
                     "already held")
        self._count("dropped_local_failure")
        self._settle(message)
        return "dropped"

    def _settle(self, message: Incoming) -> None:
        with self._lock:
            self._held.discard((message.generation, message.mid))
        self._ack(message)
