"""docs/sealing.md's claim: an ephemeral key of small order (X25519 result all zeros) is refused, not used."""

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from sample_alerts import make_alert

from edge.protocol.alert import open_sealed, seal
from edge.protocol.refused import Refused

# The all-zero key and the order-8 point RFC 7748 lists: both give an all-zero shared secret.
SMALL_ORDER = [bytes(32), bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")]


@pytest.mark.parametrize("epk", SMALL_ORDER)
def test_an_alert_sealed_with_a_small_order_ephemeral_key_is_refused_as_tampered(epk: bytes) -> None:
    device, handheld = Ed25519PrivateKey.generate(), X25519PrivateKey.generate()
    envelope = json.loads(seal(make_alert("cam01", "h1"), device, handheld.public_key()))
    envelope["epk"] = base64.b64encode(epk).decode()
    with pytest.raises(Refused) as caught:
        open_sealed(json.dumps(envelope).encode(), handheld, {"cam01": device.public_key()}, "h1")
    assert caught.value.code == "tampered"
