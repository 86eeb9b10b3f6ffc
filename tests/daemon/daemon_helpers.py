"""What the daemon's end-to-end tests share: `edge` as a subprocess, HQ's view of a device, its audit log."""

import contextlib
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from edge.demo.trial import TrialFleet
from edge.hq.broker import LocalBroker
from edge.keys import load_signing_private
from edge.link.mqtt import MqttClient
from edge.protocol import topics
from edge.protocol.adjudication import Adjudication
from edge.protocol.messages import new_event_id, utc_now


def edge(*argv: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edge", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kw)


def hq_events(fleet: TrialFleet, kind: str) -> list[dict]:
    out = subprocess.run([sys.executable, "-m", "edge", "hq", "events", "--db", str(fleet.hq_db), "--kind", kind,
                          "--json", "--limit", "100000"], capture_output=True, text=True, check=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def audit_lines(fleet: TrialFleet, device: str) -> list[dict]:
    """The device's own audit log, record by record."""
    log = fleet.state_dir(device) / "audit" / "audit.log"
    return [json.loads(line) for line in log.read_text().splitlines()]


def wait_for_hq_audit(fleet: TrialFleet, device: str, timeout: float = 30) -> list[dict]:
    """HQ's audit records of `device` once HQ holds as many as the device's log has (or after `timeout`)."""
    want = len(audit_lines(fleet, device))
    deadline = time.monotonic() + timeout
    while True:
        records = [a["record"] for a in hq_events(fleet, "audit") if a["record"]["device"] == device]
        if len({r["seq"] for r in records}) >= want or time.monotonic() > deadline:
            return records
        time.sleep(0.5)


def one_frame_folder(folder: Path, demo_dir: Path) -> Path:
    """A source of one still (a short `edge run`: the device starts, takes what waits for it, and stops)."""
    folder.mkdir()
    (folder / "a.jpg").write_bytes((demo_dir / "obama.jpg").read_bytes())
    return folder


def paired_device_once_run(fleet: TrialFleet, broker: LocalBroker, demo_dir: Path, folder: Path, device: str,
                           handheld: str) -> tuple[Path, Path]:
    """A handheld provisioned and paired with `device`, which has run once on one still (its pairing record is
    installed and its broker session exists, so what comes for it now is queued): (handheld folder, edge.toml)."""
    handheld_folder = fleet.provision_handheld(handheld, broker.port, "--officer", "4711=Sgt. Able")
    fleet.pair(handheld, device, broker)
    config = fleet.device_config(device, str(one_frame_folder(folder / "frame", demo_dir)), broker.port)
    assert run_device(config).returncode == 0
    return handheld_folder, config


def publish_decision(fleet: TrialFleet, port: int, handheld_folder: Path, device: str, handheld: str,
                     retain: bool) -> Adjudication:
    """Officer 4711's decision on a new alert id of `device`, signed by the paired handheld's own key."""
    decision = Adjudication(adjudication_id=new_event_id(), event_id=new_event_id(), device=device, handheld=handheld,
                            officer_id="4711", officer_name="Sgt. Able", decision="confirm", decided_at=utc_now())
    signed = decision.signed(load_signing_private(handheld_folder / "handheld_signing.key"))
    client = MqttClient(fleet.link(f"handheld-{handheld}", port, certs=handheld_folder / "tls"))
    client.start()
    try:
        client.wait_connected(10)
        assert client.publish_wait(topics.adjudications(handheld), signed, retain, 10).ok
    finally:
        client.stop()
    return decision


class NotifiedDevice:
    """`edge run` under a systemd notify socket with a 1 s watchdog: what it tells systemd, with the time."""

    def __init__(self, config: Path, folder: Path, timeout: float) -> None:
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(folder / "notify"))
        self.notify.settimeout(timeout)
        self.notes: list[tuple[float, str]] = []
        env = {**os.environ, "NOTIFY_SOCKET": str(folder / "notify"), "WATCHDOG_USEC": "1000000"}
        self.process = subprocess.Popen([sys.executable, "-m", "edge", "run", "--config", str(config)], env=env,
                                        stderr=subprocess.PIPE, text=True)

    def receive(self) -> None:
        """Wait (at most the timeout) for one notification and keep it."""
        with contextlib.suppress(TimeoutError):
            self.notes.append((time.monotonic(), self.notify.recv(4096).decode()))

    def ready_at(self) -> float | None:
        return next((t for t, n in self.notes if "READY=1" in n), None)

    def stop(self) -> str:
        """SIGTERM, wait for the exit; its standard error."""
        self.process.send_signal(signal.SIGTERM)
        _, err = self.process.communicate(timeout=60)
        self.notify.close()
        return err


def run_device(config: Path, source: str | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    """`edge -v run` to its end (a file source), logging at INFO."""
    extra = ["--source", source] if source else []
    return subprocess.run([sys.executable, "-m", "edge", "-v", "run", "--config", str(config), *extra],
                          capture_output=True, text=True, timeout=timeout)


def mount_tmpfs(where: Path, size: str) -> None:
    """A small tmpfs at `where` (a full disk on demand), or skip: mounting needs root with CAP_SYS_ADMIN."""
    where.mkdir(parents=True, exist_ok=True)
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)],
                                 capture_output=True, text=True)
    except FileNotFoundError:
        pytest.skip("no mount command")
    if mounted.returncode != 0:
        pytest.skip(f"mounting a tmpfs needs root with CAP_SYS_ADMIN ({mounted.stderr.strip()})")


def umount(where: Path) -> None:
    subprocess.run(["umount", str(where)], check=True)


def fill(folder: Path) -> None:
    """Fill the file system of `folder` to the last byte."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
        if free:
            os.posix_fallocate(fd, 0, free)
        os.lseek(fd, 0, os.SEEK_END)
        while True:
            os.write(fd, bytes(512))
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)


def run_paused_at_ready(config: Path, workdir: Path, while_paused: Callable[[int], None],
                        timeout: float = 240) -> tuple[int, str]:
    """`edge -v run` under a stand-in for systemd's notify socket: when the device says READY=1 (models
    loaded, frames about to flow) it is stopped (SIGSTOP), `while_paused(pid)` runs, and it goes on (SIGCONT).
    Returns its exit status and its log."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(workdir / "notify.sock"))
    sock.settimeout(timeout)
    log = workdir / "device.log"
    with open(log, "w") as out:
        device = subprocess.Popen([sys.executable, "-m", "edge", "-v", "run", "--config", str(config)],
                                  stdout=out, stderr=subprocess.STDOUT,
                                  env={**os.environ, "NOTIFY_SOCKET": str(workdir / "notify.sock")})
    try:
        while sock.recv(4096) != b"READY=1":
            pass
        device.send_signal(signal.SIGSTOP)
        try:
            while_paused(device.pid)
        finally:
            device.send_signal(signal.SIGCONT)
        device.wait(timeout)
    finally:
        sock.close()
        if device.poll() is None:
            device.kill()
            device.wait()
    return device.returncode, log.read_text()
