"""`edge run` refuses to go on with an audit log whose end was cut off since the device last wrote a checkpoint
(the head it keeps beside the log, `edge.audit.anchor`), naming the record it no longer holds."""

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from edge.audit.anchor import HeadAnchor
from edge.audit.log import AuditLog
from edge.audit.records import PeriodStopBody
from edge.cli import main
from edge.demo.trial import TrialFleet
from edge.keys import load_signing_private


def test_edge_run_refuses_a_cut_audit_log(make_fleet: Callable[[str, str], TrialFleet], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    fleet = make_fleet("trial", "cam01")
    config = fleet.device_config("cam01", str(tmp_path / "no-such-clip.mp4"), port=1)
    log = fleet.state_dir("cam01") / "audit" / "audit.log"  # the default audit.path under state_dir
    key = load_signing_private(fleet.device_dir("cam01") / "device_signing.key")
    with AuditLog.open(log, key, 3, device_id="cam01", on_record=HeadAnchor(log).chained(lambda r: None)) as audit:
        for n in range(10):  # as an earlier run of the device wrote them
            audit.append("period_stop", PeriodStopBody(period_id=f"p{n}", reason="operator"))
    last = json.loads(log.read_bytes().splitlines()[-1])
    log.write_bytes(b"".join(log.read_bytes().splitlines(keepends=True)[:7]))  # head -n 7

    capsys.readouterr()
    assert main(["run", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"audit log {log} no longer holds record seq {last['seq']}" in err and "its end was cut off" in err
    assert f"--anchor {last['seq']}:{last['hash']}" in err
    assert len(log.read_bytes().splitlines()) == 7  # left as it was found, as evidence
