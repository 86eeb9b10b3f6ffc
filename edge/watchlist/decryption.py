"""Device side of a bundle, second half: decrypt the payload a piece at a time into the gallery.

A device never holds a bundle's plaintext whole, and never holds the parsed index beside its raw text and the
gallery array at once: the payload is decrypted twice, a chunk at a time. The first pass keeps the index alone
and parses it (into `columns.EntryColumns`) only once the GCM tag has verified; the second decrypts the
embedding rows straight into the gallery array and the thumbnails into their buffer, kept only once the tag has
verified again. Nothing decrypted is trusted before its pass's tag. With the index parsed a column at a time,
this took a 1,000,000-entry install's peak from 1,036 to 651 MB, for a second AES-GCM pass (about 0.2 s).
Call it on a bundle `opening.open_bundle` has accepted.
"""

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, Literal

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from edge.keys import key_id
from edge.watchlist.bundle import (
    INDEX_LEN,
    TAG_SIZE,
    BundleHeader,
    BundleRefused,
    RawBundle,
    derive_kek,
    payload_aad,
    wrap_aad,
)
from edge.watchlist.columns import EntryColumns, parse_index
from edge.watchlist.match import to_bfloat16

CHUNK = 1 << 18  # payload bytes decrypted at a time: the most plaintext ever outside its final place

GalleryStorage = Literal["bfloat16", "float32"]
GALLERY_DTYPES: dict[GalleryStorage, np.dtype] = {"bfloat16": np.dtype(np.uint16), "float32": np.dtype(np.float32)}
PayloadReader = Callable[[int, int], bytes | memoryview]
"""read(offset, n): n bytes of the payload from `offset` (counted from the payload's first byte)."""


@dataclass(frozen=True)
class Content:
    """A decrypted payload: the entries in columns, their embedding rows (entry order) as gallery rows
    (L2-normalised, float32 or bfloat16 bits per GALLERY_DTYPES), and the thumbnail area (read-only)."""

    entries: EntryColumns
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
    """Unwrap this device's data key and decrypt the payload in two passes (from `raw`, or through `read`).

    First the index: kept alone, parsed once the tag has verified, checked against the header. Then the
    embedding rows, straight into the gallery array (L2-normalised, in `storage`), and the thumbnails: kept once
    the tag has verified again. Refused `undecryptable` on any tag failure, `malformed` when the parts do not
    add up.
    """
    data_key = _data_key(header, device_key)
    layout = _Layout(header, len(raw.payload))

    def plaintext() -> _Plaintext:
        return _Plaintext(data_key, bytes.fromhex(header.payload_nonce), payload_aad(header.watchlist_id,
                          header.version), read or (lambda at, n: raw.payload[at: at + n]), len(raw.payload))

    try:
        index = _read_index(plaintext(), layout)
    except InvalidTag:
        raise BundleRefused("undecryptable", "bundle payload does not decrypt with this device's key") from None
    entries = _entries(index, layout)
    try:
        embeddings, thumbnails = _read_rows(plaintext(), layout, storage)
    except InvalidTag:
        raise BundleRefused("undecryptable", "bundle payload decrypted once, then failed its check when read again: "
                            "the file changed while being installed; check the device's storage") from None
    return Content(entries, embeddings, memoryview(thumbnails).toreadonly())


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

    def skip(self, n: int) -> None:
        """Decrypt the next n bytes and drop them (the tag covers them all)."""
        while n:
            n -= len(self.next(min(CHUNK, n)))

    def finish(self) -> None:
        """Decrypt what is left unread, then check the tag: InvalidTag unless every byte is as HQ encrypted it."""
        self.skip(self.left)
        self._decryptor.finalize()


class _Layout:
    """Where the parts of a payload lie, from the header and, once read, the index length."""

    def __init__(self, header: BundleHeader, payload_size: int) -> None:
        self.header = header
        self.dim, self.rows = header.embedder.dim, header.embedding_count
        self.dtype = np.dtype("<f2" if header.dtype == "float16" else "<f4")
        self.row_bytes = self.dim * self.dtype.itemsize
        self.plain_size = payload_size - TAG_SIZE
        self.index_len = 0

    @property
    def thumbnail_bytes(self) -> int:
        return self.plain_size - INDEX_LEN.size - self.index_len - self.rows * self.row_bytes


def _bad(why: str) -> BundleRefused:
    return BundleRefused("malformed", f"bundle payload is inconsistent: {why}")


def _read_index(plain: _Plaintext, layout: _Layout) -> bytearray:
    """First pass: the index bytes, once the tag has verified over the whole payload."""
    index, problem = bytearray(), None
    if plain.left < INDEX_LEN.size:
        problem = "too short for its index"
    else:
        (layout.index_len,) = INDEX_LEN.unpack(plain.next(INDEX_LEN.size))
        if layout.thumbnail_bytes < 0:  # unauthentic yet: judged after the tag
            problem = "index and embedding area longer than the payload"
        else:
            index = bytearray(layout.index_len)
            plain.into(index)
    plain.finish()
    if problem:
        raise _bad(problem)
    return index


def _entries(index: bytearray, layout: _Layout) -> EntryColumns:
    """The authenticated index as columns (emptying `index`), checked against the header and the payload."""
    try:
        entries = parse_index(index)
    except ValueError as exc:
        raise _bad(f"index: {exc}") from None
    counted = int(entries.embeddings.sum())
    if len(entries) != layout.header.entry_count or counted != layout.rows:
        raise _bad(f"{len(entries)} entries with {counted} embeddings, header says "
                   f"{layout.header.entry_count} and {layout.rows}")
    offsets, lengths, area = entries.thumbnails[:, 0], entries.thumbnails[:, 1], layout.thumbnail_bytes
    if np.any((offsets >= 0) & ((offsets > area) | (lengths > area - offsets))):  # no sum to overflow
        raise _bad("a thumbnail lies outside the thumbnail area")
    return entries


def _read_rows(plain: _Plaintext, layout: _Layout, storage: GalleryStorage) -> tuple[np.ndarray, bytearray]:
    """Second pass: the gallery rows and the thumbnail area, once the tag has verified again."""
    plain.skip(INDEX_LEN.size + layout.index_len)
    gallery = np.empty((layout.rows, layout.dim), GALLERY_DTYPES[storage])
    step = CHUNK // layout.row_bytes
    with np.errstate(all="ignore"):  # unauthentic rows may hold anything; they are dropped if so
        for a in range(0, layout.rows, step):
            block = np.frombuffer(plain.next(min(step, layout.rows - a) * layout.row_bytes), layout.dtype)
            gallery[a: a + len(block) // layout.dim] = _gallery_rows(block.reshape(-1, layout.dim), storage)
    thumbnails = bytearray(plain.left)
    plain.into(thumbnails)
    plain.finish()
    return gallery, thumbnails


def _gallery_rows(block: np.ndarray, storage: GalleryStorage) -> np.ndarray:
    """Bundle rows (float16/float32) -> L2-normalised gallery rows (float32, or bfloat16 bits)."""
    rows = block.astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return to_bfloat16(rows) if storage == "bfloat16" else rows
