"""The officer's page on a phone with the longest texts a watchlist entry and a device allow: the decisions stay
in reach, side by side and the same size, and nothing pushes the page wider than the screen."""

from pathlib import Path
from typing import Any

from handheld_helpers import DeviceSim, FleetFiles, running_handheld
from sample_alerts import make_alert
from test_handheld_page import PHONE, TIMEOUT_MS, box, card, in_viewport, open_page

LONG = {
    "label": "Maximiliana-Alexandrovna-Konstantinopolskaya-" * 4 + "Bartholomew",  # 191 characters, few breaks
    "case_ref": "CASE/" + "0123456789" * 19,
    "legal_basis": ("Order of the Regional Court under section 81b of the Code of Criminal Procedure, " * 6)[:500],
    "place": "Central Station, north concourse, platform 7 entrance beside the ticket machines " * 3,
}


def test_long_texts_leave_both_decisions_in_reach(fleet: FleetFiles, browser: Any, tmp_path: Path) -> None:
    device = DeviceSim(fleet, "cam01")
    context = browser.new_context(viewport=PHONE, device_scale_factor=2, locale="en-GB", timezone_id="UTC")
    page = context.new_page()
    try:
        with running_handheld(fleet, tmp_path) as (_, server):
            open_page(page, server.url)
            alert = make_alert("cam01", "h1", **LONG)
            assert all(ack.ok for ack in device.send(alert, device.pairing()))
            shown = card(page, alert.event_id)
            shown.wait_for(timeout=TIMEOUT_MS)
            assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
            confirm, reject = box(shown.locator("button.confirm")), box(shown.locator("button.reject"))
            assert (confirm["width"], confirm["height"], confirm["y"]) == (reject["width"], reject["height"],
                                                                           reject["y"])
            for part in ("button.confirm", "button.reject", ".as", ".probe", ".reference"):
                assert in_viewport(shown.locator(part)), f"{part} is off the first screen: {box(shown.locator(part))}"
            page.screenshot(path=str(tmp_path / "first-screen.png"))
            # Read down to the legal basis: the decisions stay on screen, the same size, over the text.
            shown.locator(".where").scroll_into_view_if_needed()
            assert page.evaluate("window.scrollY") > 0
            for part in ("button.confirm", "button.reject"):
                assert in_viewport(shown.locator(part)), f"{part} is off screen: {box(shown.locator(part))}"
    finally:
        context.close()
        device.stop()
