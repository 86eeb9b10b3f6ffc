"""[watchlist] section: which lists a device takes, how fresh HQ's word on them must be, and bundle limits."""

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator

from edge.config.base import StrictModel

WatchlistId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")]


class WatchlistConfig(StrictModel):
    follow: tuple[WatchlistId, ...] = Field(
        (), max_length=8,
        description="watchlist ids this device installs, highest precedence first (e.g. its own list, then its "
                    "fleet's); a bundle of any other id is refused. Empty: no bundle is installed")
    max_bundle_mb: float = Field(1024.0, gt=0, description="bundles larger than this are refused unread")
    clock_skew_s: float = Field(300.0, ge=0, le=86400,
                                description="a bundle valid from up to this far in the future is accepted")
    gallery_storage: Literal["bfloat16", "float32"] = Field(
        "bfloat16", description="bfloat16 halves gallery memory and speeds matching; scores move by ~1e-3")
    max_staleness_s: float | None = Field(
        None, gt=0, le=90 * 86400,
        description="HQ's newest signed freshness statement for the installed list may be at most this old; "
                    "older (or none), the device reports itself stale. None: freshness is not required")
    stale_stops_matching: bool = Field(False, description="while stale, match nobody (needs max_staleness_s)")

    @field_validator("follow")
    @classmethod
    def _once_each(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(v)) != len(v):
            raise ValueError("a watchlist id is listed twice: list each once, highest precedence first")
        return v

    @model_validator(mode="after")
    def _stop_needs_age(self) -> "WatchlistConfig":
        if self.stale_stops_matching and self.max_staleness_s is None:
            raise ValueError("stale_stops_matching needs max_staleness_s: say how old HQ's statement may get")
        return self

    @property
    def max_bundle_bytes(self) -> int:
        return int(self.max_bundle_mb * (1 << 20))
