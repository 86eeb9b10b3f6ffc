"""A handheld provisioned by an older version: its handheld.toml was written 0644 and its PINs may be 4 digits.

Before: new files were 0600 and new PINs 6-12 digits, but an existing handheld.toml stayed readable by every
user of the machine, and a 4-digit PIN's hash in it (a minute's work offline at 50 ms a guess) still decided
as that officer. Real broker, the fleet's provisioned handheld, `edge handheld` as a process.
"""

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from handheld_helpers import PINS, FleetFiles, running_handheld
from sample_alerts import make_alert

from edge.config.handheld import HandheldFile
from edge.config.pin import PinHash
from edge.handheld.app import DecisionError


def older_pin_hash(pin: str) -> str:
    """The hash an older `edge handheld provision` wrote for a PIN of 4 digits (same format and cost)."""
    salt = os.urandom(16)
    return PinHash(14, 8, 1, salt, Scrypt(salt=salt, length=32, n=2**14, r=8, p=1).derive(pin.encode())).text()


def test_a_4_digit_pin_set_by_an_older_version_no_longer_decides(fleet: FleetFiles, tmp_path: Path) -> None:
    officers = HandheldFile.load(fleet.handheld_toml).handheld.officers
    older = [o.model_copy(update={"pin": older_pin_hash("1234")}) if o.id == "4711" else o for o in officers]
    with running_handheld(fleet, tmp_path, officers=older) as (app, _):
        alert = make_alert("cam01", "h1")
        assert app.inbox.add_alert(alert, time.time())
        with pytest.raises(DecisionError, match="wrong PIN") as refused:
            app.decide(alert.event_id, "4711", "confirm", pin="1234")
        assert refused.value.status == 403
        assert app.decide(alert.event_id, "4712", "confirm", pin=PINS["4712"])  # a 6+ digit PIN still decides


def test_edge_handheld_narrows_a_handheld_toml_written_0644(fleet: FleetFiles) -> None:
    fleet.handheld_toml.chmod(0o644)
    handheld = subprocess.Popen([sys.executable, "-m", "edge", "handheld", "--config", str(fleet.handheld_toml),
                                 "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert handheld.stdout is not None
        started = handheld.stdout.readline()
    finally:
        handheld.terminate()
        _, err = handheld.communicate(timeout=30)
    assert "open http" in started, err[-2000:]
    assert stat.S_IMODE(fleet.handheld_toml.stat().st_mode) == 0o600
    assert "narrowed to 0600" in err, err[-2000:]
