"""HQ side of a bundle: encrypt the subjects for the recipient devices and sign it all with the HQ key.

Kept apart from the device side (`opening`, `decryption`): a device never seals, and HQ never needs the
streaming decryption a device uses to stay within its memory.
"""

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from edge.errors import EdgeError
from edge.keys import key_id
from edge.watchlist.bundle import (
    FORMAT,
    INDEX_LEN,
    MAGIC,
    MAX_THUMBNAIL_BYTES,
    PAYLOAD_LEN,
    PREFIX,
    BundleHeader,
    BundleSpec,
    PayloadIndex,
    WrappedKey,
    derive_kek,
    payload_aad,
    wrap_aad,
)
from edge.watchlist.entries import WatchlistEntry


@dataclass(frozen=True)
class Subject:
    """One person going into a bundle: the entry, its embeddings (k, D), an optional JPEG thumbnail."""

    entry: WatchlistEntry
    embeddings: np.ndarray
    thumbnail: bytes | None = None


def seal(spec: BundleSpec, subjects: Sequence[Subject], recipients: Sequence[tuple[str, X25519PublicKey]],
         hq_key: Ed25519PrivateKey) -> bytes:
    """Encrypt the subjects for the recipients (device id, public key) and sign it all with the HQ key."""
    if not recipients:
        raise EdgeError("a bundle needs at least one recipient device: pass --recipients")
    if len({device for device, _ in recipients}) != len(recipients):
        raise EdgeError("a recipient device is listed twice: list each device once")
    plaintext, embedding_count = _encode_payload(spec, subjects)
    data_key = AESGCM.generate_key(bit_length=256)
    nonce = os.urandom(12)
    payload = AESGCM(data_key).encrypt(nonce, plaintext, payload_aad(spec.watchlist_id, spec.version))
    header = BundleHeader(
        **spec.model_dump(), format=FORMAT, entry_count=len(subjects), embedding_count=embedding_count,
        cipher="AES-256-GCM", payload_nonce=nonce.hex(), payload_sha256=hashlib.sha256(payload).hexdigest(),
        signer=key_id(hq_key.public_key()),
        recipients=tuple(_wrap(data_key, device, public, spec) for device, public in recipients),
    )
    header_bytes = header.model_dump_json().encode()
    signed = b"".join([PREFIX.pack(MAGIC, len(header_bytes)), header_bytes, PAYLOAD_LEN.pack(len(payload)),
                       payload])
    return signed + hq_key.sign(signed)


def _encode_payload(spec: BundleSpec, subjects: Sequence[Subject]) -> tuple[bytes, int]:
    dim = spec.embedder.dim
    if len({s.entry.subject_id for s in subjects}) != len(subjects):
        raise EdgeError("two subjects share a subject id: one entry per person")
    rows, refs, thumbs, offset = [], [], [], 0
    for subject in subjects:
        emb = np.asarray(subject.embeddings, dtype=np.float32)
        if emb.size == 0 or emb.shape[-1] != dim:
            raise EdgeError(f"embeddings of {subject.entry.subject_id} have shape {emb.shape}: need (k, {dim}) "
                            f"with k >= 1 for {spec.embedder.name}")
        emb = emb.reshape(-1, dim)
        rows.append(emb)
        ref = None
        if subject.thumbnail is not None:
            if len(subject.thumbnail) > MAX_THUMBNAIL_BYTES:
                raise EdgeError(f"thumbnail of {subject.entry.subject_id} is {len(subject.thumbnail)} bytes; "
                                f"at most {MAX_THUMBNAIL_BYTES}: make it smaller")
            ref = (offset, len(subject.thumbnail))
            thumbs.append(subject.thumbnail)
            offset += len(subject.thumbnail)
        refs.append(ref)
    matrix = np.concatenate(rows) if rows else np.zeros((0, dim), np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    if not np.all(np.isfinite(norms)) or np.any(norms == 0):
        raise EdgeError("an embedding is zero or not finite: the enrollment produced a broken vector")
    matrix = (matrix / norms).astype("<f2" if spec.dtype == "float16" else "<f4")
    entries = [s.entry for s in subjects]
    columns = {name: [getattr(e, name) for e in entries] for name in WatchlistEntry.model_fields}
    index = PayloadIndex.model_construct(**columns, embeddings=[len(r) for r in rows], thumbnail=refs)
    index_json = index.model_dump_json().encode()
    return b"".join([INDEX_LEN.pack(len(index_json)), index_json, matrix.tobytes(), *thumbs]), len(matrix)


def _wrap(data_key: bytes, device_id: str, public: X25519PublicKey, spec: BundleSpec) -> WrappedKey:
    ephemeral = X25519PrivateKey.generate()
    eph_raw = ephemeral.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    nonce = os.urandom(12)
    wrapped = AESGCM(derive_kek(ephemeral.exchange(public), eph_raw, public)).encrypt(
        nonce, data_key, wrap_aad(spec.watchlist_id, spec.version, device_id))
    return WrappedKey(device_id=device_id, key_id=key_id(public), ephemeral_public=eph_raw.hex(),
                      nonce=nonce.hex(), wrapped_key=wrapped.hex())
