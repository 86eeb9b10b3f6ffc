"""HQ's freshness statement for one watchlist (`edge.watchlist_timestamp/1`), as TUF's timestamp role.

A bundle says what a list is; it cannot say that it is still the newest one. HQ therefore re-signs, often
(`edge watchlist timestamp`, e.g. every 15 minutes), a short statement: "the current version of watchlist
<id> is <version>, bundle sha256 <h>, as of <issued_at>, good until <expires>". It is published retained
beside the list's bundle (`<bundle prefix>/timestamp`), signed with the HQ key the devices pin for bundles.
A device keeps the newest statement per list it follows and refuses an older or equal one (a replay cannot
turn its clock back); from the statement's age it says whether its own view is fresh, and from its version
whether it is behind (docs/watchlist-bundle.md, "Which lists a device takes, and how fresh they are").
"""

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import AwareDatetime, Field, model_validator

from edge.keys import key_id
from edge.protocol.canonical import WireModel, encode, load_model, sign, verify
from edge.protocol.messages import Sha256Hex
from edge.protocol.refused import Refused
from edge.watchlist.entries import SUBJECT_ID_PATTERN

TIMESTAMP_SCHEMA = "edge.watchlist_timestamp/1"
TIMESTAMP_LEVEL = "timestamp"  # the topic level under a bundle prefix: `<prefix>/timestamp`
MAX_VALIDITY = timedelta(days=7)  # short-lived: HQ re-signs; a statement cannot vouch for longer than this


class WatchlistTimestamp(WireModel):
    """HQ's signed word on the current version of one watchlist, at one time."""

    schema_: Literal["edge.watchlist_timestamp/1"] = Field(TIMESTAMP_SCHEMA, alias="schema")
    watchlist_id: str = Field(pattern=SUBJECT_ID_PATTERN)
    version: int = Field(ge=1, lt=2**63, description="the version devices should have installed")
    sha256: Sha256Hex = Field(description="sha256 of that version's bundle file")
    issued_at: AwareDatetime = Field(description="must increase from one statement to the next")
    expires: AwareDatetime
    signer: Sha256Hex = Field(description="key id of the HQ key that signed")
    signature: str | None = None

    @model_validator(mode="after")
    def _short_lived(self) -> "WatchlistTimestamp":
        if not self.issued_at < self.expires <= self.issued_at + MAX_VALIDITY:
            raise ValueError(f"expires must follow issued_at by at most {MAX_VALIDITY.days} days")
        return self


def timestamp_topic(bundle_prefix: str) -> str:
    """Where the statement for the list published under `bundle_prefix` is retained."""
    return f"{bundle_prefix}/{TIMESTAMP_LEVEL}"


def sign_timestamp(watchlist_id: str, version: int, sha256: str, hq_key: Ed25519PrivateKey, issued_at: datetime,
                   valid_for: timedelta) -> bytes:
    """HQ side: the signed statement, as published."""
    statement = WatchlistTimestamp(watchlist_id=watchlist_id, version=version, sha256=sha256, issued_at=issued_at,
                                   expires=issued_at + valid_for, signer=key_id(hq_key.public_key()))
    return encode(sign(statement.body(), hq_key))


def read_timestamp(data: bytes, hq_public: Ed25519PublicKey, now: datetime, skew: timedelta,
                   latest: Mapping[str, WatchlistTimestamp]) -> WatchlistTimestamp | None:
    """Device side: the verified statement, or None when it is the very one in use (delivered again).

    Refuses (Refused) anything malformed, not signed by the pinned HQ key, dated in the future beyond the
    clock skew, or not newer than the newest one accepted for the same list (`latest`, by watchlist id).
    """
    raw, statement = load_model(data, WatchlistTimestamp, f"an {TIMESTAMP_SCHEMA} statement")
    if statement.signer != key_id(hq_public) or not verify(raw, hq_public):
        raise Refused("bad_signature", f"freshness statement for {statement.watchlist_id} is not signed by the "
                                       "pinned HQ key: ignored")
    current = latest.get(statement.watchlist_id)
    if current is not None and statement == current:
        return None
    if statement.issued_at - skew > now:
        raise Refused("not_yet_valid", f"freshness statement for {statement.watchlist_id} is issued "
                      f"{statement.issued_at.isoformat()}, device time is {now.isoformat()}: check the device clock")
    if current is not None and statement.issued_at <= current.issued_at:
        raise Refused("replayed", f"freshness statement for {statement.watchlist_id} issued "
                      f"{statement.issued_at.isoformat()} is not newer than the one in use "
                      f"({current.issued_at.isoformat()}): a replay or reordering, ignored")
    return statement


def statement_bytes(statement: WatchlistTimestamp) -> bytes:
    """The statement as it was signed and sent (kept on disk, verified again at start)."""
    return encode(statement.body())
