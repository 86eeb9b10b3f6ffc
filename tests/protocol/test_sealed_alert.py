"""Sealed alerts, signed decisions and pairing records refuse everything they should, with the reason."""

import base64
import datetime as dt
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from pydantic import ValidationError
from sample_alerts import make_alert

from edge.audit.decisions import audit_body
from edge.audit.log import AuditLog
from edge.audit.records import AdjudicationBody
from edge.audit.verify import verify_file
from edge.errors import EdgeError
from edge.protocol.adjudication import Adjudication, tally, verify_adjudication
from edge.protocol.alert import STATEMENT, _encrypt, open_sealed, seal
from edge.protocol.canonical import encode, sign
from edge.protocol.messages import Box, MatchEvent, ModelHashes, WatchlistRef
from edge.protocol.pairing import (
    DevicePairing,
    HandheldPairing,
    HandheldPeer,
    device_record,
    handheld_record,
    payload,
    raw_b64,
    read_record,
)
from edge.protocol.refused import Refused
from edge.protocol.topics import adjudications

DEVICE = Ed25519PrivateKey.generate()
OTHER_DEVICE = Ed25519PrivateKey.generate()
HANDHELD = X25519PrivateKey.generate()
PAIRED = {"cam01": DEVICE.public_key()}


def sealed(**changes: object) -> tuple[bytes, dict]:
    alert = make_alert("cam01", "h1", **changes)
    data = seal(alert, DEVICE, HANDHELD.public_key())
    return data, json.loads(data)


def refused(data: bytes | dict, paired: dict | None = None, key: X25519PrivateKey = HANDHELD) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    with pytest.raises(Refused) as caught:
        open_sealed(raw, key, PAIRED if paired is None else paired, "h1")
    return caught.value.code


def test_sealed_alert_opens_for_its_handheld_and_hides_the_images_from_relays() -> None:
    alert = make_alert("cam01", "h1")
    data = seal(alert, DEVICE, HANDHELD.public_key())
    opened = open_sealed(data, HANDHELD, PAIRED, "h1")
    assert opened.model_dump(exclude={"signature"}) == alert.model_dump(exclude={"signature"})
    assert opened.statement == STATEMENT
    crop = base64.b64decode(alert.probe_crop)
    assert crop[:64] not in data and alert.label.encode() not in data and alert.probe_crop.encode() not in data
    assert json.loads(data)["device"] == "cam01"  # the header stays readable for routing


def test_refuses_unpaired_device_other_handheld_and_malformed() -> None:
    data, _ = sealed()
    assert refused(data, paired={"cam02": DEVICE.public_key()}) == "unpaired"
    assert refused(data, key=X25519PrivateKey.generate()) == "tampered"  # sealed to another handheld's key
    with pytest.raises(Refused) as caught:
        open_sealed(data, HANDHELD, PAIRED, "h2")
    assert caught.value.code == "not_for_us"
    assert refused(b"not json") == "malformed"
    assert refused(b'{"schema": "edge.sealed_alert/1"}') == "malformed"


@pytest.mark.parametrize(("field", "value"), [
    ("event_id", "00000000-0000-4000-8000-000000000000"),
    ("device", "cam09"),  # re-addressed to another paired device: the header is bound, so it fails
    ("handheld", "h9"),
    ("epk", base64.b64encode(bytes(range(32))).decode()),
    ("nonce", base64.b64encode(bytes(12)).decode()),
])
def test_any_header_change_breaks_decryption(field: str, value: str) -> None:
    _, envelope = sealed()
    envelope[field] = value
    with pytest.raises(Refused) as caught:
        open_sealed(json.dumps(envelope).encode(), HANDHELD, PAIRED | {"cam09": DEVICE.public_key()})
    assert caught.value.code == "tampered"


def test_alert_forwarded_by_another_handheld_is_refused() -> None:
    """h2 opens its copy and re-seals the device-signed alert to h1: signature valid, addressee wrong."""
    signed = encode(sign(make_alert("cam01", "h2").body(), DEVICE))
    event_id = json.loads(signed)["event_id"]
    forwarded = _encrypt(signed, event_id, "cam01", "h1", HANDHELD.public_key())
    assert refused(forwarded) == "tampered"


