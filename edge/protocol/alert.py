"""The alert a device sends to an officer's handheld, signed by the device and sealed to the handheld's key.

Sign, then encrypt: the device signs the alert (`edge.alert/1`, canonical JSON as in edge.protocol.messages)
with its Ed25519 key, then encrypts the signed JSON to the handheld's X25519 key: a fresh ephemeral X25519
key, HKDF-SHA256 over the shared secret (info binds both public keys), AES-256-GCM with the envelope
header as associated data. The broker and HQ relay the envelope (`edge.sealed_alert/1`) without being able
to read the images; the handheld shows an alert only when the device is one HQ paired it with and both the
header and the signed alert name that device and this handheld.

The envelope is JSON so it can travel through the device's outbox unchanged: `Uplink.send_handheld_alert`
adds `sent_at` and an outer device `signature` when it publishes, which the handheld verifies too. It goes
to `edge.protocol.topics.handheld_inbox(handheld, device)`.
"""

import base64
import binascii
import os
from collections.abc import Mapping
from typing import Annotated, Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import AfterValidator, AwareDatetime, Field

from edge.config.base import StrictModel
from edge.errors import EdgeError
from edge.protocol.canonical import WireModel, canonical, encode, load_model, sign, verify
from edge.protocol.messages import DeviceId, EventId, HandheldId, MatchEvent, Text, base64_of
from edge.protocol.refused import Refused

ALERT = "edge.alert/1"
SEALED_ALERT = "edge.sealed_alert/1"
STATEMENT = "Possible match — verify before any action"
MAX_IMAGE_BYTES = 256 << 10
_KDF_INFO = b"edge.sealed_alert/1 aes-256-gcm key\n"


def _jpeg_b64(value: str) -> str:
    """Base64 of a JPEG (checked by its magic bytes), so the page only ever shows images."""
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("is not base64") from None
    if not data.startswith(b"\xff\xd8\xff"):
        raise ValueError("is not a JPEG image (base64 of the JPEG file expected)")
    if len(data) > MAX_IMAGE_BYTES:
        raise ValueError(f"is {len(data)} bytes; at most {MAX_IMAGE_BYTES} allowed")
    return value


JpegB64 = Annotated[str, AfterValidator(_jpeg_b64)]


class Listing(StrictModel):
    """What the officer needs beside the photos that a match event does not carry: the watchlist entry's legal
    basis and expiry, and the device's place."""

    legal_basis: str | None = None
    listed_until: AwareDatetime | None = None
    place: str | None = None


class HandheldAlert(WireModel):
    """What the officer sees: a candidate match to verify, with everything needed to judge it."""

    schema_: Literal["edge.alert/1"] = Field(ALERT, alias="schema")
    event_id: EventId = Field(description="the match event's id: decisions and audit records refer to it")
    device: DeviceId
    handheld: HandheldId = Field(description="the one handheld this copy is for (binds the signature to it)")
    camera: Text
    observed_at: AwareDatetime
    subject_id: Text
    label: Text
    category: Text
    case_ref: Text
    legal_basis: Text | None = Field(None, description="why the person is listed, from their watchlist entry (None "
                                                       "from devices that predate it)")
    listed_until: AwareDatetime | None = Field(None, description="when the person's watchlist entry expires")
    place: Text | None = Field(None, description="where the device is deployed (its device.place), if set")
    score: float = Field(ge=-1.0, le=1.0)
    threshold: float = Field(ge=-1.0, le=1.0)
    threshold_policy: Text | None = Field(None, description="which rule set the threshold (None from devices that "
                                                            "predate it)")
    fpir: float | None = Field(None, ge=0.0, le=1.0, description="false positive identification rate at threshold")
    margin: float = Field(ge=0.0, le=2.0, description="score minus the runner-up subject's score")
    probe_quality: float = Field(ge=0.0)
    probe_crop: JpegB64 = Field(description="base64 JPEG of the face the camera saw")
    reference_thumbnail: JpegB64 | None = Field(None, description="base64 JPEG from the watchlist entry")
    statement: Literal["Possible match — verify before any action"] = STATEMENT
    signature: str | None = None

    @classmethod
    def from_match(cls, event: MatchEvent, handheld: str, probe_crop_jpeg: bytes | None = None,
                   reference_thumbnail_jpeg: bytes | None = None, fpir: float | None = None,
                   listing: Listing | None = None) -> "HandheldAlert":
        """The handheld's copy of a match event. The crop comes from the event unless given (policy may keep
        it out of the HQ event and still send it, end-to-end encrypted, to the officer); `listing` says why the
        person is listed and where the device is, which the officer checks before acting."""
        if probe_crop_jpeg is not None:
            crop = base64.b64encode(probe_crop_jpeg).decode("ascii")
        elif event.probe_crop is not None:
            crop = event.probe_crop
        else:
            raise EdgeError(f"match event {event.event_id} carries no probe crop: pass probe_crop_jpeg, "
                            "an officer cannot verify a match without seeing the face")
        thumb = None if reference_thumbnail_jpeg is None else base64.b64encode(reference_thumbnail_jpeg).decode("ascii")
        return cls(event_id=event.event_id, device=event.device, handheld=handheld, camera=event.camera,
                   observed_at=event.observed_at, subject_id=event.subject_id, label=event.label,
                   category=event.category, case_ref=event.case_ref, score=event.score, threshold=event.threshold,
                   threshold_policy=event.threshold_policy, fpir=fpir, margin=event.margin,
                   probe_quality=event.probe_quality, probe_crop=crop,
                   reference_thumbnail=thumb, **(listing or Listing()).model_dump())


