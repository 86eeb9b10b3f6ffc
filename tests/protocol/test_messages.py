"""Payload contract: signatures over canonical JSON, and refusal of anything that does not validate."""

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.bench.synthetic import synthetic_match
from edge.protocol.canonical import encode, sign, verify
from edge.protocol.messages import decode
from edge.protocol.refused import Refused


def test_signature_survives_reserialisation_and_catches_any_change() -> None:
    key = Ed25519PrivateKey.generate()
    signed = sign(synthetic_match("a", 1).body(), key)
    raw, _ = decode(encode(signed))
    assert verify(raw, key.public_key())
    # Another JSON writer (key order, whitespace) carries the same signed content.
    reordered = json.dumps(dict(reversed(list(signed.items()))), indent=2).encode()
    assert verify(decode(reordered)[0], key.public_key())
    assert not verify(raw, Ed25519PrivateKey.generate().public_key())
    for path, value in [(("box", "x1"), 11.0), (("score",), 0.7100001), (("watchlist", "version"), 2)]:
        tampered = json.loads(encode(signed))
        target = tampered
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value
        assert not verify(tampered, key.public_key()), path


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (b"", "not UTF-8 JSON"),
        (b'"text"', "expected an object"),
        (b'{"schema": 7}', "unknown schema"),
        (b'{"schema": "edge.match/2"}', "unknown schema"),
        (encode({**synthetic_match("a", 1).body(), "score": "NaN"}).replace(b'"NaN"', b"NaN"), "score"),
        (encode({**synthetic_match("a", 1).body(), "event_id": "1"}), "event_id"),
        (encode({**synthetic_match("a", 1).body(), "device": "a/b"}), "device"),
        (encode({**synthetic_match("a", 1).body(), "nickname": "x"}), "nickname"),
    ],
)
def test_malformed_payloads_are_refused_with_the_reason(payload: bytes, problem: str) -> None:
    with pytest.raises(Refused, match=problem):
        decode(payload)
