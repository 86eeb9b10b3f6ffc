"""HQ's check on the watchlist versions a device says it runs: a version that went down is flagged.

A device's rollback protection lives in its state folder. Wiped (a reflashed card, a device swapped), it
would take an older retained bundle as new; it then says so itself: every watchlist state message it signs
names the list and version installed. HQ holds those messages (`edge hq ingest`), so a version lower than
one the same device reported before, or no list after one, shows here and in `edge hq report`.
"""

import json
from collections.abc import Iterable
from datetime import datetime

from pydantic import ValidationError

from edge.hq.store import Event
from edge.protocol.messages import WatchlistState, iso

BURST_S = 5.0  # reports received closer together than this are one burst, ordered by the device's clock


def version_drops(events: Iterable[Event]) -> list[str]:
    """Flags, oldest first, for one device's ingested `watchlist_state` events (any order).

    Ordered by when HQ received them, not by the device's own clock: a wiped device's clock may be wiped too
    (a Jetson without its saved time starts in the past), and its reports would then sort before the older,
    higher ones and hide the drop. Reports HQ received within BURST_S of each other (an outbox sent after an
    outage, maybe taken by several ingest workers in any order) are ordered by the device's clock among
    themselves."""
    received: list[tuple[datetime, WatchlistState]] = []
    for event in events:
        try:
            received.append((_when(event.received_at), WatchlistState.model_validate(json.loads(event.payload))))
        except (ValidationError, ValueError):
            continue  # ingest verified it; an unreadable one says nothing about versions
    ordered: list[WatchlistState] = []
    burst: list[WatchlistState] = []
    last: datetime | None = None
    for at, state in sorted(received, key=lambda r: r[0]):
        if last is not None and (at - last).total_seconds() > BURST_S:
            ordered += sorted(burst, key=lambda s: s.at)
            burst = []
        burst.append(state)
        last = at
    ordered += sorted(burst, key=lambda s: s.at)
    flags: list[str] = []
    highest: dict[str, tuple[int, str]] = {}  # id -> (highest version reported, when)
    had: str | None = None  # what the previous message said was installed
    for state in ordered:
        ref, at = state.installed, iso(state.at)
        if ref is None:
            if had is not None:
                flags.append(f"WATCHLIST LOST: at {at} device {state.device} reported no watchlist, after running "
                             f"{had}: its state folder was wiped or its list became unusable ({state.reason})")
            had = None
            continue
        best = highest.get(ref.id)
        if best is not None and ref.version < best[0]:
            flags.append(f"WATCHLIST VERSION WENT DOWN: at {at} device {state.device} runs {ref.id} version "
                         f"{ref.version}, below version {best[0]} it reported at {best[1]}: its rollback state was "
                         "lost or an old bundle replayed; publish the current bundle and check the device")
        if best is None or ref.version > best[0]:
            highest[ref.id] = (ref.version, at)
        had = f"{ref.id} version {ref.version}"
    return flags


def _when(text: str) -> datetime:
    """An ISO 8601 time as HQ stores it (`messages.iso`: ...Z)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
