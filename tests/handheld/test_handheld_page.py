"""The officer's page in real headless Chromium, fed by a real device client through a real broker.

Device -> broker -> `edge handheld` -> page; click -> signed decision -> broker -> device (audit log) and HQ
ingest (store).
"""

import datetime as dt
import json
import logging
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from handheld_helpers import PINS, DeviceSim, FleetFiles, running_handheld, wait_until
from sample_alerts import make_alert

from edge.audit.decisions import audit_body
from edge.audit.log import AuditLog
from edge.audit.records import AdjudicationBody, AuditRecord
from edge.audit.verify import verify_file
from edge.hq.broker import LocalBroker, free_port
from edge.hq.store import EventStore
from edge.keys import load_signing_private, load_signing_public
from edge.protocol.adjudication import Adjudication, verify_adjudication
from edge.protocol.alert import STATEMENT, seal
from edge.protocol.topics import adjudications, handheld_inbox

TIMEOUT_MS = 5000


def card(page: Any, event_id: str) -> Any:
    return page.locator(f'article[data-event="{event_id}"]')


def open_page(page: Any, url: str) -> None:
    """Open the page and wait until the handheld is connected and holds its pairing (so it is subscribed)."""
    page.goto(url)
    page.locator("#link.on").wait_for(timeout=TIMEOUT_MS)
    page.locator("#paired", has_text="cam01").wait_for(timeout=TIMEOUT_MS)


def decide(page: Any, shown: Any, decision: str, pin: str) -> None:
    """Tap a decision on a card and enter the deciding officer's PIN in the dialog it opens."""
    shown.locator(f"button.{decision}").click()
    page.locator("dialog#pin[open]").wait_for(timeout=TIMEOUT_MS)
    page.locator("#pin-input").fill(pin)
    page.locator("#pin-input").press("Enter")