class SealedAlert(WireModel):
    """The envelope on the wire: a readable header (who to whom, key agreement inputs) and the ciphertext."""

    schema_: Literal["edge.sealed_alert/1"] = Field(SEALED_ALERT, alias="schema")
    event_id: EventId
    device: DeviceId
    handheld: HandheldId
    epk: Annotated[str, base64_of(32)] = Field(description="ephemeral X25519 public key, base64")
    nonce: Annotated[str, base64_of(12)] = Field(description="AES-GCM nonce, base64")
    ciphertext: str = Field(pattern=r"^[A-Za-z0-9+/]*={0,2}$", description="AES-256-GCM of the signed alert JSON")
    sent_at: AwareDatetime | None = Field(None, description="set by the device's uplink when it publishes")
    signature: str | None = Field(None, description="outer device signature added by the uplink, if any")

    def associated_data(self) -> bytes:
        """The header the AEAD binds: changing any of it makes decryption fail."""
        return canonical({"schema": self.schema_, "event_id": self.event_id, "device": self.device,
                          "handheld": self.handheld, "epk": self.epk, "nonce": self.nonce})


def _raw(key: X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _key(shared: bytes, epk: bytes, recipient: bytes) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt=None, info=_KDF_INFO + epk + recipient).derive(shared)


def seal(alert: HandheldAlert, device_signing_key: Ed25519PrivateKey, handheld_public_key: X25519PublicKey) -> bytes:
    """Sign `alert` with the device key and encrypt it to the handheld; returns the envelope's JSON bytes."""
    plaintext = encode(sign(alert.body(), device_signing_key))
    return _encrypt(plaintext, alert.event_id, alert.device, alert.handheld, handheld_public_key)


def _encrypt(plaintext: bytes, event_id: str, device: str, handheld: str, recipient: X25519PublicKey) -> bytes:
    ephemeral = X25519PrivateKey.generate()
    epk = _raw(ephemeral.public_key())
    key = _key(ephemeral.exchange(recipient), epk, _raw(recipient))
    header = SealedAlert(event_id=event_id, device=device, handheld=handheld, epk=base64.b64encode(epk).decode("ascii"),
                         nonce=base64.b64encode(os.urandom(12)).decode("ascii"), ciphertext="")
    ciphertext = AESGCM(key).encrypt(base64.b64decode(header.nonce), plaintext, header.associated_data())
    envelope = header.model_copy(update={"ciphertext": base64.b64encode(ciphertext).decode("ascii")})
    return encode(envelope.model_dump(mode="json", by_alias=True, exclude_none=True))


def open_sealed(payload: bytes, handheld_private_key: X25519PrivateKey,
                paired_device_keys: Mapping[str, Ed25519PublicKey], handheld_id: str | None = None) -> HandheldAlert:
    """Decrypt and verify an envelope; raise Refused (with a reason code) for anything not to be shown.

    `paired_device_keys` maps each device this handheld is paired with to its Ed25519 signing key.
    `handheld_id`, when given, must be the envelope's addressee.
    """
    raw, envelope = load_model(payload, SealedAlert, f"a {SEALED_ALERT} envelope")
    who = f"alert {envelope.event_id} from device {envelope.device}"
    if handheld_id is not None and envelope.handheld != handheld_id:
        raise Refused("not_for_us", f"{who} is addressed to handheld {envelope.handheld}, not {handheld_id}")
    device_key = paired_device_keys.get(envelope.device)
    if device_key is None:
        raise Refused("unpaired", f"{who}: this handheld is not paired with device {envelope.device} "
                                       "(pair it at HQ with `edge hq pair`)")
    if envelope.signature is not None and not verify(raw, device_key):
        raise Refused("bad_signature", f"{who}: the envelope's signature is not device {envelope.device}'s")
    epk = base64.b64decode(envelope.epk)
    try:
        shared = handheld_private_key.exchange(X25519PublicKey.from_public_bytes(epk))
        key = _key(shared, epk, _raw(handheld_private_key.public_key()))
        plaintext = AESGCM(key).decrypt(base64.b64decode(envelope.nonce), base64.b64decode(envelope.ciphertext),
                                        envelope.associated_data())
    except (InvalidTag, ValueError):
        raise Refused("tampered", f"{who} does not decrypt: altered in transit or sealed to another key") from None
    inner, alert = load_model(plaintext, HandheldAlert, f"a valid {ALERT} ({who})")
    if not verify(inner, device_key):
        raise Refused("bad_signature", f"{who}: the alert's signature is not device {envelope.device}'s")
    if (alert.device, alert.handheld, alert.event_id) != (envelope.device, envelope.handheld, envelope.event_id):
        raise Refused("tampered", f"{who}: the signed alert names device {alert.device}, handheld "
                                       f"{alert.handheld}, event {alert.event_id}: not what the envelope says")
    return alert
