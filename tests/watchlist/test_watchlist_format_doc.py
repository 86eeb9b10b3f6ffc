"""docs/watchlist-bundle.md is enough to read a bundle: an independent reader written from it alone."""

import hashlib
import json
import struct

import numpy as np
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from watchlist_helpers import Keys, MakeBundle, make_subjects


def raw(key: Ed25519PublicKey | X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def read_as_documented(data: bytes, hq: Ed25519PublicKey, device: X25519PrivateKey) -> tuple[dict, dict, np.ndarray,
                                                                                               bytes]:
    assert data[:8] == bytes.fromhex("45444745574c0d0a")
    (h,) = struct.unpack(">I", data[8:12])
    header = json.loads(data[12:12 + h].decode("utf-8"))
    (p,) = struct.unpack(">Q", data[12 + h:20 + h])
    assert len(data) == 84 + h + p
    payload = data[20 + h:20 + h + p]
    hq.verify(data[20 + h + p:], data[:20 + h + p])
    assert header["format"] == 1 and header["cipher"] == "AES-256-GCM"
    assert header["signer"] == hashlib.sha256(raw(hq)).hexdigest()
    assert header["payload_sha256"] == hashlib.sha256(payload).hexdigest()
    me = raw(device.public_key())
    rec = next(r for r in header["recipients"] if r["key_id"] == hashlib.sha256(me).hexdigest())
    eph = bytes.fromhex(rec["ephemeral_public"])
    shared = device.exchange(X25519PublicKey.from_public_bytes(eph))
    kek = HKDF(hashes.SHA256(), 32, salt=b"\0" * 32, info=b"edge-watchlist/1 key-wrap" + eph + me).derive(shared)
    wid, ver = header["watchlist_id"], header["version"]
    data_key = AESGCM(kek).decrypt(bytes.fromhex(rec["nonce"]), bytes.fromhex(rec["wrapped_key"]),
                                   f"edge-watchlist/1 data-key|{wid}|{ver}|{rec['device_id']}".encode())
    plain = AESGCM(data_key).decrypt(bytes.fromhex(header["payload_nonce"]), payload,
                                     f"edge-watchlist/1 payload|{wid}|{ver}".encode())
    (i,) = struct.unpack(">I", plain[:4])
    index = json.loads(plain[4:4 + i])
    dim, count = header["embedder"]["dim"], header["embedding_count"]
    itemsize = {"float16": 2, "float32": 4}[header["dtype"]]
    rows = np.frombuffer(plain, "<f2" if itemsize == 2 else "<f4", count * dim, 4 + i).reshape(count, dim)
    return header, index, rows, plain[4 + i + count * dim * itemsize:]


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_independent_reader_gets_everything_back(dtype: str, keys: Keys, make_bundle: MakeBundle) -> None:
    subjects = make_subjects(5, seed=11, rows_per_subject=2, thumbnails=True)
    data = make_bundle(3, subjects=subjects, dtype=dtype)
    header, index, rows, thumbs = read_as_documented(data, keys.hq.public_key(), keys.device)
    assert header["entry_count"] == 5 and header["embedding_count"] == 10 and header["dtype"] == dtype
    assert sorted(index) == ["added", "approver", "case_reference", "category", "embeddings", "expires", "label",
                             "legal_basis", "subject_id", "thumbnail"]
    assert index["subject_id"] == [s.entry.subject_id for s in subjects]
    assert index["legal_basis"][1] == subjects[1].entry.legal_basis and index["embeddings"] == [2] * 5
    assert index["expires"][0] == subjects[0].entry.expires.isoformat().replace("+00:00", "Z")
    expected = np.concatenate([s.embeddings for s in subjects])
    np.testing.assert_allclose(rows.astype(np.float32), expected, atol=1e-3 if dtype == "float16" else 1e-7)
    for (offset, length), subject in zip(index["thumbnail"], subjects, strict=True):
        assert thumbs[offset:offset + length] == subject.thumbnail
