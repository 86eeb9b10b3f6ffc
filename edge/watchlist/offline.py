"""A watchlist bundle read straight from a file (replay of footage), with every check the device makes.

The checks are the device's own (`opening.open_bundle`, with the configured clock skew), so footage is never
reviewed against a list a device would refuse.
"""

import hashlib
from datetime import datetime, timezone
from pathlib import Path

from edge.config.watchlist import WatchlistConfig
from edge.errors import ConfigError
from edge.keys import load_encryption_private, load_signing_public
from edge.watchlist.bundle import BundleRefused
from edge.watchlist.embedders import DeviceEmbedders
from edge.watchlist.installed import InstalledWatchlist
from edge.watchlist.opening import mapped, open_bundle


def load_bundle(bundle: Path, key: Path | None, hq_pub: Path | None, embedders: DeviceEmbedders,
                config: WatchlistConfig | None = None) -> InstalledWatchlist:
    """Verify (pinned HQ key), check validity and model, decrypt with this device's key; refuse otherwise.

    `config` gives the size limit and clock skew (default: a device's defaults).
    """
    if key is None or hq_pub is None:
        raise ConfigError("--watchlist needs --encryption-key (device_encryption.key) and --hq-pub (HQ signing key)")
    with mapped(bundle) as data:
        hq_public = load_signing_public(hq_pub)
        try:
            opened = open_bundle(data, hq_public=hq_public, embedders=embedders,
                                 config=config or WatchlistConfig(), now=datetime.now(timezone.utc))
            content = opened.decrypt(load_encryption_private(key))
        except BundleRefused as exc:
            raise ConfigError(f"{bundle}: refused ({exc.code}): {exc}") from exc
        digest = hashlib.sha256(data).hexdigest()
    return InstalledWatchlist.from_content(opened.header, digest, content, "float32")
