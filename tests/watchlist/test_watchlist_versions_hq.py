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


def received(minute: float, device_minute: int, version: int) -> Event:
    """A report the device dated `device_minute` (its clock) and HQ received at `minute` (HQ's clock)."""
    event = state(device_minute, version)
    return Event(event.event_id, event.kind, event.device, event.occurred_at,
                 iso(T0 + timedelta(minutes=minute)), event.payload)


def test_a_drop_is_flagged_when_the_wiped_device_clock_went_back_too() -> None:
    """A reflashed device lost its versions and its saved time: it dates its reports a month back (where the old
    bundle is still valid to it). HQ received them after the higher ones: that is the order that counts."""
    flags = version_drops([received(0, 0, 2), received(1, 1, 3), received(60, -30 * 24 * 60, 1)])
    assert len(flags) == 1 and flags[0].startswith("WATCHLIST VERSION WENT DOWN: at 2026-04-01T00:00:00.000Z device "
                                                   "cam-01 runs north version 1, below version 3"), flags


def test_an_outbox_backlog_taken_in_any_order_by_several_workers_is_not_a_drop() -> None:
    backlog = [received(60 + 0.001 * i, minute, version) for i, (minute, version) in enumerate([(3, 3), (2, 2)])]
    assert version_drops([received(0, 0, 1), *backlog]) == []
