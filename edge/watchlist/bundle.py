"""The watchlist bundle's format: framing, header, payload index, and the constructions both sides share.

Layout (docs/watchlist-bundle.md is the normative description, enough for another implementation):

    magic "EDGEWL\\r\\n" | u32 BE header length | header (JSON) | u64 BE payload length | payload
    (AES-256-GCM) | Ed25519 signature (64 bytes) over every byte before it

The payload's data key is wrapped once per recipient device: X25519 with a fresh ephemeral key,
HKDF-SHA256, AES-256-GCM. Only `cryptography`'s standard constructions are used.

HQ seals a bundle in `sealing`; a device checks it in `opening` and decrypts it in `decryption`. Both sides
meet here, so that what one writes is what the other reads.
"""

import json
import struct
from dataclasses import dataclass
from typing import Annotated, Literal

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import AwareDatetime, ConfigDict, Field, NonNegativeInt, ValidationError, model_validator

from edge.config.base import StrictModel
from edge.protocol.canonical import problems
from edge.protocol.refused import Refused
from edge.watchlist.entries import SUBJECT_ID_PATTERN, Category, LongText, ShortText, SubjectId, WatchlistEntry

MAGIC = b"EDGEWL\r\n"
FORMAT = 1
SIGNATURE_SIZE = 64
MAX_HEADER_BYTES = 16 << 20
MAX_THUMBNAIL_BYTES = 64 << 10
PREFIX = struct.Struct(">8sI")
PAYLOAD_LEN = struct.Struct(">Q")
INDEX_LEN = struct.Struct(">I")
TAG_SIZE = 16
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
    "not_followed",         # a watchlist id the device's watchlist.follow does not name
    "lower_precedence",     # a followed id below the installed, still valid one in watchlist.follow
    "superseded",           # older than the version HQ's newest freshness statement names as current
    "undecryptable",        # the wrapped key or the payload fails authenticated decryption
    "disk_full",            # no space left while writing it
    "write_failed",         # another error while writing it
]


class BundleRefused(Refused):
    """A bundle the device will not install; `code` is machine-readable, the message says why.

    A subclass of the one `Refused` error, with the watchlist's own codes. `header` is the verified header when
    `opening.open_bundle` refused the bundle after its signature check, so the refusal record can name the
    watchlist and version it refused.
    """

    code: RefusalCode

    def __init__(self, code: RefusalCode, message: str) -> None:
        super().__init__(code, message)
        self.header: BundleHeader | None = None


class EmbedderRef(StrictModel):
    """The model the embeddings were made with; a device only accepts its own (by sha256)."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(min_length=1, max_length=100)
    sha256: str = Field(pattern=HEX64)
    dim: int = Field(ge=1, le=4096)


class WrappedKey(StrictModel):
    """The payload's data key, encrypted for one device (hex fields)."""

    model_config = ConfigDict(frozen=True)

    device_id: str = Field(pattern=DEVICE_ID_PATTERN)
    key_id: str = Field(pattern=HEX64, description="sha256 of the device's raw X25519 public key")
    ephemeral_public: str = Field(pattern=r"^[0-9a-f]{64}$")
    nonce: str = Field(pattern=r"^[0-9a-f]{24}$")
    wrapped_key: str = Field(pattern=r"^[0-9a-f]{96}$", description="32-byte key + 16-byte GCM tag")


class BundleSpec(StrictModel):
    """What HQ chooses for a bundle; the header adds what is computed from the content."""

    model_config = ConfigDict(frozen=True)

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


class PayloadIndex(StrictModel):
    """The entries in columns, element i of each list describing entry i.

    Columns rather than one object per entry: a 100,000-entry list parses into a few lists of
    strings instead of 100,000 objects, and the keys are not repeated on every entry.
    """

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
class RawBundle:
    """A bundle split along its framing, nothing checked yet but the lengths."""

    header: bytes
    payload: memoryview
    signature: bytes
    signed: memoryview

    @property
    def payload_offset(self) -> int:
        """Where the payload starts in the bundle."""
        return PREFIX.size + len(self.header) + PAYLOAD_LEN.size


def split(data: bytes | memoryview) -> RawBundle:
    """Cut a bundle along its framing: refuses a file shorter or longer than its own lengths say."""
    view = memoryview(data)
    if len(view) < PREFIX.size:
        raise BundleRefused("truncated", f"bundle is {len(view)} bytes: too short to hold a header")
    magic, header_len = PREFIX.unpack_from(view)
    if magic != MAGIC:
        raise BundleRefused("malformed", "not a watchlist bundle (wrong magic bytes)")
    if header_len > MAX_HEADER_BYTES:
        raise BundleRefused("malformed", f"header length {header_len} exceeds {MAX_HEADER_BYTES} bytes")
    payload_at = PREFIX.size + header_len + PAYLOAD_LEN.size
    if len(view) < payload_at:
        raise BundleRefused("truncated", f"bundle is {len(view)} bytes, its header alone needs {payload_at}")
    (payload_len,) = PAYLOAD_LEN.unpack_from(view, payload_at - PAYLOAD_LEN.size)
    total = payload_at + payload_len + SIGNATURE_SIZE
    if len(view) < total:
        raise BundleRefused("truncated", f"bundle is {len(view)} bytes, its lengths say {total}: incomplete copy")
    if len(view) > total:
        raise BundleRefused("oversized", f"bundle is {len(view)} bytes, its lengths say {total}: extra bytes")
    return RawBundle(bytes(view[PREFIX.size: PREFIX.size + header_len]), view[payload_at: payload_at + payload_len],
                     bytes(view[total - SIGNATURE_SIZE:]), view[: total - SIGNATURE_SIZE])


def parse_header(raw: RawBundle) -> BundleHeader:
    """The header as a model (not verified: use `opening.verify` before trusting it)."""
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
        raise BundleRefused("malformed", f"bundle header is invalid: {problems(exc, most=1)}") from None


def derive_kek(shared: bytes, ephemeral_raw: bytes, recipient: X25519PublicKey) -> bytes:
    """The key that wraps a recipient's copy of the data key, from the X25519 shared secret (HKDF-SHA256)."""
    recipient_raw = recipient.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=b"edge-watchlist/1 key-wrap" + ephemeral_raw + recipient_raw).derive(shared)


def wrap_aad(watchlist_id: str, version: int, device_id: str) -> bytes:
    """Binds a wrapped key to its watchlist, version and device: it cannot be moved to another bundle."""
    return f"edge-watchlist/1 data-key|{watchlist_id}|{version}|{device_id}".encode()


def payload_aad(watchlist_id: str, version: int) -> bytes:
    """Binds the payload to its watchlist and version."""
    return f"edge-watchlist/1 payload|{watchlist_id}|{version}".encode()
