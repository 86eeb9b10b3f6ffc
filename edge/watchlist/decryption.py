"""Device side of a bundle, second half: decrypt the payload a piece at a time into the gallery.

A device never holds a bundle's plaintext whole: AES-GCM is decrypted a chunk at a time, the embedding rows
straight into the gallery array, and nothing decrypted is trusted (the index is not even parsed) until the tag
has verified at the end. Call it on a bundle `opening.open_bundle` has accepted.
"""

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, Literal

import numpy as np
import pydantic_core
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import ValidationError

from edge.keys import key_id
from edge.protocol.canonical import problems
from edge.watchlist.bundle import (
    INDEX_LEN,
    TAG_SIZE,
    BundleHeader,
    BundleRefused,
    PayloadIndex,
    RawBundle,
    derive_kek,
    payload_aad,
    wrap_aad,
)
from edge.watchlist.match import to_bfloat16

CHUNK = 1 << 18  # payload bytes decrypted at a time: the most plaintext ever outside its final place

GalleryStorage = Literal["bfloat16", "float32"]
GALLERY_DTYPES: dict[GalleryStorage, np.dtype] = {"bfloat16": np.dtype(np.uint16), "float32": np.dtype(np.float32)}
PayloadReader = Callable[[int, int], bytes | memoryview]
"""read(offset, n): n bytes of the payload from `offset` (counted from the payload's first byte)."""


@dataclass(frozen=True)
class Content:
    """A decrypted payload: entry columns, their embedding rows (entry order) as gallery rows (L2-normalised,
    float32 or bfloat16 bits per GALLERY_DTYPES), and the thumbnail area (read-only)."""

    index: PayloadIndex
    embeddings: np.ndarray
    thumbnails: memoryview


def file_reader(file: BinaryIO, raw: RawBundle) -> PayloadReader:
    """Read the payload of `raw` from an open copy of its bundle file, at most CHUNK bytes at a time, into one
    reused buffer (each read is valid until the next)."""
    buffer = bytearray(CHUNK)

    def read(offset: int, n: int) -> memoryview:
        view = memoryview(buffer)[:n]
        got = os.preadv(file.fileno(), [view], raw.payload_offset + offset)
        if got != n:
            raise BundleRefused("truncated", f"{file.name} ended {n - got} bytes early while being decrypted: "
                                "it was cut short on disk; check the device's storage")
        return view

    return read


def decrypt(raw: RawBundle, header: BundleHeader, device_key: X25519PrivateKey, storage: GalleryStorage = "float32",
            read: PayloadReader | None = None) -> Content:
    """Unwrap this device's data key and decrypt the payload a chunk at a time (from `raw`, or through `read`).

    Embedding rows go straight into the gallery array (L2-normalised, in `storage`), the index and the
    thumbnails into their own buffers: the plaintext is never whole in memory. None of it is trusted
    until the GCM tag has verified at the end (a failure drops it all); only then is the index parsed.
    """
    data_key = _data_key(header, device_key)
    try:
        plain = _Plaintext(data_key, bytes.fromhex(header.payload_nonce),
                           payload_aad(header.watchlist_id, header.version),
                           read or (lambda at, n: raw.payload[at: at + n]), len(raw.payload))
        return _decode_payload(plain, header, storage)
    except InvalidTag:
        raise BundleRefused("undecryptable", "bundle payload does not decrypt with this device's key") from None


def _data_key(header: BundleHeader, device_key: X25519PrivateKey) -> bytes:
    mine = key_id(device_key.public_key())
    wrapped = next((r for r in header.recipients if r.key_id == mine), None)
    if wrapped is None:
        names = ", ".join(r.device_id for r in header.recipients)
        raise BundleRefused("not_addressed", f"bundle is addressed to {names}, not to this device "
                            f"(key {mine[:16]}…): ask HQ to add this device to the recipients")
    try:
        shared = device_key.exchange(X25519PublicKey.from_public_bytes(bytes.fromhex(wrapped.ephemeral_public)))
        kek = derive_kek(shared, bytes.fromhex(wrapped.ephemeral_public), device_key.public_key())
        return AESGCM(kek).decrypt(bytes.fromhex(wrapped.nonce), bytes.fromhex(wrapped.wrapped_key),
                                   wrap_aad(header.watchlist_id, header.version, wrapped.device_id))
    except (InvalidTag, ValueError):
        raise BundleRefused("undecryptable", "bundle payload does not decrypt with this device's key") from None


