"""Pairing records: HQ's signed statement of which handhelds a device alerts, and which devices a handheld trusts.

`edge hq pair` writes one record per side and publishes each retained on the side's pairing topic
(`edge.protocol.topics.device_pairing` / `handheld_pairing`):
- to a device (`edge.device_pairing/1`): each paired handheld's id, Ed25519 key (to verify its decisions)
  and X25519 key (to seal alerts to it);
- to a handheld (`edge.handheld_pairing/1`): each paired device's id and Ed25519 key (to verify alerts).
Both are signed by HQ's Ed25519 key, which devices and handhelds pin, so the broker cannot add a peer.
A receiver keeps the newest record it has verified and refuses an older one (`issued_at`), so a replayed
record cannot undo an unpairing.
"""

import base64
import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Literal, TypeVar

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from pydantic import AwareDatetime, Field

from edge.fsio import write_atomic
from edge.keys import key_id
from edge.protocol.alert import HandheldAlert, Listing, seal
from edge.protocol.canonical import WireModel, encode, load_model, sign, verify
from edge.protocol.messages import DeviceId, HandheldId, MatchEvent, Sha256Hex, base64_of, utc_now
from edge.protocol.refused import Refused
from edge.protocol.topics import handheld_inbox

DEVICE_PAIRING = "edge.device_pairing/1"
HANDHELD_PAIRING = "edge.handheld_pairing/1"


RawKey = Annotated[str, base64_of(32)]


def raw_b64(key: Ed25519PublicKey | X25519PublicKey) -> str:
    return base64.b64encode(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()


class HandheldPeer(WireModel):
    """A handheld as its paired device knows it."""

    id: HandheldId
    signing_key: RawKey = Field(description="Ed25519, base64 raw: verifies the handheld's decisions")
    encryption_key: RawKey = Field(description="X25519, base64 raw: alerts are sealed to it")

    def signing_public(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(self.signing_key))

    def encryption_public(self) -> X25519PublicKey:
        return X25519PublicKey.from_public_bytes(base64.b64decode(self.encryption_key))


class DevicePeer(WireModel):
    """A device as its paired handheld knows it."""

    id: DeviceId
    signing_key: RawKey = Field(description="Ed25519, base64 raw: verifies the device's alerts")

    def signing_public(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(self.signing_key))


class DevicePairing(WireModel):
    """Sent to a device: the handhelds it sends alerts to and accepts decisions from."""

    schema_: Literal["edge.device_pairing/1"] = Field(DEVICE_PAIRING, alias="schema")
    device: DeviceId
    issued_at: AwareDatetime
    signer: Sha256Hex = Field(description="key id (sha256 of the raw key) of the HQ key that signed")
    handhelds: list[HandheldPeer]
    signature: str | None = None

    def handheld_keys(self) -> dict[str, Ed25519PublicKey]:
        """handheld id -> key that verifies its decisions (edge.protocol.adjudication.verify_adjudication)."""
        return {h.id: h.signing_public() for h in self.handhelds}

    def sealed_alerts(self, event: MatchEvent, device_signing_key: Ed25519PrivateKey,
                      probe_crop_jpeg: bytes | None = None, reference_thumbnail_jpeg: bytes | None = None,
                      fpir: float | None = None, listing: Listing | None = None) -> list[tuple[str, bytes]]:
        """One signed, sealed alert per paired handheld: (topic, payload) pairs to publish at QoS 1."""
        if event.device != self.device:
            raise ValueError(f"match event of device {event.device} cannot go out under {self.device}'s pairing")
        return [(handheld_inbox(h.id, self.device),
                 seal(HandheldAlert.from_match(event, h.id, probe_crop_jpeg, reference_thumbnail_jpeg, fpir, listing),
                      device_signing_key, h.encryption_public()))
                for h in self.handhelds]


class HandheldPairing(WireModel):
    """Sent to a handheld: the devices whose alerts it shows."""

    schema_: Literal["edge.handheld_pairing/1"] = Field(HANDHELD_PAIRING, alias="schema")
    handheld: HandheldId
    issued_at: AwareDatetime
    signer: Sha256Hex
    devices: list[DevicePeer]
    signature: str | None = None

    def device_keys(self) -> dict[str, Ed25519PublicKey]:
        """device id -> key that verifies its alerts (edge.protocol.alert.open_sealed)."""
        return {d.id: d.signing_public() for d in self.devices}


R = TypeVar("R", DevicePairing, HandheldPairing)


def device_record(device: str, handhelds: Sequence[HandheldPeer], hq_key: Ed25519PrivateKey,
                  issued_at: dt.datetime | None = None) -> DevicePairing:
    record = DevicePairing(device=device, issued_at=issued_at or utc_now(), signer=key_id(hq_key.public_key()),
                           handhelds=sorted(handhelds, key=lambda h: h.id))
    return DevicePairing.model_validate(sign(record.body(), hq_key))


def handheld_record(handheld: str, devices: Sequence[DevicePeer], hq_key: Ed25519PrivateKey,
                    issued_at: dt.datetime | None = None) -> HandheldPairing:
    record = HandheldPairing(handheld=handheld, issued_at=issued_at or utc_now(), signer=key_id(hq_key.public_key()),
                             devices=sorted(devices, key=lambda d: d.id))
    return HandheldPairing.model_validate(sign(record.body(), hq_key))


def payload(record: DevicePairing | HandheldPairing) -> bytes:
    return encode(record.body())


def read_record(data: bytes, kind: type[R], hq_public: Ed25519PublicKey, owner: str,
                current: R | None = None) -> R:
    """Parse and verify a record for `owner` (device or handheld id); refuse one not newer than `current`."""
    raw, record = load_model(data, kind, f"an {kind.model_fields['schema_'].default} record")
    subject = record.device if isinstance(record, DevicePairing) else record.handheld
    if subject != owner:
        raise Refused("not_for_us", f"pairing record is for {subject}, not {owner}: it was sent to the wrong place")
    if record.signer != key_id(hq_public) or not verify(raw, hq_public):
        raise Refused("bad_signature", f"pairing record for {owner} is not signed by the pinned HQ key: ignored")
    if current is not None and record.issued_at <= current.issued_at:
        raise Refused("stale", f"pairing record for {owner} issued {record.issued_at.isoformat()} is not newer "
                               f"than the one in use ({current.issued_at.isoformat()}): replay or reordering ignored")
    return record


def load_record(path: Path, kind: type[R], hq_public: Ed25519PublicKey, owner: str) -> R | None:
    """The verified record in `path`, or None when the file does not exist (not paired yet)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise Refused("unreadable", f"cannot read pairing record {path}: {exc.strerror}") from exc
    try:
        return read_record(data, kind, hq_public, owner)
    except Refused as exc:
        raise Refused(exc.code, f"{path}: {exc}; fetch a fresh one from HQ (`edge hq pair`)") from None


def save_record(record: DevicePairing | HandheldPairing, path: Path) -> None:
    """Atomic replace with fsync, so a crash leaves the old record or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, payload(record), mode=None)
