"""`edge run` for real: a provisioned device, a real broker, a watchlist synced over MQTT, HQ ingest storing."""

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edge.demo.trial import TrialFleet

DEVICE = "demo-cam"


def edge(*argv: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edge", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kw)


@pytest.fixture
def fleet(make_fleet) -> TrialFleet:
    return make_fleet("demo", DEVICE)


def hq_events(fleet: TrialFleet, kind: str) -> list[dict]:
    out = subprocess.run([sys.executable, "-m", "edge", "hq", "events", "--db", str(fleet.hq_db), "--kind", kind,
                          "--json", "--limit", "10000"], capture_output=True, text=True, check=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_demo_clip_alerts_reach_hq_and_nothing_else(fleet: TrialFleet, demo_dir: Path):
    broker = fleet.broker()
    broker.start()
    ingest = edge(*fleet.ingest_command(broker.port))
    try:
        bundle = fleet.build_watchlist([DEVICE], demo_dir, {"lin-manuel-miranda.png": "Lin-Manuel Miranda",
                                                            "alex-lacamoire.png": "Alex Lacamoire"}, 1,
                                       fleet.hq / "demo-v1.bundle")
        fleet.publish(bundle, broker.port)  # retained: the device is not even running yet
        config = fleet.device_config(DEVICE, str(demo_dir / "short_hamilton_clip.mp4"), broker.port,
                                     place="demo: one machine")
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # stands in for systemd (Type=notify)
        notify.bind(str(fleet.root / "notify.sock"))
        notify.settimeout(0.1)
        # Fed every 0.25 s (the clip plays in about a second), read while the device runs, as systemd does.
        env = {**os.environ, "NOTIFY_SOCKET": str(fleet.root / "notify.sock"), "WATCHDOG_USEC": "500000"}
        told: list[str] = []
        ran = threading.Event()

        def listen() -> None:  # until the device has exited and every message it sent is read
            while True:
                try:
                    told.append(notify.recv(4096).decode())
                except TimeoutError:
                    if ran.is_set():
                        return

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        device = subprocess.run([sys.executable, "-m", "edge", "run", "--config", str(config)],
                                capture_output=True, text=True, timeout=240, env=env)
        ran.set()
        listener.join(5)
        notify.close()
        assert device.returncode == 0, device.stderr[-3000:]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            matches = hq_events(fleet, "match")
            audits = hq_events(fleet, "audit")
            if matches and any(a["record"]["kind"] == "period_stop" for a in audits):
                break
            time.sleep(0.5)
    finally:
        ingest.terminate()
        ingest.wait(10)
        broker.stop()
    assert matches, f"no match event at HQ; device log:\n{device.stderr[-3000:]}"
    assert told[0] == "READY=1" and "WATCHDOG=1" in told and "STOPPING=1" in told, told
    assert max(i for i, t in enumerate(told) if t == "WATCHDOG=1") < told.index("STOPPING=1"), told
    assert any(t.startswith("STATUS=") and "fps" in t for t in told)
    assert {m["label"] for m in matches} == {"Lin-Manuel Miranda"}
    assert len({m["event_id"] for m in matches}) == len(matches)
    for m in matches:
        assert m["device"] == DEVICE and m["signature"]
        assert m["score"] >= m["threshold"] and m["case_ref"].startswith("DEMO-CASE")
        assert m["watchlist"]["version"] == 1
        # a two-person list sits on the floor the group ceiling raised: the alert says so
        assert m["threshold_policy"].startswith("floor: no group above 3 % false alarms"), m["threshold_policy"]
    kinds = [a["record"]["kind"] for a in audits]
    bodies = [a["record"]["body"] for a in audits]
    start = next(b for b, k in zip(bodies, kinds, strict=True) if k == "period_start")
    assert start["threshold_policy"] == matches[0]["threshold_policy"]
    assert start["embedder_sha256"] == matches[0]["models"]["embedder"]
    assert all(b["threshold_policy"] == matches[0]["threshold_policy"] for b, k in zip(bodies, kinds, strict=True)
               if k == "alert")
    installed = next(b for b, k in zip(bodies, kinds, strict=True) if k == "watchlist_installed")
    assert (installed["threshold"], installed["threshold_policy"]) == (matches[0]["threshold"],
                                                                       matches[0]["threshold_policy"])
    assert "watchlist_installed" in kinds and "period_start" in kinds and "period_stop" in kinds
    first_config = next(a["record"]["body"] for a in audits if a["record"]["kind"] == "config_changed")
    assert {c["key"]: c["new"] for c in first_config["changes"]}["match.mode"] == "constant_fpir"
    assert kinds.count("alert") == len(matches)
    states = hq_events(fleet, "watchlist_state")
    assert any(s["outcome"] == "installed" for s in states)
    # the device's own chain verifies
    log = fleet.state_dir(DEVICE) / "audit" / "audit.log"
    verify = subprocess.run([sys.executable, "-m", "edge", "audit", "verify", str(log), "--pub",
                             str(fleet.device_dir(DEVICE) / "device_signing.pub")], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr
