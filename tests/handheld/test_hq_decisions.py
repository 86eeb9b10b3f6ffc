"""HQ counts only what it should: decisions from handhelds paired with the device at the time, one vote per
(handheld, officer), under HQ's rule; alerts and decisions in separate id spaces; device and handheld text
escaped in `edge hq events` and the report. Real device Uplink and audit log, real handheld keys and
certificates, the real broker with the generated ACL, real HQ ingest and `edge hq report`."""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from handheld_helpers import FleetFiles, edge, pair, wait_until

from edge.audit.log import AuditLog
from edge.audit.records import AlertBody, PeriodStartBody
from edge.bench.synthetic import synthetic_match
from edge.cli import main as edge_main
from edge.hq.broker import LocalBroker
from edge.hq.store import EventStore
from edge.keys import load_signing_private
from edge.link.mqtt import MqttClient
from edge.link.uplink import Uplink
from edge.protocol.adjudication import Adjudication
from edge.protocol.messages import MatchEvent, new_event_id, utc_now
from edge.protocol.topics import adjudications

HASH = "ab" * 32
ESC = "\x1b]0;owned\x07\x1b[2J\u202e"
PLACE = "Market St | **fake** <img src=x onerror=alert(1)> [click](javascript:alert(1))"


@pytest.fixture(scope="module")
def rogue(fleet_broker: tuple[FleetFiles, LocalBroker]) -> Path:
    """Handheld h2: provisioned and certified like any other, without PINs, and not paired with cam01."""
    fleet, broker = fleet_broker
    folder = fleet.keys / "handheld-h2"
    edge("handheld", "provision", "--id", "h2", "--hq-pub", fleet.hq_public, "--officer", "4711=Mallory",
         "--officer", "4712=Mallory Too", "--broker", f"127.0.0.1:{broker.port}", "--out", folder)
    edge("hq", "pki", "issue", "--role", "handheld", "--id", "h2", "--ca-dir", fleet.root / "ca",
         "--out", folder / "tls", "--registry", fleet.registry)
    broker.reload()
    return folder


class Handheld:
    """A handheld's own MQTT identity and signing key, publishing decisions it signs on its own topic."""

    def __init__(self, fleet: FleetFiles, folder: Path, handheld: str) -> None:
        self.handheld = handheld
        self.key = load_signing_private(folder / "handheld_signing.key")
        tls = folder / "tls"
        self.client = MqttClient(fleet.link("hq-ingest").model_copy(update={
            "cert": tls / f"handheld-{handheld}.crt", "key": tls / f"handheld-{handheld}.key"}))
        self.client.start()
        self.client.wait_connected(5)

    def decide(self, event: MatchEvent, officer: str, decision: str, required: int = 1, **extra: Any) -> Adjudication:
        signed = Adjudication.model_validate(dict(
            adjudication_id=new_event_id(), event_id=event.event_id, device=event.device, handheld=self.handheld,
            officer_id=officer, officer_name=f"Officer {officer}", decision=decision, decided_at=utc_now(),
            confirmations_required=required) | extra)
        assert self.client.publish_wait(adjudications(self.handheld), signed.signed(self.key), False, 5).ok
        return signed


@pytest.fixture
def device(fleet: FleetFiles, tmp_path: Path) -> Iterator[tuple[Uplink, AuditLog]]:
    """cam01's real Uplink and audit log, its records going to HQ through the outbox."""
    key = load_signing_private(fleet.keys / "device-cam01" / "device_signing.key")
    uplink = Uplink(fleet.link("device-cam01").model_copy(update={"outbox": tmp_path / "outbox.sqlite"}), key)
    audit = AuditLog.open(tmp_path / "audit.log", key, 10, device_id="cam01",
                          on_record=lambda r: uplink.send_audit(r.as_dict()))
    uplink.start()
    try:
        audit.append("period_start", PeriodStartBody(period_id="p1", place=PLACE + ESC, camera="cam01/front",
                                                     watchlist_id="wl-city", watchlist_version=4, watchlist_size=2,
                                                     threshold=0.5))
        yield uplink, audit
    finally:
        audit.close()
        uplink.stop()


def alert(uplink: Uplink, audit: AuditLog, index: int) -> MatchEvent:
    event = synthetic_match("cam01", index).model_copy(update={"event_id": new_event_id()})
    uplink.send_match(event)
    audit.append("alert", AlertBody(event_id=event.event_id, track_id=index, frame=10,
                                    frame_time=event.observed_at.timestamp(), subject_id=event.subject_id,
                                    watchlist_id="wl-city", watchlist_version=4, score=event.score,
                                    threshold=event.threshold, margin=event.margin, probe_quality=0.9,
                                    box=(10, 20, 110, 140), detector_sha256=HASH, embedder_sha256=HASH))
    return event


