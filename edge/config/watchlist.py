"""[watchlist] section: limits a device applies to watchlist bundles it is asked to install."""

from typing import Literal

from pydantic import Field

from edge.config.base import StrictModel


class WatchlistConfig(StrictModel):
    max_bundle_mb: float = Field(1024.0, gt=0, description="bundles larger than this are refused unread")
    clock_skew_s: float = Field(300.0, ge=0, le=86400,
                                description="a bundle valid from up to this far in the future is accepted")
    gallery_storage: Literal["bfloat16", "float32"] = Field(
        "bfloat16", description="bfloat16 halves gallery memory and speeds matching; scores move by ~1e-3")

    @property
    def max_bundle_bytes(self) -> int:
        return int(self.max_bundle_mb * (1 << 20))
