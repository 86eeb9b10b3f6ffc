"""The watchlist bundle: HQ signs and encrypts it; a device checks every byte before trusting it.

Layout (docs/watchlist-bundle.md is the normative description, enough for another implementation):

    magic "EDGEWL\\r\\n" | u32 BE header length | header (JSON) | u64 BE payload length | payload
    (AES-256-GCM) | Ed25519 signature (64 bytes) over every byte before it

The payload's data key is wrapped once per recipient device: X25519 with a fresh ephemeral key,
HKDF-SHA256, AES-256-GCM. Only `cryptography`'s standard constructions are used.

A device never holds a bundle or its plaintext twice: a bundle file is mapped rather than read, and the
payload is decrypted a chunk at a time, its embedding rows straight into the gallery array.
"""

import hashlib
import json
import mmap
import os
import struct
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, BinaryIO, Literal

import numpy as np
import pydantic_core
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, NonNegativeInt, ValidationError, model_validator

from edge.errors import EdgeError
from edge.keys import key_id
from edge.watchlist.entries import SUBJECT_ID_PATTERN, Category, LongText, ShortText, SubjectId, WatchlistEntry
from edge.watchlist.match import to_bfloat16

MAGIC = b"EDGEWL\r\n"
FORMAT = 1
SIGNATURE_SIZE = 64
MAX_HEADER_BYTES = 16 << 20
MAX_THUMBNAIL_BYTES = 64 << 10
_PREFIX = struct.Struct(">8sI")
_PAYLOAD_LEN = struct.Struct(">Q")
_INDEX_LEN = struct.Struct(">I")
_TAG_SIZE = 16
_CHUNK = 1 << 18  # payload bytes decrypted at a time: the most plaintext ever outside its final place
HEX64 = r"^[0-9a-f]{64}$"
DEVICE_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"

RefusalCode = Literal[
    "truncated",            # shorter than its own lengths say
    "oversized",            # longer than its lengths say, or over the device's size limit
    "malformed",            # not a bundle, or fields that do not parse or do not add up
    "unsupported_format",   # a format version this firmware does not read
    "unknown_signing_key",  # signed by a key other than the pinned HQ key
    "bad_signature",        # the signature does not verify: a byte was altered
    "wrong_embedder",       # enrolled with another embedder model than this device runs
    "not_addressed",        # no wrapped key for this device's key
    "not_yet_valid",        # not-before is in the future
    "expired",              # expiry has passed
    "version_not_newer",    # version <= the highest ever installed for this watchlist id (replay, rollback)
    "undecryptable",        # the wrapped key or the payload fails authenticated decryption
    "disk_full",            # no space left while writing it
    "write_failed",         # another error while writing it
]


class BundleRefused(EdgeError):
    """A bundle the device will not install; `code` is machine-readable, the message says why."""

    def __init__(self, code: RefusalCode, message: str) -> None:
        super().__init__(message)
        self.code: RefusalCode = code


class EmbedderRef(BaseModel):
    """The model the embeddings were made with; a device only accepts its own (by sha256)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100)
    sha256: str = Field(pattern=HEX64)
    dim: int = Field(ge=1, le=4096)


class WrappedKey(BaseModel):
    """The payload's data key, encrypted for one device (hex fields)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    device_id: str = Field(pattern=DEVICE_ID_PATTERN)
    key_id: str = Field(pattern=HEX64, description="sha256 of the device's raw X25519 public key")
    ephemeral_public: str = Field(pattern=r"^[0-9a-f]{64}$")
    nonce: str = Field(pattern=r"^[0-9a-f]{24}$")
    wrapped_key: str = Field(pattern=r"^[0-9a-f]{96}$", description="32-byte key + 16-byte GCM tag")


