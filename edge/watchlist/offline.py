"""A watchlist bundle read straight from a file (replay of footage), with every check the device makes."""

import hashlib
from datetime import datetime, timedelta, timezone
from pathlib import Path

from edge.errors import ConfigError
from edge.keys import load_encryption_private, load_signing_public
from edge.watchlist.bundle import BundleRefused, check_validity, decrypt, split, verify
from edge.watchlist.store import InstalledWatchlist


def load_bundle(bundle: Path, key: Path | None, hq_pub: Path | None, embedder_sha256: str) -> InstalledWatchlist:
    """Verify (pinned HQ key), check validity and model, decrypt with this device's key; refuse otherwise."""
    if key is None or hq_pub is None:
        raise ConfigError("--watchlist needs --key (device encryption private key) and --hq-pub (HQ signing key)")
    data = bundle.read_bytes()
    try:
        raw = split(data)
        header = verify(raw, load_signing_public(hq_pub))
        check_validity(header, datetime.now(timezone.utc), embedder_sha256, skew=timedelta(minutes=5))
        content = decrypt(raw, header, load_encryption_private(key))
    except BundleRefused as exc:
        raise ConfigError(f"{bundle}: refused ({exc.code}): {exc}") from exc
    return InstalledWatchlist.from_content(header, hashlib.sha256(data).hexdigest(), content, "float32")
