"""HQ's flag on a device whose reported watchlist version went down, from the state messages it signed."""

from datetime import datetime, timedelta, timezone

from edge.hq.store import Event
from edge.hq.versions import version_drops
from edge.protocol.messages import WatchlistRef, WatchlistState, iso, new_event_id

T0 = datetime(2026, 5, 1, tzinfo=timezone.utc)


def state(minute: int, version: int | None, wid: str = "north") -> Event:
    ref = WatchlistRef(id=wid, version=version, sha256="a" * 64) if version is not None else None
    message = WatchlistState(event_id=new_event_id(), device="cam-01", at=T0 + timedelta(minutes=minute),
                             outcome="unchanged", installed=ref, reason="test")
    return Event(message.event_id, "watchlist_state", "cam-01", iso(message.at), iso(message.at),
                 message.model_dump_json(by_alias=True))


def test_versions_that_only_rise_are_not_flagged() -> None:
    assert version_drops([state(0, None), state(1, 1), state(2, 2), state(3, 2), state(4, 1, wid="south")]) == []


def test_a_lower_version_and_a_lost_list_are_flagged_in_time_order() -> None:
    flags = version_drops([state(9, 1), state(0, 2), state(5, None), state(1, 3)])  # received out of order
    assert len(flags) == 2
    assert flags[0].startswith("WATCHLIST LOST: at 2026-05-01T00:05:00.000Z device cam-01 reported no watchlist, "
                               "after running north version 3")
    assert flags[1].startswith("WATCHLIST VERSION WENT DOWN: at 2026-05-01T00:09:00.000Z device cam-01 runs north "
                               "version 1, below version 3 it reported at 2026-05-01T00:01:00.000Z")
