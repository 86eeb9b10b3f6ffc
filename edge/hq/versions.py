"""HQ's check on the watchlist versions a device says it runs: a version that went down is flagged.

A device's rollback protection lives in its state folder. Wiped (a reflashed card, a device swapped), it
would take an older retained bundle as new; it then says so itself: every watchlist state message it signs
names the list and version installed. HQ holds those messages (`edge hq ingest`), so a version lower than
one the same device reported before, or no list after one, shows here and in `edge hq report`.
"""

import json
from collections.abc import Iterable

from pydantic import ValidationError

from edge.hq.store import Event
from edge.protocol.messages import WatchlistState, iso


def version_drops(events: Iterable[Event]) -> list[str]:
    """Flags, oldest first, for one device's ingested `watchlist_state` events (any order)."""
    states: list[WatchlistState] = []
    for event in events:
        try:
            states.append(WatchlistState.model_validate(json.loads(event.payload)))
        except (ValidationError, ValueError):
            continue  # ingest verified it; an unreadable one says nothing about versions
    flags: list[str] = []
    highest: dict[str, tuple[int, str]] = {}  # id -> (highest version reported, when)
    had: str | None = None  # what the previous message said was installed
    for state in sorted(states, key=lambda s: s.at):
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
