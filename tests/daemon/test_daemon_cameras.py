"""One device, several cameras, for real: `edge run` with two [[cameras]], one of which never opens or never
delivers. The other's alerts still reach HQ naming their camera, and it alone keeps the systemd watchdog fed; the
status HQ receives shows the failing or silent one; the audit chain names the camera of every alert and count."""

import json
import subprocess
import sys
import time
from pathlib import Path

import cv2
from daemon_helpers import NotifiedDevice, audit_lines, hq_events, run_device

from edge.demo.trial import TrialFleet
from edge.link.mqtt import MqttClient
from edge.protocol import topics

DEVICE = "two-cams"


def _two_cameras(config: Path, front: str, rear: str) -> None:
    """The trial's one [camera] table becomes two [[cameras]] tables."""
    text = config.read_text()
    start = text.index("[camera]\n")
    end = text.index("\n", start + len("[camera]\n")) + 1
    config.write_text(text[:start] + f'[[cameras]]\nid = "front"\nsource = {json.dumps(front)}\n'
                      f'[[cameras]]\nid = "rear"\nsource = {json.dumps(rear)}\nstall_s = 1\n' + text[end:])


def _retained_status(fleet: TrialFleet, port: int) -> dict:
    statuses: list[dict] = []
    hq = MqttClient(fleet.link("hq-ingest", port),
                    on_message=lambda m: statuses.append(json.loads(m.payload)) if m.payload else None)
    hq.start()
    try:
        hq.wait_connected(10)
        hq.subscribe([topics.status(DEVICE)])
        deadline = time.monotonic() + 10
        while not statuses and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        hq.stop()
    assert statuses, "no retained status"
    return statuses[-1]


def test_a_failing_camera_does_not_stop_the_other(make_fleet, demo_dir: Path, tmp_path: Path) -> None:
    fleet: TrialFleet = make_fleet("cams", DEVICE)
    broker = fleet.broker()
    broker.start()
    ingest = subprocess.Popen([sys.executable, "-m", "edge", *fleet.ingest_command(broker.port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        bundle = fleet.build_watchlist([DEVICE], demo_dir, {"lin-manuel-miranda.png": "Lin-Manuel Miranda"}, 1,
                                       fleet.hq / "v1.bundle")
        fleet.publish(bundle, broker.port)
        config = fleet.device_config(DEVICE, "", broker.port)
        _two_cameras(config, str(demo_dir / "short_hamilton_clip.mp4"), str(tmp_path / "unplugged.mp4"))
        device = run_device(config)
        assert device.returncode == 0, device.stderr[-3000:]
        assert "camera rear:" in device.stderr and "unplugged.mp4" in device.stderr, device.stderr[-3000:]
        status = _retained_status(fleet, broker.port)
        deadline = time.monotonic() + 20
        while not (matches := hq_events(fleet, "match")) and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        ingest.terminate()
        ingest.wait(10)
        broker.stop()
    assert matches and {m["camera"] for m in matches} == {"front"}, device.stderr[-3000:]
    counters = status["counters"]
    assert counters["cam.rear.source_failed"] == 1 and counters["cam.rear.frames"] == 0
    assert counters["cam.front.source_failed"] == 0 and counters["cam.front.frames"] > 0
    assert counters["cam.rear.seconds_without_frame"] >= 1
    assert counters["frames"] == counters["cam.front.frames"]
    records = audit_lines(fleet, DEVICE)
    bodies = {kind: [r["body"] for r in records if r["kind"] == kind] for kind in ("period_start", "alert", "counters")}
    assert [(b["camera"], b["cameras"]) for b in bodies["period_start"]] == [("front", ["front", "rear"])]
    assert bodies["alert"] and {b["camera"] for b in bodies["alert"]} == {"front"}
    assert {b.get("camera") for b in bodies["counters"] if b["frames"]} == {"front"}
    verify = subprocess.run([sys.executable, "-m", "edge", "audit", "verify",
                             str(fleet.state_dir(DEVICE) / "audit" / "audit.log"), "--pub",
                             str(fleet.device_dir(DEVICE) / "device_signing.pub")], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def _long_clip(demo_dir: Path, out: Path, repeats: int = 4) -> Path:
    """The demo clip played `repeats` times over (a few seconds of frames at the pipeline's pace)."""
    frames = []
    src = cv2.VideoCapture(str(demo_dir / "short_hamilton_clip.mp4"))
    while (got := src.read())[0]:
        frames.append(got[1])
    src.release()
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (width, height))
    for _ in range(repeats):
        for frame in frames:
            writer.write(frame)
    writer.release()
    return out


def test_one_silent_camera_is_shown_and_logged_while_the_other_feeds_the_watchdog(
        make_fleet, demo_dir: Path, tmp_path: Path) -> None:
    fleet: TrialFleet = make_fleet("cams", DEVICE)
    broker = fleet.broker()
    broker.start()
    config = fleet.device_config(DEVICE, "", broker.port)
    _two_cameras(config, str(_long_clip(demo_dir, tmp_path / "long.avi")), "/dev/video97")  # rear: never there
    device = NotifiedDevice(config, tmp_path, 0.2)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and device.process.poll() is None:
            device.receive()
            ready = device.ready_at()
            if ready and time.monotonic() - ready > 8:  # the front clip has ended; rear is still awaited
                break
    finally:
        err = device.stop()
    try:
        status = _retained_status(fleet, broker.port)
    finally:
        broker.stop()
    assert device.process.returncode == 0, err[-3000:]
    ready_at = device.ready_at()
    assert ready_at is not None, "edge run never told systemd it was ready"
    fed = [t for t, n in device.notes if "WATCHDOG=1" in n]
    assert any(t > ready_at + 2.5 for t in fed), "the watchdog starved while the front camera delivered frames"
    assert err.count("camera rear: no frame processed for 1 s") == 1, err[-3000:]
    assert "camera front: no frame processed" not in err and "every camera silent" not in err, err[-3000:]
    counters = status["counters"]
    assert counters["cam.rear.seconds_without_frame"] >= 5 and counters["cam.rear.frames"] == 0
    assert counters["cam.rear.source_failed"] == 0  # waited for, not failed: it may yet be plugged in
    assert counters["cam.front.frames"] == 4 * 275 and counters["seconds_without_frame"] >= 5
