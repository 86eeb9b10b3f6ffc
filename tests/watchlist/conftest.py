"""Fixtures of the watchlist tests: session keys, a bundle factory, the device store in a temporary folder."""

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from watchlist_helpers import DIM, EMBEDDER, FOLLOW, MANIFEST, Keys, MakeBundle, OpenStore, make_subjects

from edge.config.watchlist import WatchlistConfig
from edge.demo.trial import TrialFleet
from edge.hq.broker import find_mosquitto
from edge.models import ModelSpec
from edge.watchlist.bundle import BundleSpec, EmbedderRef
from edge.watchlist.embedders import DeviceEmbedders
from edge.watchlist.sealing import Subject, seal
from edge.watchlist.store import WatchlistStore


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys(Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate(), X25519PrivateKey.generate(),
                X25519PrivateKey.generate())


@pytest.fixture(scope="session")
def make_bundle(keys: Keys) -> MakeBundle:
    """A sealed bundle; every header field can be overridden to make the bad ones."""

    def make(version: int = 1, *, subjects: list[Subject] | None = None, n: int = 3, seed: int = 0,
             watchlist_id: str = "wl", now: datetime | None = None, not_before: datetime | None = None,
             expires: datetime | None = None, hq: Ed25519PrivateKey | None = None,
             recipients: list[tuple[str, object]] | None = None, embedder_sha256: str = EMBEDDER.sha256,
             dtype: str = "float16", embedder: ModelSpec | None = None) -> bytes:
        """`embedder`: a model from the manifest (name, sha256 and dimension), instead of EMBEDDER."""
        now = now or datetime.now(timezone.utc)
        spec = BundleSpec(watchlist_id=watchlist_id, version=version, issued=now,
                          not_before=not_before or now - timedelta(minutes=1),
                          expires=expires or now + timedelta(days=7), scope="test fleet", dtype=dtype,
                          embedder=EmbedderRef(name=embedder.name, sha256=embedder.sha256, dim=embedder.dim or 0)
                          if embedder else EmbedderRef(name=EMBEDDER.name, sha256=embedder_sha256, dim=DIM))
        dim = (embedder.dim or 0) if embedder else DIM
        return seal(spec, subjects if subjects is not None else make_subjects(n, seed, now, dim=dim),
                    recipients or [("cam-01", keys.device.public_key())], hq or keys.hq)

    return make


@pytest.fixture
def open_store(keys: Keys, tmp_path: Path) -> OpenStore:
    """(Re)open the device's store in one folder, as the daemon does at each start."""

    def open_(folder: Path | None = None, config: WatchlistConfig | None = None,
              embedders: DeviceEmbedders | None = None) -> WatchlistStore:
        return WatchlistStore.open(folder or tmp_path / "watchlist", device_key=keys.device,
                                   hq_public=keys.hq.public_key(),
                                   embedders=embedders or DeviceEmbedders.from_manifest(MANIFEST, EMBEDDER.name),
                                   config=config or WatchlistConfig(follow=FOLLOW))

    return open_


@pytest.fixture
def trial_fleet(tmp_path: Path) -> TrialFleet:
    """A throwaway fleet "fr" (its devices follow list "fr") with device cam-fr; skipped without mosquitto."""
    try:
        find_mosquitto()
    except Exception as exc:
        pytest.skip(f"mosquitto not installed: {exc}")
    return TrialFleet(tmp_path / "fleet", fleet="fr").create(devices=("cam-fr",), hq_clients=("ingest", "publisher"))
