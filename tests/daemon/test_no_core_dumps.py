"""A device or handheld process never dumps core (its memory holds frames, face crops and keys): `edge run`
as started, and the call both commands make first."""

import subprocess
import sys
import time
from pathlib import Path

from daemon_helpers import edge

from edge.demo.trial import TrialFleet

PR_GET_DUMPABLE = 3


def test_forbid_core_dumps_makes_a_process_undumpable() -> None:
    check = ("import ctypes, resource; from edge.hardening import forbid_core_dumps; "
             "libc = ctypes.CDLL(None); before = libc.prctl(3, 0, 0, 0, 0); forbid_core_dumps(); "
             "print(before, libc.prctl(3, 0, 0, 0, 0), resource.getrlimit(resource.RLIMIT_CORE))")
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True).stdout
    assert out.strip().split(maxsplit=2) == ["1", "0", "(0, 0)"], out


def test_a_started_device_has_no_core_limit(make_fleet, demo_dir: Path) -> None:
    fleet: TrialFleet = make_fleet("cores", "cam-cores")
    config = fleet.device_config("cam-cores", str(demo_dir / "short_hamilton_clip.mp4"), 1)  # no broker there
    device = edge("run", "--config", str(config))
    try:
        deadline = time.monotonic() + 60
        limits = ""
        while device.poll() is None and time.monotonic() < deadline:  # it waits 10 s for a watchlist at start
            limits = Path(f"/proc/{device.pid}/limits").read_text()
            if "Max core file size        0                    0" in limits:
                break
            time.sleep(0.05)
        assert device.poll() is None, device.communicate()
        assert "Max core file size        0                    0" in limits, limits
    finally:
        device.kill()
        device.wait()


def test_edge_replay_has_no_core_limit_either(demo_dir: Path, tmp_path: Path) -> None:
    """`edge replay` holds the same as a device: footage, face crops, a decrypted watchlist and the device key."""
    (tmp_path / "people").mkdir()
    (tmp_path / "people" / "Lin-Manuel Miranda.png").write_bytes((demo_dir / "lin-manuel-miranda.png").read_bytes())
    replay = edge("replay", "--source", str(demo_dir / "short_hamilton_clip.mp4"), "--enroll", str(tmp_path / "people"))
    try:
        deadline = time.monotonic() + 60
        limits = ""
        while replay.poll() is None and time.monotonic() < deadline:  # models, enrolment, then the clip
            limits = Path(f"/proc/{replay.pid}/limits").read_text()
            if "Max core file size        0                    0" in limits:
                break
            time.sleep(0.05)
        assert "Max core file size        0                    0" in limits, limits
    finally:
        replay.kill()
        replay.wait()
