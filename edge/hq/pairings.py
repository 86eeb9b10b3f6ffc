"""Which handhelds were paired with a device when: HQ's history of the device pairing records it signed.

`edge hq pair` publishes each device's HQ-signed `edge.device_pairing/1` record retained on
`devices/<id>/pairing`; HQ ingest subscribes to that topic too, checks the HQ signature and stores every
record it sees (kind "pairing"). A decision counts only if its handheld was in the device's record in force
at the decision's time (the last one issued at or before it): a handheld that has a valid key but was never
paired with that device (or was unpaired before) cannot add, undo or outvote officers' decisions.

The decision's time is the handheld's own clock, as it signed it: a handheld that was once paired could
backdate a decision into its pairing (and so undo its officers' rejects after it was unpaired, e.g. once
stolen). So ingest also refuses a decision from a handheld that is no longer paired with the device when the
decision arrives (`paired_now`): once HQ holds the record that unpaired it, nothing it sends counts, whatever
date it carries. The cost: a decision taken while paired but delivered only after the unpairing is refused
too (kept with the refusals, for review).
"""

import datetime as dt
import hashlib
from collections.abc import Iterable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge.hq.store import Event, EventStore
from edge.protocol.messages import iso
from edge.protocol.pairing import DevicePairing, read_record
from edge.protocol.refused import Refused

KIND = "pairing"


def pairing_event(payload: bytes, device: str, hq_public: Ed25519PublicKey, received_at: str) -> Event:
    """A pairing record published for `device`, checked against the pinned HQ key, as a store event."""
    record = read_record(payload, DevicePairing, hq_public, device)
    return Event(hashlib.sha256(payload).hexdigest(), KIND, device, iso(record.issued_at), received_at,
                 payload.decode("utf-8"))


class PairingHistory:
    """A device's pairing records, oldest first."""

    def __init__(self, device: str, records: Iterable[DevicePairing]) -> None:
        self.device = device
        self.records = sorted((r for r in records if r.device == device), key=lambda r: r.issued_at)

    @classmethod
    def of(cls, store: EventStore, device: str, also: Iterable[DevicePairing] = ()) -> "PairingHistory":
        """The records HQ stored for `device` (each checked against the HQ key when it was ingested), and `also`
        (checked ones not stored yet)."""
        stored = [DevicePairing.model_validate_json(e.payload) for e in store.events(device=device, kind=KIND,
                                                                                     limit=None)]
        return cls(device, [*stored, *also])

    def paired(self, handheld: str, at: dt.datetime) -> bool:
        """Whether `handheld` was in the device's pairing record in force at `at`."""
        current = None
        for record in self.records:
            if record.issued_at > at:
                break
            current = record
        return current is not None and any(h.id == handheld for h in current.handhelds)

    def paired_now(self, handheld: str) -> bool:
        """Whether `handheld` is in the latest record (no record: not paired)."""
        return bool(self.records) and any(h.id == handheld for h in self.records[-1].handhelds)

    def check(self, handheld: str, at: dt.datetime, what: str) -> None:
        """Refuse (`not_paired`) unless `handheld` was paired with the device at `at`."""
        if not self.paired(handheld, at):
            when = at.isoformat()
            if not self.records:
                raise Refused("not_paired", f"{what}: HQ holds no pairing record of device {self.device}, so no "
                                            f"handheld was paired with it at {when}; pair with `edge hq pair`")
            raise Refused("not_paired", f"{what}: handheld {handheld} was not paired with device {self.device} at "
                                        f"{when} (per the HQ-signed pairing records); its decision does not count")
        if not self.paired_now(handheld):
            since = self.records[-1].issued_at.isoformat()
            raise Refused("not_paired", f"{what}: handheld {handheld} is no longer paired with device {self.device} "
                                        f"(unpaired by the HQ-signed record of {since}); a decision it sends now "
                                        "does not count, whatever date it carries")
