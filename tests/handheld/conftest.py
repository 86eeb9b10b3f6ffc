"""A fleet built with the real commands (CA, HQ key, device and handheld provisioning, certificates, `edge hq
pair`), a real mosquitto with the deploy config and the generated ACL, handhelds, and headless Chromium.

Not tests/link's `fleet`: that one has no handheld keys and no pairing, which is what
these tests are about; the broker is the same LocalBroker with the same deploy configuration.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from handheld_helpers import PINS, FleetFiles, edge, hq_ingest, pair

from edge.hq.broker import LocalBroker, find_mosquitto
from edge.hq.store import EventStore

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def fleet_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FleetFiles, LocalBroker]]:
    """HQ `ingest` and `ops`, devices cam01 (paired with handheld h1) and cam02 (not paired), handheld h1 with
    two officers with PINs (PINS) and the two-officer rule, and a running broker whose ACL came from `edge hq pair`."""
    try:
        find_mosquitto()
    except Exception as exc:
        pytest.skip(f"mosquitto broker not installed: {exc}")
    root = tmp_path_factory.mktemp("handheld-fleet")
    keys, tls, registry = root / "keys", root / "tls", root / "registry.json"
    edge("hq", "pki", "init", "--out", root / "ca")
    edge("hq", "keys", "init", "--out", root / "hq")
    hq_pub = root / "hq" / "hq_signing.pub"
    for device in ("cam01", "cam02"):
        edge("device", "provision", "--id", device, "--hq-pub", hq_pub, "--out", keys / f"device-{device}")
        edge("hq", "pki", "issue", "--role", "device", "--id", device, "--ca-dir", root / "ca", "--out", tls,
             "--registry", registry)
    for hq, role in (("ingest", "ingest"), ("ops", "pairing")):  # ingest worker; the pairing tool's own session
        edge("hq", "pki", "issue", "--role", "hq", "--id", hq, "--hq-role", role, "--ca-dir", root / "ca", "--out", tls,
             "--registry", registry)
    broker = LocalBroker(root / "broker", root / "ca", root / "acl")
    handheld_dir = keys / "handheld-h1"
    pins = root / "pins.txt"
    pins.write_text("".join(f"{officer}={pin}\n" for officer, pin in PINS.items()))
    edge("handheld", "provision", "--id", "h1", "--hq-pub", hq_pub, "--officer", "4711=Sgt. Alex Able",
         "--officer", "4712=Cst. Bo Baker", "--two-officer-rule", "--pins-from", pins,
         "--broker", f"127.0.0.1:{broker.port}", "--out", handheld_dir)
    edge("hq", "pki", "issue", "--role", "handheld", "--id", "h1", "--ca-dir", root / "ca",
         "--out", handheld_dir / "tls", "--registry", registry)
    fleet = FleetFiles(root, broker.port, hq_pub, keys, tls, handheld_dir / "handheld.toml", registry)
    broker.start()
    try:
        pair(fleet, broker, "h1", "cam01")
        yield fleet, broker
    finally:
        broker.stop()


@pytest.fixture(scope="module")
def fleet(fleet_broker: tuple[FleetFiles, LocalBroker]) -> FleetFiles:
    return fleet_broker[0]


@pytest.fixture
def hq_store(fleet: FleetFiles, tmp_path: Path) -> Iterator[EventStore]:
    """HQ's store, filled by a running HQ ingest worker (the real one, in this process)."""
    with hq_ingest(fleet, tmp_path / "hq.sqlite") as store:
        yield store


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="Python package playwright not installed")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium package")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def phone(browser: Any) -> Iterator[Any]:
    """A fresh page the size of a small phone (360 x 740 CSS pixels)."""
    context = browser.new_context(viewport={"width": 360, "height": 740}, device_scale_factor=2)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()