class BundleSpec(BaseModel):
    """What HQ chooses for a bundle; the header adds what is computed from the content."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    watchlist_id: str = Field(pattern=SUBJECT_ID_PATTERN)
    version: int = Field(ge=1, lt=2**63)
    issued: AwareDatetime
    not_before: AwareDatetime
    expires: AwareDatetime
    scope: str = Field(min_length=1, max_length=200, description="which devices it is meant for, in words")
    embedder: EmbedderRef
    dtype: Literal["float16", "float32"] = "float16"

    @model_validator(mode="after")
    def _times_in_order(self) -> "BundleSpec":
        if not self.not_before < self.expires:
            raise ValueError(f"not_before {self.not_before} must be before expires {self.expires}")
        return self


class BundleHeader(BundleSpec):
    """The signed, readable part of a bundle (it never holds personal data)."""

    format: Literal[1]
    entry_count: int = Field(ge=0)
    embedding_count: int = Field(ge=0)
    cipher: Literal["AES-256-GCM"]
    payload_nonce: str = Field(pattern=r"^[0-9a-f]{24}$")
    payload_sha256: str = Field(pattern=HEX64, description="sha256 of the payload bytes as stored")
    signer: str = Field(pattern=HEX64, description="sha256 of the HQ raw Ed25519 public key")
    recipients: tuple[WrappedKey, ...] = Field(min_length=1)


class PayloadIndex(BaseModel):
    """The entries in columns, element i of each list describing entry i.

    Columns rather than one object per entry: a 100,000-entry list parses into a few lists of
    strings instead of 100,000 objects, and the keys are not repeated on every entry.
    """

    model_config = ConfigDict(extra="forbid")

    subject_id: list[SubjectId]
    label: list[ShortText]
    category: list[Category]
    case_reference: list[ShortText]
    legal_basis: list[LongText]
    approver: list[ShortText]
    added: list[AwareDatetime]
    expires: list[AwareDatetime]
    embeddings: list[Annotated[int, Field(ge=1)]] = Field(description="embedding rows of each entry")
    thumbnail: list[tuple[NonNegativeInt, NonNegativeInt] | None] = Field(
        description="offset, length of each entry's JPEG in the thumbnail area, or null")

    @model_validator(mode="after")
    def _same_lengths(self) -> "PayloadIndex":
        lengths = {name: len(getattr(self, name)) for name in type(self).model_fields}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"columns differ in length: {lengths}")
        return self

    def __len__(self) -> int:
        return len(self.subject_id)

    def entry(self, i: int) -> WatchlistEntry:
        return WatchlistEntry(subject_id=self.subject_id[i], label=self.label[i], category=self.category[i],
                              case_reference=self.case_reference[i], legal_basis=self.legal_basis[i],
                              approver=self.approver[i], added=self.added[i], expires=self.expires[i])


@dataclass(frozen=True)
class Subject:
    """One person going into a bundle: the entry, its embeddings (k, D), an optional JPEG thumbnail."""

    entry: WatchlistEntry
    embeddings: np.ndarray
    thumbnail: bytes | None = None


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


@dataclass(frozen=True)
class RawBundle:
    """A bundle split along its framing, nothing checked yet but the lengths."""

    header: bytes
    payload: memoryview
    signature: bytes
    signed: memoryview

    @property
    def payload_offset(self) -> int:
        """Where the payload starts in the bundle."""
        return _PREFIX.size + len(self.header) + _PAYLOAD_LEN.size


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
    payload = AESGCM(data_key).encrypt(nonce, plaintext, _payload_aad(spec.watchlist_id, spec.version))
    header = BundleHeader(
        **spec.model_dump(), format=FORMAT, entry_count=len(subjects), embedding_count=embedding_count,
        cipher="AES-256-GCM", payload_nonce=nonce.hex(), payload_sha256=hashlib.sha256(payload).hexdigest(),
        signer=key_id(hq_key.public_key()),
        recipients=tuple(_wrap(data_key, device, public, spec) for device, public in recipients),
    )
    header_bytes = header.model_dump_json().encode()
    signed = b"".join([_PREFIX.pack(MAGIC, len(header_bytes)), header_bytes, _PAYLOAD_LEN.pack(len(payload)),
                       payload])
    return signed + hq_key.sign(signed)


def split(data: bytes | memoryview) -> RawBundle:
    """Cut a bundle along its framing: refuses a file shorter or longer than its own lengths say."""
    view = memoryview(data)
    if len(view) < _PREFIX.size:
        raise BundleRefused("truncated", f"bundle is {len(view)} bytes: too short to hold a header")
    magic, header_len = _PREFIX.unpack_from(view)
    if magic != MAGIC:
        raise BundleRefused("malformed", "not a watchlist bundle (wrong magic bytes)")
    if header_len > MAX_HEADER_BYTES:
        raise BundleRefused("malformed", f"header length {header_len} exceeds {MAX_HEADER_BYTES} bytes")
    payload_at = _PREFIX.size + header_len + _PAYLOAD_LEN.size
    if len(view) < payload_at:
        raise BundleRefused("truncated", f"bundle is {len(view)} bytes, its header alone needs {payload_at}")
    (payload_len,) = _PAYLOAD_LEN.unpack_from(view, payload_at - _PAYLOAD_LEN.size)
    total = payload_at + payload_len + SIGNATURE_SIZE
    if len(view) < total:
        raise BundleRefused("truncated", f"bundle is {len(view)} bytes, its lengths say {total}: incomplete copy")
    if len(view) > total:
        raise BundleRefused("oversized", f"bundle is {len(view)} bytes, its lengths say {total}: extra bytes")
    return RawBundle(bytes(view[_PREFIX.size: _PREFIX.size + header_len]), view[payload_at: payload_at + payload_len],
                     bytes(view[total - SIGNATURE_SIZE:]), view[: total - SIGNATURE_SIZE])


@contextmanager
def mapped(path: Path) -> Iterator[memoryview]:
    """A file's bytes without reading them into memory: a read-only map.

    Ed25519 needs the signed bytes in one piece; mapped, they are file pages that the kernel can drop
    under pressure, not process memory, and they leave this process when the block ends (a view kept
    past the block still reads, paging back in).
    """
    with open(path, "rb") as file:
        if os.fstat(file.fileno()).st_size == 0:  # mmap refuses an empty file
            yield memoryview(b"")
            return
        pages = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        yield memoryview(pages)
    finally:
        pages.madvise(mmap.MADV_DONTNEED)  # unmapped when its last view goes; closing now would break those views


def file_reader(file: BinaryIO, raw: RawBundle) -> PayloadReader:
    """Read the payload of `raw` from an open copy of its bundle file, at most _CHUNK bytes at a time, into one
    reused buffer (each read is valid until the next)."""
    buffer = bytearray(_CHUNK)

    def read(offset: int, n: int) -> memoryview:
        view = memoryview(buffer)[:n]
        got = os.preadv(file.fileno(), [view], raw.payload_offset + offset)
        if got != n:
            raise BundleRefused("truncated", f"{file.name} ended {n - got} bytes early while being decrypted: "
                                "it was cut short on disk; check the device's storage")
        return view

    return read


def parse_header(raw: RawBundle) -> BundleHeader:
    """The header as a model (not verified: use `verify` before trusting it)."""
    try:
        obj = json.loads(raw.header)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleRefused("malformed", f"bundle header is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise BundleRefused("malformed", "bundle header is not a JSON object")
    if obj.get("format") != FORMAT:
        raise BundleRefused("unsupported_format", f"bundle format {obj.get('format')!r} is not {FORMAT}: "
                            "update the device firmware or rebuild the bundle with this version")
    try:
        return BundleHeader.model_validate(obj)
    except ValidationError as exc:
        raise BundleRefused("malformed", f"bundle header is invalid: {_first_error(exc)}") from None


def verify(raw: RawBundle, hq_public: Ed25519PublicKey) -> BundleHeader:
    """Check the signature against the pinned HQ key, then parse the header and the payload hash."""
    pinned = key_id(hq_public)
    try:
        hq_public.verify(raw.signature, raw.signed)
    except InvalidSignature:
        claimed = _claimed_signer(raw.header)
        if claimed is not None and claimed != pinned:
            raise BundleRefused("unknown_signing_key", f"bundle is signed by key {claimed[:16]}…, not by the "
                                f"pinned HQ key {pinned[:16]}…: is this device provisioned for this HQ?") from None
        raise BundleRefused("bad_signature", "bundle signature does not verify with the pinned HQ key: "
                            "the file was altered or damaged in transit") from None
    header = parse_header(raw)
    if header.signer != pinned:
        raise BundleRefused("malformed", "header names another signer than the key that signed it")
    if hashlib.sha256(raw.payload).hexdigest() != header.payload_sha256:
        raise BundleRefused("malformed", "payload sha256 differs from the header's: HQ built an inconsistent bundle")
    return header


def check_validity(header: BundleHeader, now: datetime, embedder_sha256: str, skew: timedelta) -> None:
    """Device policy on a verified header: its own embedder, and inside the validity window."""
    if header.embedder.sha256 != embedder_sha256:
        raise BundleRefused("wrong_embedder", f"bundle was enrolled with {header.embedder.name} "
                            f"({header.embedder.sha256[:16]}…), this device runs {embedder_sha256[:16]}…: "
                            "rebuild the watchlist with this device's embedder")
    if header.not_before - skew > now:
        raise BundleRefused("not_yet_valid", f"bundle is valid from {header.not_before.isoformat()}, "
                            f"device time is {now.isoformat()}: check the device clock or wait")
    if header.expires <= now:
        raise BundleRefused("expired", f"bundle expired at {header.expires.isoformat()} "
                            f"(device time {now.isoformat()}): publish a current watchlist")


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
                           _payload_aad(header.watchlist_id, header.version),
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
        kek = _kek(shared, bytes.fromhex(wrapped.ephemeral_public), device_key.public_key())
        return AESGCM(kek).decrypt(bytes.fromhex(wrapped.nonce), bytes.fromhex(wrapped.wrapped_key),
                                   _wrap_aad(header.watchlist_id, header.version, wrapped.device_id))
    except (InvalidTag, ValueError):
        raise BundleRefused("undecryptable", "bundle payload does not decrypt with this device's key") from None


class _Plaintext:
    """The payload decrypted in order, a piece at a time into one reused buffer; unauthentic until `finish`."""

    def __init__(self, key: bytes, nonce: bytes, aad: bytes, read: PayloadReader, size: int) -> None:
        if size < _TAG_SIZE:
            raise InvalidTag()  # too short to hold its tag
        self._decryptor = Cipher(algorithms.AES(key), modes.GCM(nonce, bytes(read(size - _TAG_SIZE, _TAG_SIZE)))
                                 ).decryptor()
        self._decryptor.authenticate_additional_data(aad)
        self._read = read
        self._offset = 0
        self.left = size - _TAG_SIZE
        self._buffer = bytearray(_CHUNK + 15)  # update_into wants room for a block beyond the data

    def next(self, n: int) -> memoryview:
        """The next n (<= _CHUNK) plaintext bytes, valid until the next call."""
        done = self._decryptor.update_into(self._read(self._offset, n), self._buffer)
        self._offset += n
        self.left -= n
        return memoryview(self._buffer)[:done]

    def into(self, target: bytearray) -> None:
        """Fill target with the next len(target) plaintext bytes."""
        for at in range(0, len(target), _CHUNK):
            piece = self.next(min(_CHUNK, len(target) - at))
            target[at: at + len(piece)] = piece

    def finish(self) -> None:
        """Decrypt what is left unread, then check the tag: InvalidTag unless every byte is as HQ encrypted it."""
        while self.left:
            self.next(min(_CHUNK, self.left))
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
    if plain.left < _INDEX_LEN.size:
        problem = "too short for its index"
    else:
        (index_len,) = _INDEX_LEN.unpack(plain.next(_INDEX_LEN.size))
        if index_len + rows * row_bytes > plain.left:  # unauthentic yet: judged after the tag
            problem = "index and embedding area longer than the payload"
        else:
            index = bytearray(index_len)
            plain.into(index)
            gallery = np.empty((rows, dim), GALLERY_DTYPES[storage])
            step = _CHUNK // row_bytes
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
        raise bad(f"index: {_first_error(exc) if isinstance(exc, ValidationError) else exc}") from None
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
        raise EdgeError("an embedding is zero or not finite: the enrolment produced a broken vector")
    matrix = (matrix / norms).astype("<f2" if spec.dtype == "float16" else "<f4")
    entries = [s.entry for s in subjects]
    columns = {name: [getattr(e, name) for e in entries] for name in WatchlistEntry.model_fields}
    index = PayloadIndex.model_construct(**columns, embeddings=[len(r) for r in rows], thumbnail=refs)
    index_json = index.model_dump_json().encode()
    return b"".join([_INDEX_LEN.pack(len(index_json)), index_json, matrix.tobytes(), *thumbs]), len(matrix)


def _wrap(data_key: bytes, device_id: str, public: X25519PublicKey, spec: BundleSpec) -> WrappedKey:
    ephemeral = X25519PrivateKey.generate()
    eph_raw = ephemeral.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    nonce = os.urandom(12)
    wrapped = AESGCM(_kek(ephemeral.exchange(public), eph_raw, public)).encrypt(
        nonce, data_key, _wrap_aad(spec.watchlist_id, spec.version, device_id))
    return WrappedKey(device_id=device_id, key_id=key_id(public), ephemeral_public=eph_raw.hex(),
                      nonce=nonce.hex(), wrapped_key=wrapped.hex())


def _kek(shared: bytes, ephemeral_raw: bytes, recipient: X25519PublicKey) -> bytes:
    recipient_raw = recipient.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=b"edge-watchlist/1 key-wrap" + ephemeral_raw + recipient_raw).derive(shared)


def _wrap_aad(watchlist_id: str, version: int, device_id: str) -> bytes:
    return f"edge-watchlist/1 data-key|{watchlist_id}|{version}|{device_id}".encode()


def _payload_aad(watchlist_id: str, version: int) -> bytes:
    return f"edge-watchlist/1 payload|{watchlist_id}|{version}".encode()


def _claimed_signer(header: bytes) -> str | None:
    try:
        signer = json.loads(header).get("signer")
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return None
    return signer if isinstance(signer, str) else None


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    return f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}"
