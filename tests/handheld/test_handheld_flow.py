"""The whole loop with the real parts the daemon and HQ run: the device's Uplink (pairing record in, sealed
alerts out through its outbox, decisions in, audit records out), `edge handheld`'s core with two officers,
HQ ingest (match events, audit records, signed decisions) and `edge hq report` with the two-officer rule."""

import json
import queue
import threading
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from handheld_helpers import PINS, FleetFiles, running_handheld, wait_until
from sample_alerts import jpeg

from edge.audit.decisions import audit_body
from edge.audit.log import AuditLog
from edge.audit.records import AlertBody, CountersBody, PeriodStartBody, PeriodStopBody
from edge.bench.synthetic import synthetic_match
from edge.cli import main as edge_main
from edge.config.embedder import DEFAULT_EMBEDDER
from edge.config.handheld import HandheldFile
from edge.config.match import MatchConfig
from edge.hq.store import EventStore
from edge.keys import load_signing_private, load_signing_public
from edge.link.mqtt import MqttClient
from edge.link.uplink import Uplink
from edge.models import ENGINES_DIR, Manifest
from edge.protocol.adjudication import Adjudication, verify_adjudication
from edge.protocol.messages import utc_now
from edge.protocol.pairing import DevicePairing, read_record
from edge.protocol.topics import adjudications
from edge.watchlist.calibration import load_policy

HASH = "ab" * 32
POLICY = load_policy(MatchConfig(), ENGINES_DIR, DEFAULT_EMBEDDER,
                     Manifest.load(ENGINES_DIR).spec(DEFAULT_EMBEDDER).sha256)


