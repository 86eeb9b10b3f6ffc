"""The README's first command, as a user runs it: `edge demo` from start to summary."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge.hq.broker import find_mosquitto


def test_edge_demo_end_to_end(tmp_path: Path, data_dir: Path):
    try:
        find_mosquitto()
    except Exception as exc:
        pytest.skip(f"mosquitto not installed: {exc}")
    out = tmp_path / "summary.json"
    run = subprocess.run([sys.executable, "-m", "edge", "demo", "--workdir", str(tmp_path / "demo"), "--report",
                          str(out)], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "EDGE_TEST_DATA": str(data_dir)})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    summary = json.loads(out.read_text())
    assert summary["people_alerted"] == ["Lin-Manuel Miranda"]
    assert summary["alerts_raised"] >= 1
    assert summary["match_events_at_hq"] == summary["alerts_raised"]
    assert summary["alerts_adjudicated"] == summary["alerts_raised"]
    assert summary["audit_chain_verified"] is True
    assert summary["audit_records_at_hq"] == summary["audit_records_on_device"]  # the closing checkpoint too
    assert "handheld page: http://127.0.0.1:" in run.stdout
    after_url = run.stdout.split("handheld page: http://127.0.0.1:", 1)[1].splitlines()[1]
    assert "closes when the clip ends" in after_url and "`edge demo --manual`" in after_url, after_url
    assert "`edge demo --manual` keeps it up" in run.stdout.split("summary", 1)[1]
    # The device sends the officer why the person is listed and where it is, beside the photos.
    assert ("alert on the handheld: Lin-Manuel Miranda (demo, case DEMO-CASE-001, legal basis: demonstration only: "
            "not a real case; seen at demo: one machine;") in run.stdout
    assert "summary" in run.stdout and "device audit chain verified     yes" in run.stdout


def test_demo_says_the_page_closes_unless_manual():
    """The printed URL dies with the demo: the line after it says so and names --manual; --manual says Ctrl-C."""
    from edge.demo.run import page_lifetime

    scripted, manual = page_lifetime(False), page_lifetime(True)
    assert "closes when the clip ends" in scripted and "`edge demo --manual`" in scripted
    assert "until you press Ctrl-C" in manual and "closes" not in manual
