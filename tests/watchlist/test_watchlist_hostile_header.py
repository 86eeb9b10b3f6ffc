"""A bundle header built to exhaust the parser, with a signature that does not verify, is refused and recorded."""

import struct

import pytest
from watchlist_helpers import MakeBundle, OpenStore

from edge.watchlist.bundle import MAGIC

HOSTILE = {
    "nested": b"[" * 100_000,
    "nested_object": b'{"signer":' + b"[" * 50_000 + b"]" * 50_000 + b"}",
    "huge_integer": b'{"signer":' + b"7" * 5_000 + b"}",
}


def with_header(data: bytes, header: bytes) -> bytes:
    """The bundle's payload and signature under another header (the signature then no longer verifies)."""
    (hlen,) = struct.unpack_from(">I", data, 8)
    return MAGIC + struct.pack(">I", len(header)) + header + data[12 + hlen:]


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_header_is_refused_as_malformed(case: str, open_store: OpenStore, make_bundle: MakeBundle) -> None:
    store = open_store()
    good = make_bundle(1)
    assert store.install(good).outcome == "installed"
    result = store.install(with_header(make_bundle(2, seed=5), HOSTILE[case]))
    assert result.outcome == "refused" and result.refusal is not None and result.refusal.code == "malformed"
    state = open_store().state()  # written to the state file: still there after a restart
    assert state.last_refusal is not None and state.last_refusal.code == "malformed"
    assert state.status == "active" and state.installed is not None and state.installed.version == 1
