"""Substitution and freshness for real: `edge run` on a provisioned device, mosquitto with the deploy config and
ACL, HQ's own commands (build, publish, timestamp, ingest, report), the demo clip.

(a) A valid HQ-signed bundle of another id, addressed to the device on its own topic, is refused and the
    genuine newer fleet list still installs and alerts. (b) HQ's freshness statement older than the device's
    watchlist.max_staleness_s: the device says stale (log, audit chain, state message to HQ) and, configured
    so, matches nobody. (c) The watchlist state folder wiped and an older list installed: the device reports the
    version it runs and HQ's report flags the version that went down.
"""

import json
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from watchlist_helpers import make_subjects

from edge.demo.trial import TrialFleet
from edge.keys import DEVICE_ENCRYPTION_PUB, load_encryption_public, load_signing_private
from edge.models import Manifest
from edge.watchlist.bundle import BundleSpec, EmbedderRef
from edge.watchlist.sealing import seal

DEVICE = "cam-fr"
PEOPLE = {"lin-manuel-miranda.png": "Lin-Manuel Miranda", "alex-lacamoire.png": "Alex Lacamoire"}


def run_device(config: Path) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "edge", "run", "--config", str(config)], capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def chain(fleet: TrialFleet) -> list[dict]:
    path = fleet.state_dir(DEVICE) / "audit" / "audit.log"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def hq(fleet: TrialFleet, *argv: object) -> str:
    return subprocess.run([sys.executable, "-m", "edge", "hq", *map(str, argv), "--db", str(fleet.hq_db)],
                          capture_output=True, text=True, check=True).stdout


def broker_args(fleet: TrialFleet, port: int) -> list[object]:
    cert, key = fleet.cert("hq-publisher")
    return ["--broker", f"127.0.0.1:{port}", "--ca", fleet.certs / "ca.crt", "--cert", cert, "--key", key]


def rogue_bundle(fleet: TrialFleet) -> Path:
    """A genuine bundle, signed by this HQ and addressed to the device, of a list the device does not follow."""
    spec = Manifest.load().spec("sface_128")
    now = datetime.now(timezone.utc)
    bundle = seal(BundleSpec(watchlist_id="district-9", version=50, issued=now, not_before=now,
                             expires=now + timedelta(days=1), scope="another district",
                             embedder=EmbedderRef(name=spec.name, sha256=spec.sha256, dim=spec.dim or 0)),
                  make_subjects(3, dim=spec.dim or 0),
                  [(DEVICE, load_encryption_public(fleet.device_dir(DEVICE) / DEVICE_ENCRYPTION_PUB))],
                  load_signing_private(fleet.hq_signing_key))
    path = fleet.hq / "district-9.bundle"
    path.write_bytes(bundle)
    return path


def test_substitution_staleness_and_a_wiped_device_on_a_real_fleet(trial_fleet: TrialFleet, demo_dir: Path):
    fleet = trial_fleet
    clip = str(demo_dir / "short_hamilton_clip.mp4")
    v1 = fleet.build_watchlist([DEVICE], demo_dir, PEOPLE, 1, fleet.hq / "v1.bundle")
    v2 = fleet.build_watchlist([DEVICE], demo_dir, PEOPLE, 2, fleet.hq / "v2.bundle")
    config = fleet.device_config(DEVICE, clip, 0)
    fleet.run("watchlist", "install", v1, "--config", config)  # the device runs the fleet's list, version 1
    broker = fleet.broker()
    broker.start()
    ingest = subprocess.Popen([sys.executable, "-m", "edge", *fleet.ingest_command(broker.port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        config = fleet.device_config(DEVICE, clip, broker.port)
        assert 'follow = ["fr"]' in config.read_text()
        # (a) the substitution: another id on the device's own topic; the genuine v2 on the fleet's
        fleet.run("watchlist", "publish", rogue_bundle(fleet), "--device", DEVICE, *broker_args(fleet, broker.port))
        fleet.run("watchlist", "publish", v2, "--fleet", "fr", "--hq-key", fleet.hq_signing_key,
                  *broker_args(fleet, broker.port))
        first = run_device(config)
        records = chain(fleet)
        refused = [r["body"] for r in records if r["kind"] == "watchlist_refused"]
        assert [(r["watchlist_id"], r["version"], r["kept_watchlist_id"]) for r in refused] == \
            [("district-9", 50, "fr")], first.stderr[-3000:]
        assert refused[0]["reason"].startswith("not_followed: bundle is watchlist district-9")
        installed = [r["body"] for r in records if r["kind"] == "watchlist_installed"]
        assert [(i["watchlist_id"], i["version"], i["previous_version"]) for i in installed] == [("fr", 2, 1)]
        alerts = [r["body"] for r in records if r["kind"] == "alert"]
        assert alerts and {(a["watchlist_id"], a["watchlist_version"]) for a in alerts} <= {("fr", 1), ("fr", 2)}

        # (b) HQ's statement (retained since the publish) is now older than the device allows: stale, no matching
        stale = config.read_text().replace('follow = ["fr"]', 'follow = ["fr"]\nmax_staleness_s = 1\n'
                                                              'stale_stops_matching = true')
        config.write_text(stale)
        time.sleep(1.5)
        second = run_device(config)
        records = chain(fleet)[len(records):]
        assert not [r for r in records if r["kind"] == "alert"], "a stale device matches nobody"
        fresh = [c for r in records if r["kind"] == "config_changed" for c in r["body"]["changes"]
                 if c["key"] == "watchlist.freshness"]
        assert fresh and fresh[0]["new"].startswith("stale: watchlist fr version 2"), second.stderr[-3000:]
        assert "over watchlist.max_staleness_s = 1" in fresh[0]["new"] and "matching stopped" in fresh[0]["new"]
        assert "matching nobody until HQ's next statement" in second.stderr
        # a fresh statement and the same device matches again
        fleet.run("watchlist", "timestamp", v2, "--fleet", "fr", "--hq-key", fleet.hq_signing_key,
                  *broker_args(fleet, broker.port))
        config.write_text(stale.replace("max_staleness_s = 1", "max_staleness_s = 600"))
        before = len(chain(fleet))
        third = run_device(config)
        assert [r for r in chain(fleet)[before:] if r["kind"] == "alert"], third.stderr[-3000:]
        assert "matching nobody" not in third.stderr

        # (c) the watchlist folder wiped, an older list installed by hand: HQ flags the version that went down
        shutil.rmtree(fleet.state_dir(DEVICE) / "watchlist")
        fleet.run("watchlist", "install", v1, "--config", config)
        run_device(config)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and "WATCHLIST VERSION WENT DOWN" not in (
                report := hq(fleet, "report", "--device", DEVICE)):
            time.sleep(0.5)
    finally:
        ingest.terminate()
        ingest.wait(10)
        broker.stop()
    assert "WATCHLIST VERSION WENT DOWN" in report and "runs fr version 1, below version 2" in report, report
