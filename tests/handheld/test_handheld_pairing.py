"""`edge hq pair` and `--unpair` change what the broker allows and what device and handheld trust, live."""

from pathlib import Path

from handheld_helpers import DeviceSim, FleetFiles, pair, running_handheld, wait_until
from sample_alerts import make_alert

from edge.hq.broker import LocalBroker
from edge.keys import load_signing_public
from edge.protocol.alert import seal
from edge.protocol.pairing import HandheldPairing, load_record
from edge.protocol.topics import handheld_inbox


def test_pairing_and_unpairing_take_effect_on_broker_device_and_handheld(
        fleet_broker: tuple[FleetFiles, LocalBroker], tmp_path: Path) -> None:
    fleet, broker = fleet_broker
    cam01, cam02 = DeviceSim(fleet, "cam01"), DeviceSim(fleet, "cam02")
    try:
        with running_handheld(fleet, tmp_path) as (app, _):
            assert wait_until(lambda: app.status()["paired_devices"] == ["cam01"], 5)
            h1_public = cam01.pairing(["h1"]).handhelds[0].encryption_public()
            early = make_alert("cam02", "h1", label="Before pairing")
            assert not cam02.publish_raw(handheld_inbox("h1", "cam02"), seal(early, cam02.key, h1_public)).ok

            pair(fleet, broker, "h1", "cam02")
            assert wait_until(lambda: app.status()["paired_devices"] == ["cam01", "cam02"], 5)
            alert = make_alert("cam02", "h1", label="After pairing")
            assert all(ack.ok for ack in cam02.send(alert, cam02.pairing(["h1"])))
            assert wait_until(lambda: app.inbox.alert(alert.event_id) is not None, 5)

            pair(fleet, broker, "h1", "cam01", "--unpair")
            assert wait_until(lambda: app.status()["paired_devices"] == ["cam02"], 5)
            assert cam01.pairing([]).handhelds == []  # the device learns it has no handheld left
            late = make_alert("cam01", "h1", label="After unpairing")
            assert not cam01.publish_raw(handheld_inbox("h1", "cam01"), seal(late, cam01.key, h1_public)).ok
        kept = load_record(tmp_path / "pairing.json", HandheldPairing, load_signing_public(fleet.hq_public), "h1")
        assert kept is not None and [d.id for d in kept.devices] == ["cam02"]  # survives a handheld restart
    finally:
        cam01.stop()
        cam02.stop()
