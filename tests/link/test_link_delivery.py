"""At-least-once from device outbox to broker, exactly-once into the HQ store, whatever dies in between."""

import json
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from link_helpers import Broker, wait

from edge.bench.synthetic import synthetic_event_id, synthetic_match
from edge.cli import main as edge_main
from edge.hq.ingest import Ingest, PublicKeys
from edge.hq.store import EventStore
from edge.link.mqtt import MqttClient
from edge.link.uplink import Uplink
from edge.protocol import topics
from edge.protocol.canonical import encode, sign
from edge.protocol.messages import MatchEvent, WatchlistRef, WatchlistState, new_event_id, utc_now
from edge.protocol.topics import Identity

BURST = 1000


def stored_ids(store: EventStore, kind: str = "match") -> list[str]:
    return [e.event_id for e in store.events(kind=kind, limit=10 * BURST)]


def test_burst_survives_broker_restart(broker: Broker, tmp_path: Path) -> None:
    store = EventStore.open(str(tmp_path / "hq.sqlite"))
    ingest = Ingest(broker.config("hq-ingest"), store, PublicKeys(broker.fleet.device_keys))
    ingest.start()
    ingest.wait_connected(5)
    uplink = Uplink(broker.config("device-a", outbox_sync="normal"), broker.fleet.signing["a"], fleet="north")
    uplink.start()
    uplink.wait_connected(5)
    try:
        for i in range(BURST):
            if i == BURST // 3:
                wait(lambda: store.count() > 0, 10, "the first events at HQ")
                broker.local.stop()  # SIGTERM mid-burst; mosquitto saves sessions and queued messages
                stored_while_down = store.count()
            if i == 2 * BURST // 3:
                broker.local.start()
            uplink.send_match(synthetic_match("a", i))
        audit_id = uplink.send_audit({"seq": 1, "action": "boot", "prev": "0" * 64})
        ref = WatchlistRef(id="wl", version=3, sha256="cd" * 32)
        uplink.send_watchlist_state(
            WatchlistState(
                event_id=new_event_id(), device="a", at=utc_now(), outcome="installed", installed=ref, offered=ref
            )
        )
        wait(lambda: store.count() >= BURST + 2, 30, "every event at HQ")
        assert uplink.wait_drained(5)
    finally:
        uplink.stop()
        ingest.stop()
    assert stored_while_down < BURST
    ids = stored_ids(store)
    assert len(ids) == BURST and set(ids) == {synthetic_event_id("a", i) for i in range(BURST)}
    assert stored_ids(store, "audit") == [audit_id]
    assert store.count("watchlist_state") == 1
    assert store.rejections() == []
    store.close()


@pytest.mark.parametrize("group", [None, "hq"], ids=["plain-subscription", "shared-subscription"])
def test_records_sent_while_hq_is_away_across_a_broker_restart_are_stored_once(
        broker: Broker, tmp_path: Path, group: str | None, caplog: pytest.LogCaptureFixture) -> None:
    """mosquitto 2.0 forgets an offline client's `$share/…` subscriptions when it restarts and then answers
    publishes with PUBACK 0x10 "No matching subscribers". Plain subscriptions survive in HQ's session, so the
    broker queues for HQ; with shared ones the device keeps the records in its outbox until HQ is back."""
    count = 200
    store = EventStore.open(str(tmp_path / "hq.sqlite"))
    ingest = Ingest(broker.config("hq-ingest"), store, PublicKeys(broker.fleet.device_keys), group)
    ingest.start()
    ingest.wait_connected(5)
    ingest.stop()  # HQ goes away; its persistent session stays at the broker
    broker.local.stop()
    broker.local.start()
    uplink = Uplink(broker.config("device-a", outbox_sync="normal"), broker.fleet.signing["a"])
    uplink.start()
    try:
        uplink.wait_connected(5)
        for i in range(count):
            uplink.send_match(synthetic_match("a", i))
        audit_id = uplink.send_audit({"seq": 1, "action": "boot", "prev": "0" * 64})
        ref = WatchlistRef(id="wl", version=3, sha256="cd" * 32)
        uplink.send_watchlist_state(WatchlistState(event_id=new_event_id(), device="a", at=utc_now(),
                                                   outcome="installed", installed=ref, offered=ref))
        if group is None:
            assert uplink.wait_drained(10)  # the broker took them all, for HQ's session
        else:
            held = {topics.match_events("a"), topics.audit("a"), topics.watchlist_state("a")}

            def warned() -> list[str]:
                return [t for r in caplog.records if r.levelno == logging.WARNING
                        for t in held if t in r.getMessage() and "no subscriber" in r.getMessage()]

            wait(lambda: set(warned()) == held, 10, "PUBACK 0x10 on every topic")
            assert uplink.pending == count + 2  # nothing dropped
            assert sorted(warned()) == sorted(held)  # one warning per topic, not one per message
        assert store.count() == 0
        ingest = Ingest(broker.config("hq-ingest"), store, PublicKeys(broker.fleet.device_keys), group)
        ingest.start()
        wait(lambda: store.count() >= count + 2, 15, "every record at HQ")
        assert uplink.wait_drained(5)
    finally:
        uplink.stop()
        ingest.stop()
    ids = stored_ids(store)
    assert len(ids) == count and set(ids) == {synthetic_event_id("a", i) for i in range(count)}
    assert stored_ids(store, "audit") == [audit_id] and store.count("watchlist_state") == 1
    assert store.rejections() == []
    store.close()