def test_flipped_ciphertext_bit_is_refused() -> None:
    _, envelope = sealed()
    raw = bytearray(base64.b64decode(envelope["ciphertext"]))
    raw[len(raw) // 2] ^= 1
    envelope["ciphertext"] = base64.b64encode(bytes(raw)).decode()
    assert refused(envelope) == "tampered"


def test_alert_signed_by_another_key_is_refused() -> None:
    data = seal(make_alert("cam01", "h1"), OTHER_DEVICE, HANDHELD.public_key())
    assert refused(data) == "bad_signature"


def test_outer_signature_added_by_the_uplink_is_checked() -> None:
    _, envelope = sealed()
    envelope["sent_at"] = "2025-01-01T00:00:00.000Z"
    signed = sign(envelope, DEVICE)
    assert open_sealed(json.dumps(signed).encode(), HANDHELD, PAIRED, "h1").device == "cam01"
    assert refused(signed | {"sent_at": "2025-01-01T00:00:01.000Z"}) == "bad_signature"


def test_alert_images_must_be_jpeg() -> None:
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(32)).decode()
    with pytest.raises(ValidationError, match="JPEG"):
        make_alert("cam01", "h1", probe_crop=png)


HANDHELD_SIGNING = Ed25519PrivateKey.generate()
KNOWN = {"h1": HANDHELD_SIGNING.public_key()}


def decision(officer: str, choice: str, minute: int = 0) -> Adjudication:
    when = dt.datetime(2025, 1, 1, 12, minute, tzinfo=dt.timezone.utc)
    return Adjudication.create(make_alert("cam01", "h1"), officer, f"Officer {officer}", choice,  # type: ignore[arg-type]
                               confirmations_required=2, decided_at=when)


def test_adjudication_verifies_and_becomes_an_audit_record(tmp_path) -> None:
    signed = decision("4711", "confirm").signed(HANDHELD_SIGNING)
    adjudication = verify_adjudication(signed, KNOWN, adjudications("h1"), device="cam01")
    assert adjudication.decision == "confirm"
    with AuditLog.open(tmp_path / "audit.log", DEVICE, device_id="cam01") as log:
        record = log.append("adjudication", audit_body(adjudication))
    assert isinstance(record.body, AdjudicationBody)
    assert (record.body.event_id, record.body.decision, record.body.by) == (adjudication.event_id, "confirmed", "4711")
    assert verify_file(tmp_path / "audit.log", [DEVICE.public_key()]).ok


def test_adjudication_refusals() -> None:
    good = decision("4711", "reject")
    signed = good.signed(HANDHELD_SIGNING)
    with pytest.raises(Refused, match="not paired") as caught:
        verify_adjudication(signed, {"h2": HANDHELD_SIGNING.public_key()})
    assert caught.value.code == "unknown_handheld"
    with pytest.raises(Refused) as caught:
        verify_adjudication(good.signed(Ed25519PrivateKey.generate()), KNOWN)
    assert caught.value.code == "bad_signature"
    forged = json.loads(signed) | {"decision": "confirm"}
    with pytest.raises(Refused) as caught:
        verify_adjudication(json.dumps(forged).encode(), KNOWN)
    assert caught.value.code == "bad_signature"
    with pytest.raises(Refused) as caught:
        verify_adjudication(signed, KNOWN, topic=adjudications("h2"))
    assert caught.value.code == "unknown_handheld"
    with pytest.raises(Refused) as caught:
        verify_adjudication(signed, KNOWN, device="cam02")
    assert caught.value.code == "not_ours"


def test_two_officer_rule_counts_different_officers_and_latest_decisions() -> None:
    assert tally([], 2).state == "pending"
    one = tally([decision("4711", "confirm").vote()], 2)
    assert (one.state, one.text) == ("awaiting_second", "1 of 2 confirmations")
    same_officer_twice = tally([decision("4711", "confirm", 0).vote(), decision("4711", "confirm", 1).vote()], 2)
    assert same_officer_twice.confirmations == 1 and same_officer_twice.state == "awaiting_second"
    two = tally([decision("4711", "confirm").vote(), decision("4712", "confirm").vote()], 2)
    assert (two.state, two.text) == ("confirmed", "Confirmed (2 of 2 confirmations)")
    assert tally([decision("4711", "confirm").vote()], 1).state == "confirmed"
    changed_mind = tally([decision("4711", "confirm", 0).vote(), decision("4711", "reject", 5).vote()], 1)
    assert changed_mind.state == "rejected"
    assert tally([decision("4711", "confirm").vote(), decision("4712", "reject").vote()], 2).state == "disputed"
    assert tally([decision("4711", "unsure").vote()], 2).state == "unsure"


