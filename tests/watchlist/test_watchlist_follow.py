"""Which lists a device takes (watchlist.follow) and HQ's freshness statements, on the store with real bundles.

The attack: any valid HQ-signed bundle of another id addressed to the device used to replace the installed
list (versions counted per id), and then a genuine newer one could be locked out. Now a list the device does
not follow is refused, one ranked lower cannot displace a higher one, and HQ's signed statements say when the
device's view is stale or behind.
"""

import hashlib
import json
import shutil
from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError
from watchlist_helpers import Keys, MakeBundle, OpenStore

from edge.config.watchlist import WatchlistConfig
from edge.protocol.refused import Refused
from edge.watchlist.timestamp import sign_timestamp

T0 = datetime.now(timezone.utc)


def statement(keys: Keys, bundle: bytes, at: datetime, wid: str = "district-7", version: int | None = None,
              valid_for: timedelta = timedelta(hours=1), hq=None) -> bytes:
    header = json.loads(bundle[12: 12 + int.from_bytes(bundle[8:12], "big")])
    return sign_timestamp(wid, version or header["version"], hashlib.sha256(bundle).hexdigest(), hq or keys.hq,
                          at, valid_for)


def test_a_valid_bundle_of_another_id_neither_replaces_the_list_nor_locks_out_the_next(
        open_store: OpenStore, make_bundle: MakeBundle) -> None:
    store = open_store(config=WatchlistConfig(follow=("district-7",)))
    assert store.install(make_bundle(1, watchlist_id="district-7")).outcome == "installed"
    other = store.install(make_bundle(9, watchlist_id="district-9", seed=1))
    assert other.outcome == "refused" and other.refusal.code == "not_followed"
    assert other.refusal.watchlist_id == "district-9" and "watchlist.follow" in other.refusal.message
    assert store.current.header.watchlist_id == "district-7" and store.current.header.version == 1
    assert other.state.highest == {"district-7": 1}, "the refused id leaves no version behind"
    assert store.install(make_bundle(2, watchlist_id="district-7", seed=2)).outcome == "installed"
    reopened = open_store(config=WatchlistConfig(follow=("district-7",)))
    assert (reopened.current.header.watchlist_id, reopened.current.header.version) == ("district-7", 2)
    assert reopened.state().highest == {"district-7": 2}


def test_a_device_that_follows_nothing_says_what_to_do(open_store: OpenStore, make_bundle: MakeBundle) -> None:
    refused = open_store(config=WatchlistConfig()).install(make_bundle(1, watchlist_id="district-7")).refusal
    assert refused.code == "not_followed"
    assert 'follow = ["district-7"]' in refused.message and "edge.toml" in refused.message


def test_precedence_a_lower_list_waits_until_the_higher_one_expires(open_store: OpenStore,
                                                                    make_bundle: MakeBundle) -> None:
    store = open_store(config=WatchlistConfig(follow=("cam-op", "district-7")))
    assert store.install(make_bundle(1, watchlist_id="district-7")).outcome == "installed"
    own = make_bundle(1, watchlist_id="cam-op", seed=1, expires=T0 + timedelta(hours=2))
    assert store.install(own).outcome == "installed", "the device's own list ranks above the fleet's"
    lower = store.install(make_bundle(2, watchlist_id="district-7", seed=2))
    assert lower.refusal.code == "lower_precedence" and store.current.header.watchlist_id == "cam-op"
    assert lower.state.highest == {"district-7": 1, "cam-op": 1}
    later = T0 + timedelta(hours=3)  # the operation's list has expired: the fleet's takes over
    assert store.install(make_bundle(2, watchlist_id="district-7", seed=2, now=later - timedelta(minutes=5)),
                         now=later).outcome == "installed"


def test_follow_is_checked_when_the_config_is_read() -> None:
    with pytest.raises(ValidationError, match="listed twice"):
        WatchlistConfig(follow=("a", "a"))
    with pytest.raises(ValidationError, match="needs max_staleness_s"):
        WatchlistConfig(follow=("a",), stale_stops_matching=True)
    with pytest.raises(ValidationError):
        WatchlistConfig(follow=("bad id",))