class _Plaintext:
    """The payload decrypted in order, a piece at a time into one reused buffer; unauthentic until `finish`."""

    def __init__(self, key: bytes, nonce: bytes, aad: bytes, read: PayloadReader, size: int) -> None:
        if size < TAG_SIZE:
            raise InvalidTag()  # too short to hold its tag
        self._decryptor = Cipher(algorithms.AES(key), modes.GCM(nonce, bytes(read(size - TAG_SIZE, TAG_SIZE)))
                                 ).decryptor()
        self._decryptor.authenticate_additional_data(aad)
        self._read = read
        self._offset = 0
        self.left = size - TAG_SIZE
        self._buffer = bytearray(CHUNK + 15)  # update_into wants room for a block beyond the data

    def next(self, n: int) -> memoryview:
        """The next n (<= CHUNK) plaintext bytes, valid until the next call."""
        done = self._decryptor.update_into(self._read(self._offset, n), self._buffer)
        self._offset += n
        self.left -= n
        return memoryview(self._buffer)[:done]

    def into(self, target: bytearray) -> None:
        """Fill target with the next len(target) plaintext bytes."""
        for at in range(0, len(target), CHUNK):
            piece = self.next(min(CHUNK, len(target) - at))
            target[at: at + len(piece)] = piece

    def finish(self) -> None:
        """Decrypt what is left unread, then check the tag: InvalidTag unless every byte is as HQ encrypted it."""
        while self.left:
            self.next(min(CHUNK, self.left))
        self._decryptor.finalize()


def _decode_payload(plain: _Plaintext, header: BundleHeader, storage: GalleryStorage) -> Content:
    def bad(why: str) -> BundleRefused:
        return BundleRefused("malformed", f"bundle payload is inconsistent: {why}")

    dim, rows = header.embedder.dim, header.embedding_count
    dtype = np.dtype("<f2" if header.dtype == "float16" else "<f4")
    row_bytes = dim * dtype.itemsize
    index, thumbnails = bytearray(), bytearray()
    gallery = np.empty((0, dim), GALLERY_DTYPES[storage])
    problem = None
    if plain.left < INDEX_LEN.size:
        problem = "too short for its index"
    else:
        (index_len,) = INDEX_LEN.unpack(plain.next(INDEX_LEN.size))
        if index_len + rows * row_bytes > plain.left:  # unauthentic yet: judged after the tag
            problem = "index and embedding area longer than the payload"
        else:
            index = bytearray(index_len)
            plain.into(index)
            gallery = np.empty((rows, dim), GALLERY_DTYPES[storage])
            step = CHUNK // row_bytes
            with np.errstate(all="ignore"):  # unauthentic rows may hold anything; they are dropped if so
                for a in range(0, rows, step):
                    block = np.frombuffer(plain.next(min(step, rows - a) * row_bytes), dtype).reshape(-1, dim)
                    gallery[a: a + len(block)] = _gallery_rows(block, storage)
            thumbnails = bytearray(plain.left)
            plain.into(thumbnails)
    plain.finish()
    if problem:
        raise bad(problem)
    try:
        parsed = _parse_index(index)
    except ValueError as exc:
        raise bad(f"index: {problems(exc, most=1) if isinstance(exc, ValidationError) else exc}") from None
    counted = sum(parsed.embeddings)
    if len(parsed) != header.entry_count or counted != rows:
        raise bad(f"{len(parsed)} entries with {counted} embeddings, header says "
                  f"{header.entry_count} and {header.embedding_count}")
    if len(set(parsed.subject_id)) != len(parsed):
        raise bad("a subject id appears twice")
    if any(ref is not None and ref[0] + ref[1] > len(thumbnails) for ref in parsed.thumbnail):
        raise bad("a thumbnail lies outside the thumbnail area")
    return Content(parsed, gallery, memoryview(thumbnails).toreadonly())


def _parse_index(text: bytearray) -> PayloadIndex:
    """Parse the index JSON, emptying `text` before validating: a 1,000,000-entry index then never has its text,
    a parse tree (pydantic's JSON mode builds one) and its objects in memory at once. Raises ValueError."""
    columns = pydantic_core.from_json(text, cache_strings=True)  # repeated values become one string object
    del text[:]
    return PayloadIndex.model_validate(columns)


def _gallery_rows(block: np.ndarray, storage: GalleryStorage) -> np.ndarray:
    """Bundle rows (float16/float32) -> L2-normalised gallery rows (float32, or bfloat16 bits)."""
    rows = block.astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return to_bfloat16(rows) if storage == "bfloat16" else rows
