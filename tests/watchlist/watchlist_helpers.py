"""Shared helpers of the watchlist tests: real keys, real bundles with synthetic embeddings."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from edge.models import Manifest
from edge.watchlist.entries import WatchlistEntry
from edge.watchlist.sealing import Subject
from edge.watchlist.store import WatchlistStore

MANIFEST = Manifest.load()
EMBEDDER = MANIFEST.spec("mobilefacenet_192")
OTHER_EMBEDDER = MANIFEST.spec("faceres_1024")
DIM = 192
FOLLOW = ("wl",)  # the id make_bundle gives, the one the test devices follow

MakeBundle = Callable[..., bytes]
OpenStore = Callable[..., WatchlistStore]


@dataclass(frozen=True)
class Keys:
    hq: Ed25519PrivateKey
    other_hq: Ed25519PrivateKey
    device: X25519PrivateKey
    other_device: X25519PrivateKey


def unit_rows(n: int, seed: int, dim: int = DIM) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def make_subjects(n: int, seed: int = 0, now: datetime | None = None,
                  entry_expires: list[datetime] | None = None, rows_per_subject: int = 1,
                  thumbnails: bool = False, dim: int = DIM) -> list[Subject]:
    """Subjects S-<seed>-<i>; subject i's rows are unit_rows(n * rows_per_subject, seed)[i*rows : (i+1)*rows]."""
    now = now or datetime.now(timezone.utc)
    emb = unit_rows(n * rows_per_subject, seed, dim).reshape(n, rows_per_subject, dim)
    return [
        Subject(
            WatchlistEntry(subject_id=f"S-{seed}-{i}", label=f"Person {i}", category="wanted",
                           case_reference=f"CASE-{i}", legal_basis="Court order 17/2025", approver="Insp. Kaur",
                           added=now, expires=entry_expires[i] if entry_expires else now + timedelta(days=30)),
            emb[i], bytes([0xFF, 0xD8, i % 256, 0xFF, 0xD9]) if thumbnails else None)
        for i in range(n)
    ]