def report(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    capsys.readouterr()
    assert edge_main(["hq", "report", *argv]) == 0
    return capsys.readouterr().out


def test_alert_to_handheld_decisions_to_device_audit_and_hq_report(
        fleet: FleetFiles, hq_store: EventStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    device_key = load_signing_private(fleet.keys / "device-cam01" / "device_signing.key")
    hq_public = load_signing_public(fleet.hq_public)
    pairings: list[DevicePairing] = []
    threads: set[str] = set()
    audited: queue.Queue[Adjudication] = queue.Queue()

    def on_pairing(data: bytes) -> None:  # what edge.daemon.control does, minus persistence
        threads.add(threading.current_thread().name)
        pairings.append(read_record(data, DevicePairing, hq_public, "cam01", pairings[-1] if pairings else None))

    def on_adjudication(topic: str, data: bytes) -> None:
        threads.add(threading.current_thread().name)
        decision = verify_adjudication(data, pairings[-1].handheld_keys(), topic=topic, device="cam01")
        audit.append("adjudication", audit_body(decision))
        audited.put(decision)

    uplink = Uplink(fleet.link("device-cam01").model_copy(update={"outbox": tmp_path / "outbox.sqlite"}),
                    device_key, on_pairing=on_pairing, on_adjudication=on_adjudication)
    audit = AuditLog.open(tmp_path / "audit.log", device_key, 10, device_id="cam01",
                          on_record=lambda r: uplink.send_audit(r.as_dict()))
    uplink.start()
    db = hq_store.location
    try:
        assert wait_until(lambda: bool(pairings), 5) and [h.id for h in pairings[-1].handhelds] == ["h1"]
        audit.append("period_start", PeriodStartBody(period_id="p1", place="Market St", camera="cam01/front",
                                                     watchlist_id="wl-city", watchlist_version=4, watchlist_size=2,
                                                     threshold=POLICY.floor,
                                                     threshold_policy=POLICY.for_gallery(2).policy,
                                                     embedder_sha256=POLICY.calibration.embedder_sha256))
        event = synthetic_match("cam01", 1)
        uplink.send_match(event)
        audit.append("alert", AlertBody(event_id=event.event_id, track_id=1, frame=10, frame_time=event.observed_at
                                        .timestamp(), subject_id=event.subject_id, watchlist_id="wl-city",
                                        watchlist_version=4, score=event.score, threshold=event.threshold,
                                        threshold_policy=event.threshold_policy, margin=event.margin, probe_quality=0.9,
                                        box=(10, 20, 110, 140),
                                        detector_sha256=HASH, embedder_sha256=HASH))
        for topic, envelope in pairings[-1].sealed_alerts(event, device_key, jpeg(200, "probe"), jpeg(40, "ref")):
            uplink.send_handheld_alert(topic, envelope)  # h1 never connected yet: the outbox keeps it (0x10)

        with running_handheld(fleet, tmp_path) as (app, _):
            assert wait_until(lambda: app.inbox.alert(event.event_id) is not None, 10)  # outer signature checked
            app.decide(event.event_id, "4711", "confirm", pin=PINS["4711"])
            assert audited.get(timeout=5).officer_id == "4711"
            assert wait_until(lambda: hq_store.count("adjudication") == 1 and uplink.pending == 0, 5)
            one = json.loads(report(capsys, "--db", db, "--device", "cam01", "--json"))[0]
            assert one["periods"][0]["outcomes"] == dict(alerts=1, confirmed=0, rejected=0, unsure=0, pending=1)

            app.decide(event.event_id, "4712", "confirm", pin=PINS["4712"])  # the second officer: now it is confirmed
            assert audited.get(timeout=5).confirmations_required == 2
        audit.append("counters", CountersBody(minute_start=0, minute_end=60, frames=900, faces_seen=7,
                                              faces_discarded=6, tracks_ended_without_match=5, alerts=1))
        audit.append("period_stop", PeriodStopBody(period_id="p1", reason="operator"))
        audit.close()
        records = len((tmp_path / "audit.log").read_text().splitlines())
        assert wait_until(lambda: hq_store.count("audit") == records and hq_store.count("adjudication") == 2, 5)
    finally:
        uplink.stop()
    assert threads == {"edge-uplink-delivery"}
    assert [e.event_id for e in hq_store.events(kind="match")] == [event.event_id]

    text = report(capsys, "--db", db, "--device-keys", str(fleet.keys))
    assert "| p1 |" in text and "| Market St | cam01/front | wl-city v4 (2) | 1 | 1 | 0 | 0 | 0 |" in text
    assert "chain intact; checkpoints signed by the device" in text and "900 frames, 7 faces seen" in text
    # the groups' measured rates at the threshold in force, from the shipped table; none for an unknown model
    groups = text.split("## Error rates by demographic group")[1]
    assert f"### {DEFAULT_EMBEDDER}, threshold {POLICY.floor:.4f} (floor: no group above 3 % false alarms" in groups
    black = POLICY.calibration.demographics.rates("false_alarms", POLICY.floor)
    row = next(r for r in black if r.group == "Black")
    assert f"| false alarms (utkface, at {row.threshold:.2f}) | Black | {row.errors} | {row.trials} |" in groups
    assert "Not covered by these figures" in groups and "against one list of 102 people" in groups
    assert f"### embedder {HASH[:12]}, threshold 0.5000 (fixed (match.threshold))" in groups
    assert "**Not measured**" in groups
    assert "| p1 |" not in report(capsys, "--db", db, "--since", "2099-01-01T00:00Z")
    capsys.readouterr()
    assert edge_main(["hq", "events", "--db", db, "--kind", "adjudication"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all("confirm by 47" in line and event.event_id in line for line in lines)


def test_hq_ingest_refuses_forged_and_misaddressed_decisions(fleet: FleetFiles, hq_store: EventStore) -> None:
    """The ACL lets handheld h1 publish only on its own topic; HQ still checks who signed what it says there."""
    h1_link = HandheldFile.load(fleet.handheld_toml).link
    h1_key = load_signing_private(fleet.keys / "handheld-h1" / "handheld_signing.key")
    base: dict[str, Any] = dict(adjudication_id="00000000-0000-4000-8000-000000000001",
                                event_id="00000000-0000-4000-8000-000000000002", device="cam01", handheld="h1",
                                officer_id="4711", officer_name="Sgt. Able", decision="confirm",
                                decided_at=utc_now().isoformat())  # h1 is paired with cam01 now
    good = Adjudication.model_validate(base)
    as_h2 = Adjudication.model_validate(base | {"handheld": "h2", "adjudication_id": base["event_id"]})
    client = MqttClient(h1_link)
    client.start()
    try:
        client.wait_connected(5)
        for data in (good.signed(Ed25519PrivateKey.generate()), as_h2.signed(h1_key), b"{not json",
                     good.signed(h1_key)):
            assert client.publish_wait(adjudications("h1"), data, False, 5).ok
        assert wait_until(lambda: len(hq_store.rejections()) == 3 and hq_store.count("adjudication") == 1, 5)
    finally:
        client.stop()
    assert [e.event_id for e in hq_store.events(kind="adjudication")] == [good.adjudication_id]
    reasons = [r.reason for r in hq_store.rejections()]
    assert "bad_signature" in reasons[0] and "unknown_handheld" in reasons[1] and "malformed" in reasons[2]
