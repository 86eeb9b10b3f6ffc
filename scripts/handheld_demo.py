#!/usr/bin/env python3
"""The officer's handheld with real parts in a throwaway folder: take the docs screenshot, measure alert latency.

A fleet made with the `edge` commands (edge.demo.trial: CA, HQ key, device and handheld provisioning,
certificates, `edge hq pair`), mosquitto with the deploy config, a device client that seals alerts, the handheld
(HandheldApp + PageServer, as `edge handheld` runs them) and headless Chromium.

    python scripts/handheld_demo.py screenshot [--out docs/img] [--data ../shared/data]
    python scripts/handheld_demo.py latency [--alerts 30]

The screenshot's faces are the project's demo data: the reference is the watchlist thumbnail enrolled
from demo/lin-manuel-miranda.png, the probes are faces in the demo clip that match it; score, margin and
quality are what the models compute. The label, case and legal basis are placeholders, not claims about anyone.
Two shots 390 px wide: handheld-phone.png, the first screen (844 px) of a new alert (what the officer checks, and
the buttons), and handheld.png, the whole card with its details open after the first of two officers confirmed.
Latency is from the device's publish to the alert's card being in the page (a MutationObserver's clock).
"""

import argparse
import base64
import contextlib
import datetime as dt
import functools
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.cliargs import data_root
from edge.config.embedder import DEFAULT_EMBEDDER
from edge.config.handheld import HandheldFile
from edge.demo.trial import TrialFleet
from edge.handheld.app import HandheldApp
from edge.handheld.web import PageServer
from edge.keys import load_signing_private, load_signing_public
from edge.link.mqtt import Incoming, MqttClient
from edge.models import ENGINES_DIR
from edge.protocol.alert import HandheldAlert, seal
from edge.protocol.messages import new_event_id
from edge.protocol.pairing import DevicePairing, read_record
from edge.protocol.topics import device_pairing, handheld_inbox
from edge.watchlist.calibration import Calibration, calibration_path

REPO = Path(__file__).resolve().parent.parent
DEVICE, HANDHELD = "cam-market-st", "unit-12"
PINS = {"4711": "24681357", "4712": "97531864"}  # throwaway officers' PINs (the two-officer rule needs them)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@dataclass
class Demo:
    server: PageServer
    device: MqttClient
    pairing: DevicePairing
    device_key: Any

    def send(self, alert: HandheldAlert) -> None:
        for peer in self.pairing.handhelds:
            copy = alert.model_copy(update={"handheld": peer.id})
            sealed = seal(copy, self.device_key, peer.encryption_public())
            self.device.publish_wait(handheld_inbox(peer.id, DEVICE), sealed, False, 10)


@contextlib.contextmanager
def demo() -> Iterator[Demo]:
    root = Path(tempfile.mkdtemp(prefix="edge-handheld-demo-"))
    fleet = TrialFleet(root).create(devices=(DEVICE,), hq_clients=("pairing",))
    broker = fleet.broker()
    pins = root / "pins.txt"
    pins.write_text("".join(f"{officer}={pin}\n" for officer, pin in PINS.items()))
    handheld_dir = fleet.provision_handheld(HANDHELD, broker.port, "--officer", "4711=Sgt. Alex Able", "--officer",
                                            "4712=Cst. Bo Baker", "--two-officer-rule", "--pins-from", pins)
    broker.start()
    try:
        fleet.pair(HANDHELD, DEVICE, broker, client="hq-pairing")
        loaded = HandheldFile.load(handheld_dir / "handheld.toml")
        app = HandheldApp(loaded.handheld, loaded.link)
        server = PageServer(app, "127.0.0.1", 0)
        app.start()
        server.start()
        app.wait_connected(10)
        records: list[Incoming] = []
        device = MqttClient(fleet.link(f"device-{DEVICE}", broker.port), on_message=records.append)
        device.subscribe([device_pairing(DEVICE)])
        device.start()
        device.wait_connected(10)
        deadline = time.monotonic() + 10
        while not records and time.monotonic() < deadline:
            time.sleep(0.05)
        pairing = read_record(records[0].payload, DevicePairing, load_signing_public(fleet.hq_signing_pub), DEVICE)
        try:
            yield Demo(server, device, pairing, load_signing_private(fleet.device_dir(DEVICE) / "device_signing.key"))
        finally:
            device.stop()
            server.stop()
            app.stop()
    finally:
        broker.stop()


@contextlib.contextmanager
def chromium(bypass_csp: bool = False, height: int = 1010) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 390, "height": height}, device_scale_factor=2,
                                          bypass_csp=bypass_csp)
            yield context.new_page()
        finally:
            browser.close()


