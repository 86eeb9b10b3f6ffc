"""A thousand hostile messages at a handheld through the real broker and ACL (from a paired device's and from
HQ's certificate, some retained) are each refused and acknowledged: the next alert and pairing change still
arrive within seconds. Left unacknowledged, a hundred of them would fill the broker's in-flight window."""

import logging
import os
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from handheld_helpers import DeviceSim, FleetFiles, pair, running_handheld, wait_until
from mqtt_collector import flood
from sample_alerts import make_alert

from edge.hq.broker import LocalBroker
from edge.link.inbound import MAX_HELD
from edge.link.mqtt import MqttClient
from edge.protocol.alert import seal
from edge.protocol.topics import handheld_inbox, handheld_pairing

TOO_BIG = 1_000_100  # over the handheld's link.max_message_bytes, under the broker's max_packet_size


def test_thousand_hostile_messages_do_not_stop_alerts_or_pairing(
        fleet_broker: tuple[FleetFiles, LocalBroker], tmp_path: Path) -> None:
    fleet, broker = fleet_broker
    cam01 = DeviceSim(fleet, "cam01")
    hq = MqttClient(fleet.link("hq-ops"))
    hq.start()
    hq.wait_connected(5)
    try:
        with running_handheld(fleet, tmp_path) as (app, _):
            assert wait_until(lambda: app.status()["paired_devices"] == ["cam01"], 5)
            h1_public = cam01.pairing(["h1"]).handhelds[0].encryption_public()
            forger = Ed25519PrivateKey.generate()
            kinds = [
                lambda: b"[" * 100_000,
                lambda: b'{"schema":"edge.sealed_alert/1","event_id":' + b"9" * 5_000 + b"}",
                lambda: b"\xff\xfe" + os.urandom(32),
                lambda: b'{"schema":"edge.sealed_alert/1","epk":[1,2],"nonce":{}}',
                lambda: seal(make_alert("cam01", "h1"), forger, h1_public),  # signed by a key not cam01's
                lambda: b"true",
            ]
            inbox = handheld_inbox("h1", "cam01")
            attack = [(inbox, b"{" * TOO_BIG if n % 200 == 199 else kinds[n % len(kinds)](), n % 100 == 99)
                      for n in range(950)]
            flood(cam01.client, attack)
            flood(hq, [(handheld_pairing("h1"), kinds[n % len(kinds)](), n == 49) for n in range(50)])
            assert wait_until(lambda: sum(app.status()["refused"].values()) >= 1000, 60), app.status()["refused"]
            assert "error" not in app.status()["refused"]  # each refused for what it is

            started = time.monotonic()
            pair(fleet, broker, "h1", "cam02")  # a pairing change (replaces the retained poison record)
            alert = make_alert("cam01", "h1", label="After the flood")
            assert all(ack.ok for ack in cam01.send(alert, cam01.pairing(["h1"])))
            assert wait_until(lambda: app.inbox.alert(alert.event_id) is not None, 10)
            assert wait_until(lambda: app.status()["paired_devices"] == ["cam01", "cam02"], 10)
            assert time.monotonic() - started < 10
            refused = app.status()["refused"]
            assert refused["malformed"] > 0 and refused["bad_signature"] > 0 and refused["oversized"] > 0
    finally:
        hq.stop()
        cam01.stop()


def test_full_store_holds_a_bounded_number_of_alerts(fleet_broker: tuple[FleetFiles, LocalBroker], tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    """Alerts the full store cannot keep stay at the broker, at most MAX_HELD of them; past that they are dropped
    with a CRITICAL line, so the alert after the disk is freed still arrives. Unbounded, 100 would jam it."""
    fleet, _ = fleet_broker
    cam01 = DeviceSim(fleet, "cam01")
    try:
        with running_handheld(fleet, tmp_path) as (app, _):
            pairing = cam01.pairing(["h1"])
            with app.inbox._lock:  # SQLite's own "database or disk is full", on the real store
                pages = app.inbox._db.execute("PRAGMA page_count").fetchone()[0]
                app.inbox._db.execute(f"PRAGMA max_page_count = {pages}")
            alerts = [make_alert("cam01", "h1", label=f"Full {n}") for n in range(150)]
            for alert in alerts:
                cam01.send(alert, pairing)
            assert wait_until(lambda: app.status()["refused"].get("dropped_local_failure") == 150 - MAX_HELD, 30)
            assert sum(r.levelno == logging.CRITICAL and "DROPPED" in r.getMessage() for r in caplog.records) == 140
            with app.inbox._lock:
                app.inbox._db.execute("PRAGMA max_page_count = 1073741823")
            late = make_alert("cam01", "h1", label="After the disk was freed")
            assert all(ack.ok for ack in cam01.send(late, pairing))
            assert wait_until(lambda: app.inbox.alert(late.event_id) is not None, 10)
    finally:
        cam01.stop()