def test_statements_replays_forgeries_and_unfollowed_lists_are_refused(open_store: OpenStore, keys: Keys,
                                                                        make_bundle: MakeBundle) -> None:
    store = open_store(config=WatchlistConfig(follow=("district-7",)))
    v1 = make_bundle(1, watchlist_id="district-7")
    store.install(v1)
    first = statement(keys, v1, T0)
    assert store.accept_timestamp(first, now=T0).version == 1
    assert store.accept_timestamp(first, now=T0) is None, "the same statement again (retained) is no news"
    assert store.accept_timestamp(statement(keys, v1, T0 + timedelta(minutes=5)), now=T0 + timedelta(minutes=5))
    for data, code in [(first, "replayed"), (statement(keys, v1, T0 + timedelta(minutes=9), hq=keys.other_hq),
                                               "bad_signature"),
                       (statement(keys, v1, T0 + timedelta(minutes=9), wid="district-9"), "not_followed"),
                       (statement(keys, v1, T0 + timedelta(hours=1)), "not_yet_valid"),
                       (b"[" * 100_000, "malformed"), (b'{"version": ' + b"9" * 5000 + b"}", "malformed")]:
        with pytest.raises(Refused) as refused:
            store.accept_timestamp(data, now=T0 + timedelta(minutes=6))
        assert refused.value.code == code
    kept = open_store(config=WatchlistConfig(follow=("district-7",)))
    assert kept.state(T0 + timedelta(minutes=6)).freshness.statement_issued_at == T0 + timedelta(minutes=5)


def test_stale_statement_makes_the_device_say_so_and_stop_matching_when_configured(
        open_store: OpenStore, keys: Keys, make_bundle: MakeBundle) -> None:
    config = WatchlistConfig(follow=("district-7",), max_staleness_s=600, stale_stops_matching=True)
    store = open_store(config=config)
    v1 = make_bundle(1, watchlist_id="district-7")
    store.install(v1)
    assert store.state(T0).status == "stale" and "no freshness statement" in store.state(T0).message
    assert store.matching_stopped(T0)
    store.accept_timestamp(statement(keys, v1, T0), now=T0)
    assert store.state(T0 + timedelta(minutes=9)).status == "active" and not store.matching_stopped(T0)
    late = store.state(T0 + timedelta(minutes=11))
    assert late.status == "stale" and late.freshness.stale and late.freshness.matching_stopped
    assert "over watchlist.max_staleness_s = 600" in late.message and store.matching_stopped(T0 + timedelta(minutes=11))
    warn_only = open_store(config=config.model_copy(update={"stale_stops_matching": False}))
    assert warn_only.state(T0 + timedelta(minutes=11)).status == "stale"
    assert not warn_only.matching_stopped(T0 + timedelta(minutes=11))


def test_statement_of_a_newer_version_says_behind_and_bars_an_old_bundle_after_a_wipe(
        open_store: OpenStore, keys: Keys, make_bundle: MakeBundle, tmp_path) -> None:
    config = WatchlistConfig(follow=("district-7",))
    store = open_store(config=config)
    v1, v2 = make_bundle(1, watchlist_id="district-7"), make_bundle(2, watchlist_id="district-7", seed=1)
    store.install(v1)
    store.accept_timestamp(statement(keys, v2, T0), now=T0)
    behind = store.state(T0)
    assert behind.status == "behind" and "HQ says district-7 is at version 2, this device has 1" in behind.message
    assert store.install(v2).outcome == "installed" and store.state(T0).status == "active"
    shutil.rmtree(tmp_path / "watchlist")  # the state folder wiped: versions.json and the statements gone
    wiped = open_store(config=config)
    assert wiped.install(v1).outcome == "installed", "without HQ's word an old list still gets in (HQ flags it)"
    assert wiped.state().installed.version == 1, "and the device reports the version it runs"
    shutil.rmtree(tmp_path / "watchlist")
    wiped = open_store(config=config)
    wiped.accept_timestamp(statement(keys, v2, T0), now=T0)  # the retained statement arrives first
    refused = wiped.install(v1).refusal
    assert refused.code == "superseded" and "names version 2" in refused.message