HQ = Ed25519PrivateKey.generate()


def test_pairing_records_are_verified_for_owner_signer_and_freshness() -> None:
    peer = HandheldPeer(id="h1", signing_key=raw_b64(HANDHELD_SIGNING.public_key()),
                        encryption_key=raw_b64(HANDHELD.public_key()))
    old = device_record("cam01", [peer], HQ, issued_at=dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc))
    new = device_record("cam01", [], HQ, issued_at=dt.datetime(2025, 1, 2, tzinfo=dt.timezone.utc))
    current = read_record(payload(old), DevicePairing, HQ.public_key(), "cam01")
    assert current.handheld_keys()["h1"].public_bytes_raw() == HANDHELD_SIGNING.public_key().public_bytes_raw()
    with pytest.raises(Refused, match="is for cam01, not cam02"):
        read_record(payload(old), DevicePairing, HQ.public_key(), "cam02")
    with pytest.raises(Refused, match="pinned HQ key"):
        read_record(payload(old), DevicePairing, Ed25519PrivateKey.generate().public_key(), "cam01")
    forged = json.loads(payload(new)) | {"handhelds": [peer.body()]}
    with pytest.raises(Refused, match="pinned HQ key"):
        read_record(json.dumps(forged).encode(), DevicePairing, HQ.public_key(), "cam01")
    latest = read_record(payload(new), DevicePairing, HQ.public_key(), "cam01", current)
    with pytest.raises(Refused, match="not newer"):  # replaying the old record cannot undo the unpairing
        read_record(payload(old), DevicePairing, HQ.public_key(), "cam01", latest)
    record = handheld_record("h1", [], HQ)
    with pytest.raises(Refused, match=r"not an edge\.device_pairing/1"):
        read_record(payload(record), DevicePairing, HQ.public_key(), "h1")
    assert read_record(payload(record), HandheldPairing, HQ.public_key(), "h1").devices == []


def test_device_seals_a_match_event_for_each_paired_handheld_only() -> None:
    """What the device daemon calls: one envelope per handheld in its pairing record, readable by that one."""
    other = X25519PrivateKey.generate()
    peers = [HandheldPeer(id=hid, signing_key=raw_b64(HANDHELD_SIGNING.public_key()), encryption_key=raw_b64(key))
             for hid, key in (("h1", HANDHELD.public_key()), ("h2", other.public_key()))]
    pairing = device_record("cam01", peers, HQ)
    template = make_alert("cam01", "h1")
    event = MatchEvent(event_id=template.event_id, device="cam01", camera="front", track=3,
                       observed_at=template.observed_at, subject_id="S-001", label="Subject Alpha",
                       category="missing", case_ref="CASE-1", score=0.7, threshold=0.5,
                       threshold_policy="fixed (match.threshold)", margin=0.2, probe_quality=0.8,
                       box=Box(x1=1, y1=2, x2=30, y2=40), watchlist=WatchlistRef(id="wl", version=3, sha256="a" * 64),
                       models=ModelHashes(detector="b" * 64, embedder="c" * 64))
    crop, thumb = base64.b64decode(template.probe_crop), base64.b64decode(template.reference_thumbnail or "")
    sealed_alerts = pairing.sealed_alerts(event, DEVICE, crop, thumb, fpir=0.001)
    assert [topic for topic, _ in sealed_alerts] == ["edge/v1/handhelds/h1/alerts/cam01",
                                                     "edge/v1/handhelds/h2/alerts/cam01"]
    for (_, data), (hid, key) in zip(sealed_alerts, (("h1", HANDHELD), ("h2", other)), strict=True):
        alert = open_sealed(data, key, PAIRED, hid)
        assert (alert.event_id, alert.handheld, alert.score, alert.fpir) == (event.event_id, hid, 0.7, 0.001)
        assert base64.b64decode(alert.probe_crop) == crop
    assert refused(sealed_alerts[1][1]) == "not_for_us"  # h1 cannot read h2's copy
    with pytest.raises(EdgeError, match="no probe crop"):
        pairing.sealed_alerts(event, DEVICE)
