"""Device side of a bundle, first half: every check before a byte is decrypted, in one order for every caller.

`open_bundle` is the one way a device (store install, store start-up) and a replay of footage (`edge replay
--watchlist`) accept a bundle: the same refusals, in the order docs/watchlist-bundle.md gives, with the clock
skew the device is configured with. The signature is checked where the bundle lies: a file is mapped, not
read, so a large bundle is never held twice.
"""

import hashlib
import json
import mmap
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from edge.config.watchlist import WatchlistConfig
from edge.keys import key_id
from edge.watchlist.bundle import BundleHeader, BundleRefused, RawBundle, parse_header, split
from edge.watchlist.decryption import Content, GalleryStorage, PayloadReader, decrypt
from edge.watchlist.embedders import DeviceEmbedders


@dataclass(frozen=True)
class OpenedBundle:
    """A bundle that passed every check but decryption: its framing, its verified header."""

    raw: RawBundle
    header: BundleHeader

    def decrypt(self, device_key: X25519PrivateKey, storage: GalleryStorage = "float32",
                read: PayloadReader | None = None) -> Content:
        """Decrypt it (`decryption.decrypt`): from the bytes it was opened on, or through `read`."""
        return decrypt(self.raw, self.header, device_key, storage, read)


def open_bundle(data: bytes | memoryview, *, hq_public: Ed25519PublicKey, embedders: DeviceEmbedders,
                config: WatchlistConfig, now: datetime | None = None, installed: bool = False,
                in_use: str | None = None) -> OpenedBundle:
    """Check a bundle as a device does before decrypting it; raise BundleRefused at the first check that fails.

    In order: the size limit, the framing, the signature by the pinned HQ key and the header, the embedder,
    the validity window (not-before less `config.clock_skew_s`, expiry) at `now` (default: the current time).
    `installed`: the device's own installed bundle, opened again at start. It passed the size limit and the
    window when it was installed; an expired one is loaded and reported as expired, not refused.
    `in_use`: the sha256 of the embedder the device matches with now (`DeviceEmbedders.check_new`).
    """
    if not installed and len(data) > config.max_bundle_bytes:
        raise BundleRefused("oversized", f"bundle is {len(data)} bytes, over the limit of "
                            f"{config.max_bundle_bytes} (watchlist.max_bundle_mb)")
    raw = split(data)
    header = verify(raw, hq_public)
    try:
        if installed:
            embedders.check_installed(header)
        else:
            embedders.check_new(header, in_use)
            _check_validity(header, now or datetime.now(timezone.utc), skew=timedelta(seconds=config.clock_skew_s))
    except BundleRefused as exc:
        exc.header = header  # the refusal record names the watchlist and version it refused
        raise
    return OpenedBundle(raw, header)


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


def _check_validity(header: BundleHeader, now: datetime, skew: timedelta) -> None:
    """Device policy on a verified header: inside the validity window."""
    if header.not_before - skew > now:
        raise BundleRefused("not_yet_valid", f"bundle is valid from {header.not_before.isoformat()}, "
                            f"device time is {now.isoformat()}: check the device clock or wait")
    if header.expires <= now:
        raise BundleRefused("expired", f"bundle expired at {header.expires.isoformat()} "
                            f"(device time {now.isoformat()}): publish a current watchlist")


def _claimed_signer(header: bytes) -> str | None:
    """The key id an unverified header names, to say which key signed; None when it names none.

    A damaged header (not JSON) is left to the signature refusal; one built to exhaust the parser (nesting
    deeper than the recursion limit, integers of thousands of digits) is refused as malformed, never raised.
    """
    try:
        obj = json.loads(header)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    except RecursionError:
        raise BundleRefused("malformed", "bundle header is nested too deeply to read and its signature does not "
                            "verify: not a bundle HQ built") from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise BundleRefused("malformed", f"bundle header cannot be read ({exc}) and its signature does not "
                            "verify: not a bundle HQ built") from None
    signer = obj.get("signer") if isinstance(obj, dict) else None
    return signer if isinstance(signer, str) else None
