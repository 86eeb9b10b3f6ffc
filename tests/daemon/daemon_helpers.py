"""What the daemon's end-to-end tests share: `edge` as a subprocess, HQ's view of a device, its audit log."""

import json
import subprocess
import sys
import time
from pathlib import Path

from edge.demo.trial import TrialFleet


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


def run_device(config: Path, source: str | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    """`edge -v run` to its end (a file source), logging at INFO."""
    extra = ["--source", source] if source else []
    return subprocess.run([sys.executable, "-m", "edge", "-v", "run", "--config", str(config), *extra],
                          capture_output=True, text=True, timeout=timeout)
