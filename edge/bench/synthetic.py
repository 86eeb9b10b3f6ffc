"""Synthetic match events for the link benchmark and the tests: valid, signed-ready, with deterministic ids.

A restarted sender re-sends event i under the same id, which is how the tests see that nothing was lost or
stored twice across a kill or a broker restart.
"""

import uuid

from edge.protocol.messages import Box, MatchEvent, ModelHashes, WatchlistRef, utc_now

_NAMESPACE = uuid.UUID("6f1c3a52-8f0e-4c4e-9a51-1d5f0b8f2a10")
_HASH = "ab" * 32


def synthetic_event_id(device: str, index: int) -> str:
    """Deterministic event id, so a restarted sender re-sends index i under the same id."""
    return str(uuid.uuid5(_NAMESPACE, f"{device}/{index}"))


def synthetic_match(device: str, index: int) -> MatchEvent:
    return MatchEvent(
        event_id=synthetic_event_id(device, index), device=device, camera="cam0", track=index,
        observed_at=utc_now(), subject_id=f"subject-{index % 50}", label="Test Subject", category="test",
        case_ref="BENCH-0", score=0.71, threshold=0.5, threshold_policy="fixed (match.threshold)",
        margin=0.2, probe_quality=0.9,
        box=Box(x1=10, y1=20, x2=110, y2=140), watchlist=WatchlistRef(id="bench", version=1, sha256=_HASH),
        models=ModelHashes(detector=_HASH, embedder=_HASH),
    )