def api(base: str, token: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    """(status, JSON answer) of one page API call, as the page makes it."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data, {"X-Edge-Token": token, "Content-Type": "application/json"},
                                     method="GET" if body is None else "POST")
    try:
        with urllib.request.urlopen(request) as response:
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def handheld_keys(fleet: FleetFiles) -> dict[str, Any]:
    return {"h1": load_signing_public(fleet.keys / "handheld-h1" / "handheld_signing.pub")}


def decisions_at_hq(store: EventStore, fleet: FleetFiles, count: int) -> list[Adjudication]:
    """The decisions HQ ingest stored, once there are `count`, checked again with the handheld's key."""
    assert wait_until(lambda: store.count("adjudication") >= count, 10), "decisions did not reach the HQ store"
    events = store.events(kind="adjudication")
    assert len(events) == count
    return [verify_adjudication(e.payload.encode(), handheld_keys(fleet), topic=adjudications("h1")) for e in events]


def test_alert_shows_live_and_decisions_reach_device_audit_and_hq(fleet: FleetFiles, phone: Any, tmp_path: Path,
                                                                    hq_store: EventStore,
                                                                    record_property: Any) -> None:
    device = DeviceSim(fleet, "cam01")
    pairing = device.pairing()
    assert [h.id for h in pairing.handhelds] == ["h1"]
    process = subprocess.Popen([sys.executable, "-m", "edge", "handheld", "--config", str(fleet.handheld_toml),
                                "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "open http://127.0.0.1:" in line, line + (process.stderr.read() if process.poll() is not None else "")
        open_page(phone, line.split("open ", 1)[1].strip())

        alert = make_alert("cam01", "h1", label="Subject Alpha")
        started = time.monotonic()
        assert all(ack.ok for ack in device.send(alert, pairing))
        shown = card(phone, alert.event_id)
        shown.wait_for(timeout=TIMEOUT_MS)
        record_property("alert_to_page_s", round(time.monotonic() - started, 3))
        assert shown.locator(".label").text_content() == "Subject Alpha"
        assert shown.locator(".statement").text_content() == STATEMENT
        assert shown.locator(".score").text_content() == "0.612"
        assert shown.locator(".threshold").text_content().startswith("0.450")
        assert shown.locator(".policy").text_content() == f"Threshold set by: {alert.threshold_policy}"
        assert shown.locator(".case").text_content() == "CASE-2025-0042"
        for image in (".probe", ".reference"):
            assert shown.locator(image).evaluate("img => img.complete && img.naturalWidth") == 112
        assert phone.evaluate("document.documentElement.scrollWidth") <= 360  # fits a 360 px phone

        # First officer confirms with their PIN: under the two-officer rule that is 1 of 2.
        decide(phone, shown, "confirm", PINS["4711"])
        shown.locator(".tally", has_text="1 of 2 confirmations").wait_for(timeout=TIMEOUT_MS)
        shown.locator(".decisions li.sent").wait_for(timeout=TIMEOUT_MS)

        # HQ ingest gets it, verifies the handheld's signature, stores it.
        [at_hq] = decisions_at_hq(hq_store, fleet, 1)
        assert (at_hq.event_id, at_hq.device, at_hq.officer_id, at_hq.decision) == (
            alert.event_id, "cam01", "4711", "confirm")

        # The device gets it from its paired handheld, verifies it, and writes it to its audit log.
        message = device.received.wait(lambda m: m.topic == adjudications("h1"))
        at_device = verify_adjudication(message.payload, pairing.handheld_keys(), topic=message.topic,
                                        device="cam01")
        device_key = load_signing_private(fleet.keys / "device-cam01" / "device_signing.key")
        with AuditLog.open(tmp_path / "audit.log", device_key, device_id="cam01") as log:
            log.append("adjudication", audit_body(at_device))
        assert verify_file(tmp_path / "audit.log", [device_key.public_key()]).ok
        records = [AuditRecord.model_validate_json(line) for line in (tmp_path / "audit.log").read_text().splitlines()]
        audited = [r.body for r in records if isinstance(r.body, AdjudicationBody)]
        assert [(b.event_id, b.decision, b.by, b.handheld_id) for b in audited] == [
            (alert.event_id, "confirmed", "4711", "h1")]

        # The same officer cannot count twice; a second officer makes it confirmed.
        decide(phone, shown, "confirm", PINS["4711"])
        shown.locator(".error", has_text="second officer must confirm").wait_for(timeout=TIMEOUT_MS)
        # Picking the second officer is not enough: the first one's PIN is refused for them, in the dialog.
        phone.select_option("#officer", "4712")
        decide(phone, shown, "confirm", PINS["4711"])
        phone.locator("#pin-error", has_text="wrong PIN for Cst. Bo Baker (4712): 4 more tries").wait_for(
            timeout=TIMEOUT_MS)
        pin_input = phone.locator("#pin-input")
        assert (pin_input.get_attribute("type"), pin_input.get_attribute("inputmode")) == ("password", "numeric")
        assert pin_input.input_value() == ""  # not kept in the page, nor in its storage
        assert PINS["4711"] not in phone.evaluate("JSON.stringify(localStorage) + JSON.stringify(sessionStorage)")
        phone.locator("#pin-cancel").click()
        phone.locator("dialog#pin[open]").wait_for(state="detached", timeout=TIMEOUT_MS)
        assert shown.locator(".tally").text_content().startswith("1 of 2 confirmations")
        decide(phone, shown, "confirm", PINS["4712"])
        shown.locator(".tally", has_text="Confirmed (2 of 2 confirmations)").wait_for(timeout=TIMEOUT_MS)
        second = decisions_at_hq(hq_store, fleet, 2)[1]
        assert (second.officer_id, second.confirmations_required) == ("4712", 2)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0, process.stderr.read() if process.stderr else ""
        device.stop()


def test_one_officer_cannot_confirm_as_the_second_without_their_pin(
        fleet: FleetFiles, tmp_path: Path, hq_store: EventStore, caplog: pytest.LogCaptureFixture) -> None:
    """The page's token lets anyone at the handheld pick any officer; only the second officer's PIN makes their
    confirmation count. Wrong PINs are refused and logged (without the PIN), and five lock that officer out."""
    device = DeviceSim(fleet, "cam01")
    caplog.set_level(logging.INFO, logger="edge.handheld")
    guesses = ("0000", "1234", "11111111", "24681358", "97531865")
    try:
        with running_handheld(fleet, tmp_path) as (app, server):
            base, token = server.url.split("#token=")
            alert = make_alert("cam01", "h1", label="Subject Alpha")
            assert all(ack.ok for ack in device.send(alert, device.pairing()))
            assert wait_until(lambda: app.inbox.alert(alert.event_id) is not None)
            confirm = {"event_id": alert.event_id, "officer_id": "4711", "decision": "confirm"}
            assert api(base, token, "api/decisions", confirm | {"pin": PINS["4711"]})[0] == 200

            # The same person, as the second officer: without a PIN, then guessing; the fifth wrong PIN locks
            # officer 4712 out, and while locked even the right PIN is refused without being checked.
            as_second = confirm | {"officer_id": "4712"}
            status, answer = api(base, token, "api/decisions", as_second)
            assert (status, answer["error"]) == (403, "Cst. Bo Baker (4712) has a PIN: enter it to decide as "
                                                      "Cst. Bo Baker")
            answers = [api(base, token, "api/decisions", as_second | {"pin": guess}) for guess in guesses]
            assert [s for s, _ in answers] == [403] * 5
            assert answers[0][1]["error"] == "wrong PIN for Cst. Bo Baker (4712): 4 more tries before a lockout"
            assert answers[-1][1]["error"] == "wrong PIN for Cst. Bo Baker (4712); too many wrong PINs: locked for 60 s"
            status, answer = api(base, token, "api/decisions", as_second | {"pin": PINS["4712"]})
            assert status == 429 and answer["error"].startswith("too many wrong PINs for Cst. Bo Baker (4712): try "
                                                                 "again in ")

            # Nothing was signed for 4712: the alert still waits for a second officer, and HQ got only 4711's.
            assert [d.officer_id for d, _ in app.inbox.decisions(alert.event_id)] == ["4711"]
            status, state = api(base, token, "api/state")
            assert state["alerts"][0]["tally"]["state"] == "awaiting_second"
            assert state["status"]["officers"] == [{"id": "4711", "name": "Sgt. Alex Able", "pin": True},
                                                   {"id": "4712", "name": "Cst. Bo Baker", "pin": True}]
            assert [d.officer_id for d in decisions_at_hq(hq_store, fleet, 1)] == ["4711"]
    finally:
        device.stop()
    logged = caplog.text
    assert logged.count("wrong PIN for officer 4712") == 5 and "locked out for 60 s" in logged
    assert "refused unchecked" in logged
    assert not any(pin in logged for pin in (*PINS.values(), *guesses))


def test_unpaired_or_forged_alerts_never_show(fleet: FleetFiles, phone: Any, tmp_path: Path) -> None:
    cam01, cam02 = DeviceSim(fleet, "cam01"), DeviceSim(fleet, "cam02")
    pairing = cam01.pairing()
    h1_public = pairing.handhelds[0].encryption_public()
    try:
        with running_handheld(fleet, tmp_path) as (_, server):
            open_page(phone, server.url)
            # The broker stops an unpaired device outright...
            stray = make_alert("cam02", "h1", label="From unpaired device")
            assert not cam02.publish_raw(handheld_inbox("h1", "cam02"), seal(stray, cam02.key, h1_public)).ok
            # ...and the handheld refuses what gets through: another device's alert relayed by cam01,
            # and an alert claiming to be cam01's but signed with another key.
            assert cam01.publish_raw(handheld_inbox("h1", "cam01"), seal(stray, cam02.key, h1_public)).ok
            forged = make_alert("cam01", "h1", label="Forged")
            assert cam01.publish_raw(handheld_inbox("h1", "cam01"), seal(forged, cam02.key, h1_public)).ok
            genuine = make_alert("cam01", "h1", label="Genuine")
            assert all(ack.ok for ack in cam01.send(genuine, pairing))

            card(phone, genuine.event_id).wait_for(timeout=TIMEOUT_MS)
            phone.locator("#refused", has_text="1 unpaired").wait_for(timeout=TIMEOUT_MS)
            assert "1 bad signature" in phone.locator("#refused").text_content()
            assert phone.locator("article.alert").count() == 1
            assert phone.get_by_text("Forged").count() == 0 and phone.get_by_text("From unpaired").count() == 0
    finally:
        cam01.stop()
        cam02.stop()


def test_nothing_is_lost_while_the_handheld_or_the_broker_is_away(
        fleet_broker: tuple[FleetFiles, LocalBroker], phone: Any, tmp_path: Path, hq_store: EventStore) -> None:
    fleet, broker = fleet_broker
    device = DeviceSim(fleet, "cam01")
    pairing = device.pairing()
    port = free_port()
    first, away = make_alert("cam01", "h1", label="Before"), [make_alert("cam01", "h1", label=f"Away {i}")
                                                               for i in (1, 2)]
    try:
        with running_handheld(fleet, tmp_path, port=port) as (_, server):
            open_page(phone, server.url)
            device.send(first, pairing)
            card(phone, first.event_id).wait_for(timeout=TIMEOUT_MS)
        phone.locator("#link.off").wait_for(timeout=TIMEOUT_MS)  # the page notices the handheld is gone
        for alert in away:  # the broker keeps them in the handheld's persistent session
            assert all(ack.ok for ack in device.send(alert, pairing))

        with running_handheld(fleet, tmp_path, port=port) as (_, server):
            open_page(phone, server.url)  # a restart makes a new access token: the officer opens the new address
            for alert in (first, *away):
                card(phone, alert.event_id).wait_for(timeout=TIMEOUT_MS)
            labels = phone.locator("article.alert .label").all_text_contents()
            assert labels == ["Away 2", "Away 1", "Before"]  # newest first

            # Broker down: a decision is kept and marked unsent; when the broker is back it goes out,
            # and the same page (no reload) shows alerts that arrive after the reconnect.
            broker.stop()
            phone.locator("#link.off").wait_for(timeout=TIMEOUT_MS)
            before = card(phone, first.event_id)
            decide(phone, before, "reject", PINS["4711"])
            before.locator(".decisions li.unsent").wait_for(timeout=TIMEOUT_MS)
            broker.start()
            before.locator(".decisions li.sent").wait_for(timeout=10_000)
            [at_hq] = decisions_at_hq(hq_store, fleet, 1)
            assert (at_hq.event_id, at_hq.decision) == (first.event_id, "reject")
            later = make_alert("cam01", "h1", label="After reconnect")
            device.client.wait_connected(10)
            assert all(ack.ok for ack in device.send(later, pairing))
            card(phone, later.event_id).wait_for(timeout=TIMEOUT_MS)
    finally:
        device.stop()


def test_page_api_needs_the_start_token_in_a_header(fleet: FleetFiles, tmp_path: Path) -> None:
    """Static files are public and locked down by CSP; data and decisions need this start's token, and a
    decision needs it in a header, which a cross-site form cannot send."""
    with running_handheld(fleet, tmp_path) as (_, server):
        base = server.url.split("#", 1)[0]
        token = server.url.split("#token=", 1)[1]
        with urllib.request.urlopen(base) as page:
            assert "script-src 'self'" in page.headers["Content-Security-Policy"]
            assert page.headers["Referrer-Policy"] == "no-referrer"

        def status(request: urllib.request.Request) -> int:
            try:
                with urllib.request.urlopen(request) as response:
                    return int(response.status)
            except urllib.error.HTTPError as exc:
                return exc.code

        assert status(urllib.request.Request(base + "api/state")) == 403
        assert status(urllib.request.Request(base + "api/state?token=wrong")) == 403
        assert status(urllib.request.Request(base + f"api/state?token={token}")) == 200
        body = json.dumps({"event_id": "x", "officer_id": "4711", "decision": "confirm"}).encode()
        assert status(urllib.request.Request(base + f"api/decisions?token={token}", body, method="POST")) == 403
        with_header = urllib.request.Request(base + "api/decisions", body, {"X-Edge-Token": token}, method="POST")
        assert status(with_header) == 404  # authorised; there is no such alert


PHONE = {"width": 390, "height": 844}
RATE_TEXT = ("About 1 in 1,000 people who are not on the watchlist set off an alert at this threshold: a rate per "
             "person searched, not the chance that this alert is wrong.")


def box(locator: Any) -> dict[str, float]:
    found = locator.bounding_box()
    assert found is not None, f"{locator} is not displayed"
    return found


def in_viewport(locator: Any) -> bool:
    """Wholly on screen, without scrolling (the page is at its top)."""
    b = box(locator)
    return b["x"] >= 0 and b["y"] >= 0 and b["x"] + b["width"] <= PHONE["width"] and \
        b["y"] + b["height"] <= PHONE["height"]


def test_phone_leads_with_what_to_verify_and_gives_reject_the_reach_of_confirm(
        fleet: FleetFiles, browser: Any, tmp_path: Path) -> None:
    """On a 390 x 844 phone the first screen holds what the officer checks (both photos, the name, why the
    person is listed, where and when) and both decisions, Confirm and Reject the same size; the numbers and
    the false-alarm rate, worded as the per-search rate it is, wait in the details."""
    device = DeviceSim(fleet, "cam01")
    context = browser.new_context(viewport=PHONE, device_scale_factor=2, locale="en-GB", timezone_id="UTC")
    page = context.new_page()
    until = dt.datetime(2031, 3, 14, 12, 0, tzinfo=dt.timezone.utc)
    try:
        with running_handheld(fleet, tmp_path) as (_, server):
            open_page(page, server.url)
            alert = make_alert("cam01", "h1", label="Subject Alpha", legal_basis="Warrant 5/2025, art. 3",
                               listed_until=until, place="Market St, north entrance")
            assert all(ack.ok for ack in device.send(alert, device.pairing()))
            shown = card(page, alert.event_id)
            shown.wait_for(timeout=TIMEOUT_MS)
            for image in (".probe", ".reference"):
                assert shown.locator(image).evaluate("img => img.complete && img.naturalWidth") == 112
            assert page.evaluate("window.scrollY") == 0

            # The first screen: photos, name, why listed, where and when, who decides, Confirm and Reject.
            for part in (".statement", ".probe", ".reference", ".label", ".category", ".case", ".legal", ".until",
                         ".where", ".time", ".as", "button.confirm", "button.reject"):
                assert in_viewport(shown.locator(part)), f"{part} is off the first screen: {box(shown.locator(part))}"
            probe, reference = box(shown.locator(".probe")), box(shown.locator(".reference"))
            assert probe["width"] >= 150 and (probe["width"], probe["y"]) == (reference["width"], reference["y"])
            confirm, reject = box(shown.locator("button.confirm")), box(shown.locator("button.reject"))
            assert (confirm["width"], confirm["height"]) == (reject["width"], reject["height"])
            assert confirm["y"] == reject["y"] and confirm["width"] >= 150 and confirm["height"] >= 60
            assert shown.locator(".statement").text_content() == STATEMENT
            assert shown.locator(".label").text_content() == "Subject Alpha"
            assert (shown.locator(".category").text_content(), shown.locator(".case").text_content()) == (
                "missing", "CASE-2025-0042")
            assert shown.locator(".legal").text_content() == "Warrant 5/2025, art. 3"
            assert shown.locator(".until").text_content() == "14 Mar 2031"
            assert shown.locator(".where").text_content() == "Market St, north entrance (camera front)"
            seen, when = alert.observed_at.astimezone(dt.timezone.utc), shown.locator(".time").text_content()
            assert when == f"{seen:%a}, {seen.day} {seen:%b %Y}, {seen:%H:%M:%S}"  # date with the time

            # The numbers and the rate only in the details, the rate worded as the per-search rate it is.
            rate = shown.locator(".rate")
            assert rate.text_content() == RATE_TEXT and not rate.is_visible()
            assert not shown.locator(".score").is_visible()
            assert "false alarms ~" not in page.locator("body").inner_text()
            shown.locator(".details summary").click()
            assert rate.is_visible() and shown.locator(".score").text_content() == "0.612"
            assert shown.locator(".source").text_content() == f"Device cam01, camera front, event {alert.event_id}"

            # Who decides is on the card, and the PIN dialog names them, for Reject as for Confirm.
            assert shown.locator(".as-name").text_content() == "Sgt. Alex Able (4711)"
            page.select_option("#officer", "4712")
            assert shown.locator(".as-name").text_content() == "Cst. Bo Baker (4712)"
            shown.locator("button.reject").click()
            page.locator("dialog#pin[open]").wait_for(timeout=TIMEOUT_MS)
            assert page.locator("#pin-title").text_content() == "Reject as Cst. Bo Baker"
            assert "enter the PIN of Cst. Bo Baker (4712)" in page.locator("#pin-what").text_content()
            page.locator("#pin-input").fill(PINS["4712"])
            page.locator("#pin-input").press("Enter")
            shown.locator(".decisions li", has_text="Cst. Bo Baker: Rejected").wait_for(timeout=TIMEOUT_MS)
            assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    finally:
        context.close()
        device.stop()