def sightings(data: Path) -> list[dict[str, Any]]:
    """Two sightings of the demo subject in the clip, older first: the best match, and the best one at least
    two seconds away from it. Scores are cosine similarities to the enrolled thumbnail; the margin is to the
    other enrolled person, as the device computes it."""
    from edge.vision.enroll import Enroller
    from edge.vision.quality import assess

    enroller = Enroller.open()
    stack = enroller.stack
    target = enroller.enroll(data / "demo" / "lin-manuel-miranda.png")
    other = enroller.enroll(data / "demo" / "alex-lacamoire.png")
    assert target.embedding is not None and other.embedding is not None and target.thumbnail is not None
    capture = cv2.VideoCapture(str(data / "demo" / "short_hamilton_clip.mp4"))
    found: list[dict[str, Any]] = []
    index = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        index += 1
        if index % 5:
            continue
        det = stack.detector(frame)
        if len(det.scores) == 0:
            continue
        crops = stack.embedder.crops(frame, det.landmarks)
        for i, embedding in enumerate(stack.embedder.embed(crops, flip=True)):
            score = float(np.dot(embedding, target.embedding))
            if score < threshold():
                continue
            quality = assess(crops[i], det.landmarks[i], float(det.scores[i]), enroller.quality).score
            jpeg = cv2.imencode(".jpg", crops[i], [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
            found.append({"frame": index, "score": round(score, 3), "probe_quality": round(quality, 2),
                          "margin": round(score - float(np.dot(embedding, other.embedding)), 3),
                          "probe": jpeg, "reference": target.thumbnail})
    capture.release()
    if not found:
        sys.exit("the demo subject never matches in the clip: check the models and the data folder")
    best = max(found, key=lambda f: f["score"])
    apart = [f for f in found if abs(f["frame"] - best["frame"]) >= 60]
    return [max(apart, key=lambda f: f["score"]) if apart else best, best]


@functools.cache
def threshold() -> float:
    """The default embedder's calibrated fixed threshold (engines/calibration-<embedder>.toml)."""
    return Calibration.load(calibration_path(ENGINES_DIR, DEFAULT_EMBEDDER)).fixed_threshold


def alert(**fields: Any) -> HandheldAlert:
    base: dict[str, Any] = {
        "event_id": new_event_id(), "device": DEVICE, "handheld": HANDHELD, "camera": "north-entrance",
        "observed_at": dt.datetime.now(dt.timezone.utc), "subject_id": "demo-a", "label": "Demo subject A",
        "category": "missing person", "case_ref": "DEMO-2025-0003", "threshold": threshold(), "fpir": 0.001,
        "legal_basis": "Demonstration only: not a real case", "place": "Market St, north entrance",
        "listed_until": dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=30),
    }
    return HandheldAlert.model_validate(base | fields)


def screenshot(out: Path, data: Path) -> None:
    seen = sightings(data)
    with demo() as d, chromium(height=844) as page:
        now = dt.datetime.now(dt.timezone.utc)
        alerts = [alert(observed_at=now - dt.timedelta(minutes=minutes, seconds=20), score=s["score"],
                        margin=max(s["margin"], 0.0), probe_quality=s["probe_quality"],
                        probe_crop=base64.b64encode(s["probe"]).decode(),
                        reference_thumbnail=base64.b64encode(s["reference"]).decode())
                  for minutes, s in zip((6, 0), seen, strict=True)]
        for a in alerts:
            d.send(a)
        page.goto(d.server.url)
        newest = page.locator(f'article[data-event="{alerts[-1].event_id}"]')
        newest.wait_for(timeout=10_000)
        page.locator(f'article[data-event="{alerts[0].event_id}"]').wait_for(timeout=10_000)
        out.mkdir(parents=True, exist_ok=True)
        _shot(page, out / "handheld-phone.png")
        newest.locator("button.confirm").click()
        page.locator("#pin-input").fill(PINS["4711"])
        page.locator("#pin-ok").click()
        newest.locator(".decisions li.sent").wait_for(timeout=10_000)
        newest.locator(".details summary").click()
        page.set_viewport_size({"width": 390, "height": 1420})  # the whole card, details open
        page.evaluate("window.scrollTo(0, 0)")
        _shot(page, out / "handheld.png")
    print(f"wrote {out}/handheld-phone.png, handheld.png (probe frames {[s['frame'] for s in seen]}, "
          f"scores {[s['score'] for s in seen]})")


def _shot(page: Any, path: Path) -> None:
    for image in page.locator("article img[src]").all():
        image.evaluate("img => img.decode()")  # every face drawn before the shot
    page.screenshot(path=str(path))


def latency(count: int) -> None:
    crop = base64.b64encode(cv2.imencode(".jpg", np.full((112, 112, 3), 128, np.uint8))[1].tobytes()).decode()
    delays = []
    with demo() as d, chromium(bypass_csp=True) as page:  # bypass: the probe below is injected script
        page.goto(d.server.url)
        page.locator("#link.on").wait_for(timeout=10_000)
        for i in range(count):
            a = alert(label=f"Latency {i}", score=0.6, margin=0.1, probe_quality=0.8, probe_crop=crop)
            page.evaluate("""id => { window.seenAt = null; new MutationObserver((_, o) => {
                if (document.querySelector(`article[data-event="${id}"]`)) {
                  window.seenAt = performance.timeOrigin + performance.now(); o.disconnect(); } })
                .observe(document.getElementById("alerts"), {childList: true}); }""", a.event_id)
            sent = time.time()
            d.send(a)
            page.wait_for_function("window.seenAt !== null", timeout=10_000)
            delays.append(page.evaluate("window.seenAt") / 1000 - sent)
    delays.sort()
    print(f"device publish -> card in page, {count} alerts: median {statistics.median(delays) * 1000:.1f} ms, "
          f"p90 {delays[int(0.9 * (count - 1))] * 1000:.1f} ms, max {delays[-1] * 1000:.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    shot = sub.add_parser("screenshot", help="take docs/img/handheld-phone.png and handheld.png")
    shot.add_argument("--out", type=Path, default=REPO / "docs" / "img", help="folder for the two PNGs")
    shot.add_argument("--data", type=Path, default=data_root())
    lat = sub.add_parser("latency", help="time from the device's publish to the alert on the page")
    lat.add_argument("--alerts", type=int, default=30)
    args = parser.parse_args()
    if args.action == "screenshot":
        screenshot(args.out, args.data)
    else:
        latency(args.alerts)
