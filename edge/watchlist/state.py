"""The watchlist store's state report: what is installed and the last refusal, kept in state.json.

The records only; `store` holds the install and rollback rules that write them. The daemon turns them into
the wire message HQ receives (`edge.protocol.messages.WatchlistState`), hence the distinct names here.
"""

from typing import Literal

from pydantic import AwareDatetime, ConfigDict, Field

from edge.config.base import StrictModel
from edge.watchlist.bundle import EmbedderRef, RefusalCode


class InstalledInfo(StrictModel):
    """The installed watchlist, as reported to HQ."""

    model_config = ConfigDict(frozen=True)

    watchlist_id: str
    version: int
    sha256: str = Field(description="sha256 of the bundle file")
    entry_count: int
    embedding_count: int
    scope: str
    issued: AwareDatetime
    not_before: AwareDatetime
    expires: AwareDatetime
    embedder: EmbedderRef
    installed_at: AwareDatetime


class BundleRefusal(StrictModel):
    """Why the last offered bundle was not installed: the record a BundleRefused leaves in the state."""

    model_config = ConfigDict(frozen=True)

    code: RefusalCode
    message: str
    at: AwareDatetime
    sha256: str = Field(description="sha256 of the refused bytes")
    watchlist_id: str | None = None
    version: int | None = None


class FreshnessInfo(StrictModel):
    """What HQ's freshness statements say of the installed list (`freshness.Freshness.judge`)."""

    model_config = ConfigDict(frozen=True)

    statement_issued_at: AwareDatetime | None = Field(None, description="of the newest statement for the list")
    statement_version: int | None = Field(None, description="the version that statement names as current")
    stale: bool = Field(description="no statement, or the newest is older than watchlist.max_staleness_s")
    behind: bool = Field(description="a statement names a newer version than the device has")
    matching_stopped: bool = Field(description="stale, and configured to match nobody then")
    message: str


class StoreState(StrictModel):
    """The device's watchlist state: persisted in state.json and published to HQ.

    `stale` and `behind` are `active` lists that HQ's freshness statements put in doubt (`freshness`).
    """

    status: Literal["none", "active", "expired", "unusable", "stale", "behind"]
    message: str
    installed: InstalledInfo | None = None
    last_refusal: BundleRefusal | None = None
    highest: dict[str, int] = Field(default_factory=dict, description="highest version ever installed, per id")
    freshness: FreshnessInfo | None = None


class InstallResult(StrictModel):
    """What an install did, and the state after it."""

    outcome: Literal["installed", "unchanged", "refused"]
    refusal: BundleRefusal | None = None
    state: StoreState
