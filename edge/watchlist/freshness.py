"""The device's side of HQ's freshness statements: keep the newest per list, judge how fresh and how current
the installed list is.

The statements themselves (format, signing, the replay rule) are `timestamp`'s; this module keeps them in
`timestamps.json` beside the installed bundle (verified again at start) and turns them, with the
configuration, into the `FreshnessInfo` the store's state reports: stale when the newest statement for the
installed list is older than `watchlist.max_staleness_s` (or none came, or it expired), behind when a
statement names a newer version than the device has of a list it follows at or above the installed one's
precedence.
"""

import json
import logging
from datetime import datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge.config.watchlist import WatchlistConfig
from edge.fsio import write_atomic
from edge.protocol.refused import Refused
from edge.watchlist.bundle import BundleHeader
from edge.watchlist.state import FreshnessInfo
from edge.watchlist.timestamp import WatchlistTimestamp, read_timestamp, statement_bytes

log = logging.getLogger(__name__)

TIMESTAMPS_FILE = "timestamps.json"


class Freshness:
    """The newest verified statement per followed list, on disk in `folder` (not thread-safe: the store locks)."""

    def __init__(self, folder: Path, hq_public: Ed25519PublicKey, config: WatchlistConfig) -> None:
        self._path = folder / TIMESTAMPS_FILE
        self._hq_public = hq_public
        self._config = config
        self.latest: dict[str, WatchlistTimestamp] = {}

    def load(self, now: datetime) -> None:
        """Read the statements kept at the last run; one that no longer verifies is dropped, saying why."""
        try:
            kept = json.loads(self._path.read_bytes()) if self._path.exists() else {}
        except (OSError, ValueError) as exc:
            log.error("%s is unreadable (%s): waiting for HQ's next freshness statements", self._path, exc)
            return
        for text in kept.values() if isinstance(kept, dict) else ():
            try:
                statement = read_timestamp(str(text).encode(), self._hq_public, now, self._skew, {})
            except Refused as exc:
                log.error("dropped a kept freshness statement: %s", exc)
                continue
            if statement is not None and statement.watchlist_id in self._config.follow:
                self.latest[statement.watchlist_id] = statement

    def accept(self, data: bytes, now: datetime) -> WatchlistTimestamp | None:
        """Verify and keep a statement; None when it is the one already kept. Raises Refused saying why not."""
        statement = read_timestamp(data, self._hq_public, now, self._skew, self.latest)
        if statement is None:
            return None
        if statement.watchlist_id not in self._config.follow:
            raise Refused("not_followed", f"freshness statement for {statement.watchlist_id}, a list this device "
                                          "does not follow (watchlist.follow): ignored")
        self.latest[statement.watchlist_id] = statement
        try:
            write_atomic(self._path, json.dumps({k: statement_bytes(v).decode() for k, v in self.latest.items()}))
        except OSError as exc:  # kept in memory; HQ's next statement tries the disk again
            log.error("cannot write %s: %s", self._path, exc.strerror)
        return statement

    def floor(self, watchlist_id: str) -> WatchlistTimestamp | None:
        """The newest statement for a list: a bundle older than the version it names is superseded."""
        return self.latest.get(watchlist_id)

    def judge(self, installed: BundleHeader | None, highest: dict[str, int], now: datetime) -> FreshnessInfo | None:
        """How fresh and how current the device's view is; None when there is nothing to judge."""
        cfg = self._config
        statement = self.latest.get(installed.watchlist_id) if installed else None
        if installed is None or (statement is None and cfg.max_staleness_s is None and not self.latest):
            return None
        problems: list[str] = []
        stale = False
        if statement is None:
            stale = cfg.max_staleness_s is not None
            if stale:
                problems.append(f"no freshness statement from HQ for {installed.watchlist_id} yet "
                                f"(watchlist.max_staleness_s = {cfg.max_staleness_s:g})")
        else:
            age = (now - statement.issued_at).total_seconds()
            if cfg.max_staleness_s is not None and age > cfg.max_staleness_s:
                stale = True
                problems.append(f"HQ's newest freshness statement for {installed.watchlist_id} is {age:.0f} s old, "
                                f"over watchlist.max_staleness_s = {cfg.max_staleness_s:g}: is HQ publishing "
                                "`edge watchlist timestamp`, and does this device reach the broker?")
            elif statement.expires <= now:
                stale = True
                problems.append(f"HQ's newest freshness statement for {installed.watchlist_id} expired at "
                                f"{statement.expires.isoformat()}")
        behind = self._behind(installed, highest)
        problems += behind
        stopped = stale and cfg.stale_stops_matching
        if stopped:
            problems.append("matching stopped until a fresh statement arrives (watchlist.stale_stops_matching)")
        if problems:
            message = "; ".join(problems)
        else:
            message = f"fresh as of {statement.issued_at.isoformat()}" if statement else "no statement required"
        return FreshnessInfo(statement_issued_at=statement.issued_at if statement else None,
                             statement_version=statement.version if statement else None,
                             stale=stale, behind=bool(behind), matching_stopped=stopped, message=message)

    def _behind(self, installed: BundleHeader, highest: dict[str, int]) -> list[str]:
        """Lists at or above the installed one's precedence of which HQ says a newer version exists."""
        follow = self._config.follow
        upto = follow.index(installed.watchlist_id) + 1 if installed.watchlist_id in follow else len(follow)
        return [f"HQ says {wid} is at version {s.version}, this device has "
                f"{highest[wid] if highest.get(wid) else 'none'}: it is behind"
                for wid in follow[:upto] if (s := self.latest.get(wid)) is not None and s.version > highest.get(wid, 0)]

    @property
    def _skew(self) -> timedelta:
        return timedelta(seconds=self._config.clock_skew_s)