def test_burst_survives_device_sigkill(broker: Broker, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "hq.sqlite"
    certs = broker.fleet.certs
    hq = subprocess.Popen(
        [sys.executable, "-m", "edge", "hq", "ingest", "--broker", f"127.0.0.1:{broker.local.port}",
         "--ca", str(certs / "ca.crt"), "--cert", str(certs / "hq-ingest.crt"), "--key", str(certs / "hq-ingest.key"),
         "--db", str(db), "--device-keys", str(broker.fleet.device_keys)],
        stderr=subprocess.PIPE, text=True,
    )
    assert hq.stderr is not None
    while "connected and subscribed" not in (line := hq.stderr.readline()):
        assert line, "edge hq ingest exited before subscribing"
    config = broker.config("device-a", outbox_sync="normal")
    (tmp_path / "device.json").write_text(config.model_dump_json())

    def device(first: int) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "edge.bench.link_device", "--config", str(tmp_path / "device.json"),
             "--key", str(broker.fleet.signing["a"]), "--count", str(BURST), "--first", str(first)],
            stdout=subprocess.PIPE, text=True,
        )

    try:
        first = device(0)
        assert first.stdout is not None
        assert first.stdout.readline().strip() == "ready"
        last = -1
        while last < BURST // 2:
            last = int(first.stdout.readline())
        first.send_signal(signal.SIGKILL)  # mid-burst, mid-publish, possibly mid-transaction
        first.wait()
        wait(db.exists, 10, "the HQ store")
        store = EventStore.open(str(db))
        # The broker publishes the killed device's will: HQ sees it offline.
        wait(lambda: [s.online for s in store.statuses() if s.device == "a"] == [False], 10, "the device's will")
        assert store.count() < BURST

        second = device(last + 1)  # the killed run may have committed last+1 too: a duplicate HQ must absorb
        out, _ = second.communicate(timeout=60)
        assert out.splitlines()[-1] == "drained"
        wait(lambda: store.count() >= BURST, 30, "every event at HQ")
        ids = stored_ids(store)
        assert len(ids) == BURST and set(ids) == {synthetic_event_id("a", i) for i in range(BURST)}
        assert [s.online for s in store.statuses() if s.device == "a"] == [False]  # clean stop said offline
        store.close()
    finally:
        hq.send_signal(signal.SIGTERM)
        _, err = hq.communicate(timeout=20)
    assert hq.returncode == 0, err

    capsys.readouterr()
    assert edge_main(["hq", "events", "--db", str(db), "--kind", "match", "--json", "--limit", str(2 * BURST)]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(printed) == BURST and all(p["signature"] for p in printed)


def test_ingest_refuses_malformed_forged_and_misaddressed_payloads(broker: Broker, tmp_path: Path) -> None:
    store = EventStore.open(str(tmp_path / "hq.sqlite"))
    ingest = Ingest(broker.config("hq-ingest"), store, PublicKeys(broker.fleet.device_keys))
    ingest.start()
    ingest.wait_connected(5)
    device = MqttClient(broker.config("device-a"))
    device.start()
    device.wait_connected(5)
    key_a, key_b = broker.fleet.signing_key("a"), broker.fleet.signing_key("b")

    def event(device_id: str = "a", **changes: object) -> dict[str, object]:
        body = synthetic_match(device_id, 0).model_copy(update={"event_id": new_event_id()}).body()
        body.update(changes)
        return body

    tampered = sign(event(), key_a)
    tampered["score"] = 0.99
    bad = [
        b"\xff not json",
        b"[1, 2]",
        b'{"schema": "edge.unknown/9"}',
        encode(sign(event(extra_field=1), key_a)),
        encode(event()),  # unsigned
        encode(sign(event(), key_b)),  # signed by another device's key
        encode(tampered),
        encode(sign(event("b"), key_a)),  # claims to be device b
        encode(sign(WatchlistState(event_id=new_event_id(), device="a", at=utc_now(), outcome="refused").body(),
                    key_a)),
    ]
    good = sign(event(), key_a)
    try:
        for payload in bad:
            assert device.publish_wait(topics.match_events("a"), payload, False, 5).ok
        assert device.publish_wait(topics.match_events("a"), encode(good), False, 5).ok
        wait(lambda: store.count() == 1 and len(store.rejections()) == len(bad), 10, "HQ to sort the payloads")
    finally:
        device.stop()
        ingest.stop()
    assert stored_ids(store) == [good["event_id"]]
    MatchEvent.model_validate_json(store.events()[0].payload)
    reasons = [r.reason for r in store.rejections()]
    for expected, reason in zip(
        ["not UTF-8 JSON", "expected an object", "unknown schema", "extra_field", "signature does not verify",
         "signature does not verify", "signature does not verify", "names device 'b'",
         "edge.watchlist_state/1 payload"],
        reasons, strict=True,
    ):
        assert expected in reason
    store.close()


def test_refused_publish_stays_in_the_outbox_until_the_broker_accepts_it(broker: Broker, tmp_path: Path) -> None:
    store = EventStore.open(str(tmp_path / "hq.sqlite"))
    ingest = Ingest(broker.config("hq-ingest"), store, PublicKeys(broker.fleet.device_keys))
    ingest.start()
    ingest.wait_connected(5)
    del broker.registry.devices["a"]  # device a loses its rights: the broker answers PUBACK "Not authorized"
    broker.update_acl()
    uplink = Uplink(broker.config("device-a"), broker.fleet.signing["a"])
    uplink.start()
    try:
        uplink.wait_connected(5)
        for i in range(20):
            uplink.send_match(synthetic_match("a", i))
        time.sleep(1.0)
        assert uplink.pending == 20 and store.count() == 0
        broker.registry.add(Identity("device", "a"))
        broker.update_acl()
        wait(lambda: store.count() == 20, 10, "the retried events at HQ")
        assert uplink.wait_drained(5)
    finally:
        uplink.stop()
        ingest.stop()
    store.close()