def outcomes(capsys: pytest.CaptureFixture[str], db: str, *extra: str) -> dict[str, int]:
    capsys.readouterr()
    assert edge_main(["hq", "report", "--db", db, "--device", "cam01", "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)[0]["periods"][0]["outcomes"]  # type: ignore[no-any-return]


def test_a_rogue_handheld_can_neither_undo_a_reject_nor_make_up_the_second_officer(
        fleet_broker: tuple[FleetFiles, LocalBroker], rogue: Path, hq_store: EventStore,
        device: tuple[Uplink, AuditLog], capsys: pytest.CaptureFixture[str]) -> None:
    fleet, broker = fleet_broker
    uplink, audit = device
    h1, h2 = Handheld(fleet, fleet.keys / "handheld-h1", "h1"), Handheld(fleet, rogue, "h2")
    db = hq_store.location
    try:
        rejected, confirmed_once = alert(uplink, audit, 1), alert(uplink, audit, 2)
        h1.decide(rejected, "4711", "reject", 2)
        h1.decide(confirmed_once, "4711", "confirm", 2)
        # h2 is not paired with cam01: its decisions are refused (before the fix they undid the reject, and with
        # "4712"'s confirmation made up the two-officer rule)
        h2.decide(rejected, "4711", "confirm")
        h2.decide(confirmed_once, "4712", "confirm")
        assert wait_until(lambda: hq_store.count("adjudication") == 2 and len(hq_store.rejections()) == 2, 10)
        assert all("not_paired" in r.reason and "h2 was not paired with device cam01" in r.reason
                   for r in hq_store.rejections())
        assert wait_until(lambda: hq_store.count("match") == 2 and uplink.pending == 0, 10)
        assert outcomes(capsys, db) == dict(alerts=2, confirmed=0, rejected=1, unsure=0, pending=1)

        # Paired now, h2's later confirmation under officer id 4711 is a vote of its own: the reject stands.
        pair(fleet, broker, "h2", "cam01")
        assert wait_until(lambda: hq_store.count("pairing") == 2, 10)
        h2.decide(rejected, "4711", "confirm")
        # A paired handheld without the two-officer rule signs confirmations_required 1; HQ's rule still needs two.
        lone = alert(uplink, audit, 3)
        h2.decide(lone, "4711", "confirm")
        assert wait_until(lambda: hq_store.count("adjudication") == 4 and uplink.pending == 0, 10)
        assert outcomes(capsys, db) == dict(alerts=3, confirmed=1, rejected=1, unsure=0, pending=1)
        assert outcomes(capsys, db, "--two-officer-rule") == dict(alerts=3, confirmed=0, rejected=1, unsure=0,
                                                                  pending=2)
    finally:
        h1.client.stop()
        h2.client.stop()
        pair(fleet, broker, "h2", "cam01", "--unpair")


def test_a_decision_with_an_alerts_id_does_not_push_the_alert_out(
        fleet: FleetFiles, hq_store: EventStore, device: tuple[Uplink, AuditLog]) -> None:
    """A handheld chooses its decisions' ids: one equal to an alert's event id once made HQ drop the alert."""
    uplink, _ = device
    h1 = Handheld(fleet, fleet.keys / "handheld-h1", "h1")
    try:
        event = synthetic_match("cam01", 7).model_copy(update={"event_id": new_event_id()})
        h1.decide(event, "4711", "confirm", 2, adjudication_id=event.event_id)  # arrives first
        assert wait_until(lambda: hq_store.count("adjudication") == 1, 10)
        uplink.send_match(event)
        assert wait_until(lambda: uplink.pending == 0 and hq_store.count("match") == 1, 10)
    finally:
        h1.client.stop()
    assert [e.event_id for e in hq_store.events(kind="match")] == [event.event_id]
    assert [e.event_id for e in hq_store.events(kind="adjudication")] == [event.event_id]


def test_device_and_handheld_text_is_escaped_in_events_and_report(
        fleet: FleetFiles, hq_store: EventStore, device: tuple[Uplink, AuditLog],
        capsys: pytest.CaptureFixture[str]) -> None:
    uplink, audit = device
    h1 = Handheld(fleet, fleet.keys / "handheld-h1", "h1")
    try:
        event = alert(uplink, audit, 4)
        h1.decide(event, "4711", "reject", 2, officer_name="Sgt. " + ESC, note="\x9b31m" + ESC)
        assert wait_until(lambda: hq_store.count("adjudication") == 1 and uplink.pending == 0, 10)
    finally:
        h1.client.stop()
    db = hq_store.location
    capsys.readouterr()
    for extra in ([], ["--json"], ["--status"], ["--rejected"]):
        assert edge_main(["hq", "events", "--db", db, *extra]) == 0
        out = capsys.readouterr().out
        assert not any(c in out for c in "\x1b\x07\x9b\u202e"), extra
    assert edge_main(["hq", "events", "--db", db, "--kind", "adjudication"]) == 0
    assert "reject by 4711 (Sgt. \\x1b]0;owned\\x07\\x1b[2J\\u202e)" in capsys.readouterr().out
    assert edge_main(["hq", "events", "--db", db, "--kind", "adjudication", "--json"]) == 0
    line = capsys.readouterr().out.strip()
    assert json.loads(line)["note"] == "\x9b31m" + ESC  # escaped as JSON: the same value, nothing for a terminal
    assert edge_main(["hq", "report", "--db", db, "--device", "cam01"]) == 0
    text = capsys.readouterr().out
    assert "<img" not in text and "**fake**" not in text and "[click](" not in text and "\x1b" not in text
    assert "Market St \\| \\*\\*fake\\*\\* &lt;img src=x onerror=alert(1)&gt; \\[click\\](javascript:alert(1))" in text
