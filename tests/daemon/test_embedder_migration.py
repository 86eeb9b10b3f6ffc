"""Changing the fleet's embedder, for real: a device on a MobileFaceNet list moves to an SFace list over MQTT.

The device's software now defaults to SFace. It keeps matching on its installed MobileFaceNet list (with
MobileFaceNet) until HQ's re-enrolled SFace list verifies; a list for a third embedder is refused with a message
that says what to do; every alert names the embedder its list was enrolled with (docs/watchlist-migration.md).
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edge.demo.trial import TrialFleet
from edge.models import Manifest

DEVICE = "cam-mig"
PEOPLE = {"lin-manuel-miranda.png": "Lin-Manuel Miranda", "alex-lacamoire.png": "Alex Lacamoire"}
MANIFEST = Manifest.load()
SFACE, MFN = MANIFEST.spec("sface_128").sha256, MANIFEST.spec("mobilefacenet_192").sha256


@pytest.fixture
def fleet(make_fleet) -> TrialFleet:
    return make_fleet("mig", DEVICE)


def run_device(config: Path) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "edge", "run", "--config", str(config)], capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def audit(fleet: TrialFleet) -> list[dict]:
    """The device's own chain, read after the run: what it installed, refused and alerted on."""
    path = fleet.state_dir(DEVICE) / "audit" / "audit.log"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def alerts(records: list[dict]) -> list[dict]:
    return [r["body"] for r in records if r["kind"] == "alert"]


def test_device_moves_from_a_mobilefacenet_list_to_an_sface_list_over_mqtt(fleet: TrialFleet, demo_dir: Path):
    config = fleet.device_config(DEVICE, str(demo_dir / "short_hamilton_clip.mp4"), 0)
    assert "[embedder]" not in config.read_text()  # the device runs the default: SFace
    # Before the change: the device's installed list was enrolled with MobileFaceNet.
    v1 = fleet.build_watchlist([DEVICE], demo_dir, PEOPLE, 1, fleet.hq / "v1.bundle", embedder="mobilefacenet_192")
    fleet.run("watchlist", "install", v1, "--config", config, "--embedder", "mobilefacenet_192")
    broker = fleet.broker()
    broker.start()
    try:
        config = fleet.device_config(DEVICE, str(demo_dir / "short_hamilton_clip.mp4"), broker.port)
        # A list for an embedder the device neither runs nor is configured for is refused; v1 stays.
        wrong = fleet.build_watchlist([DEVICE], demo_dir, PEOPLE, 2, fleet.hq / "v2.bundle", embedder="faceres_1024")
        fleet.publish(wrong, broker.port)
        first = run_device(config)
        records = audit(fleet)
        refused = [r["body"] for r in records if r["kind"] == "watchlist_refused"]
        assert [r["version"] for r in refused] == [2], first.stderr[-3000:]
        assert refused[0]["reason"].startswith("wrong_embedder") and refused[0]["kept_version"] == 1
        assert "edge watchlist build --embedder sface_128" in refused[0]["reason"]
        assert 'model = "faceres_1024"' in refused[0]["reason"]
        kept = alerts(records)
        assert kept and {a["watchlist_version"] for a in kept} == {1}, first.stderr[-3000:]
        assert {a["embedder_sha256"] for a in kept} == {MFN}, "v1 is matched with the model it was enrolled with"
        assert "matching with mobilefacenet_192, not the configured sface_128" in first.stderr

        # HQ re-enrols from the photos it keeps with the new default and publishes a new version.
        v3 = fleet.build_watchlist([DEVICE], demo_dir, PEOPLE, 3, fleet.hq / "v3.bundle")
        fleet.publish(v3, broker.port)
        second = run_device(config)
        records = audit(fleet)[len(records):]
        installed = [r["body"] for r in records if r["kind"] == "watchlist_installed"]
        assert [(i["version"], i["model_sha256"], i["previous_version"]) for i in installed] == [(3, SFACE, 1)]
        moved = alerts(records)
        assert moved, second.stderr[-3000:]
        assert all(a["embedder_sha256"] == (SFACE if a["watchlist_version"] == 3 else MFN) for a in moved)
        assert any(a["watchlist_version"] == 3 for a in moved), second.stderr[-3000:]
        assert {a["subject_id"] for a in moved} == {"DEMO-001"}  # Lin-Manuel Miranda, as before the change
        assert "switching the embedder from mobilefacenet_192" in second.stderr

        # Restarted, the device loads v3 and embeds with SFace from the first frame.
        before = len(audit(fleet))
        third = run_device(config)
        after = alerts(audit(fleet)[before:])
    finally:
        broker.stop()
    assert after and {(a["watchlist_version"], a["embedder_sha256"]) for a in after} == {(3, SFACE)}
    assert "matching with" not in third.stderr and "switching the embedder" not in third.stderr
