"""Refused messages, checked again once HQ can accept them.

HQ keeps every message it refuses in the store's `rejected` table exactly as received, with the reason:
it acknowledged them to the broker, and the device then deleted them from its outbox, so HQ's copy is the
only one left. A refusal for a missing key (a device's public key not yet where `--device-keys` looks, a
handheld enrolled late) is HQ's own mistake, not the sender's: `edge hq ingest --retry-refused` runs each
kept message through the worker's checks again, oldest first; one that passes is stored as an event and
leaves `rejected` in the same transaction, one that fails again stays with its first reason.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from edge.hq.store import Batch, EventStore, Rejection
from edge.link.mqtt import Incoming

_PAGE = 16  # refusals read at once: each may be a whole MQTT packet (1 MiB with the shipped broker config)


@dataclass
class RetryResult:
    checked: int = 0
    accepted: int = 0
    still_refused: dict[str, int] = field(default_factory=dict)  # reason now -> how many

    def summary(self) -> str:
        kept = sum(self.still_refused.values())
        reasons = "; ".join(f"{n} x {reason}" for reason, n in sorted(self.still_refused.items()))
        return (f"{self.accepted} of {self.checked} refused message(s) now accepted"
                + (f"; {kept} still refused (kept, see `edge hq events --rejected`): {reasons}" if kept else ""))


def retry_refused(store: EventStore, check: Callable[[list[Incoming]], Batch]) -> RetryResult:
    """Check each kept refusal again with `check` (an ingest worker's `recheck`), one message at a time so each
    outcome is its own; accepted ones move to the events in one transaction each."""
    result, after = RetryResult(), 0
    while True:
        page = store.refused(after, _PAGE)
        if not page:
            return result
        for row_id, refusal in page:
            _retry_one(store, check, row_id, refusal, result)
        after = page[-1][0]
        del page, refusal  # before the next page is read: one page in memory at a time


def _retry_one(store: EventStore, check: Callable[[list[Incoming]], Batch], row_id: int, refusal: Rejection,
               result: RetryResult) -> None:
    result.checked += 1
    batch = check([Incoming(refusal.topic, refusal.payload, retain=False, mid=0, qos=1, generation=0)])
    if batch.rejections:
        reason = batch.rejections[0].reason
        result.still_refused[reason] = result.still_refused.get(reason, 0) + 1
        return
    store.accept_refused(row_id, batch)
    result.accepted += 1
