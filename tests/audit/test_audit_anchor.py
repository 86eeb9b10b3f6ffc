"""A log whose end was cut off (`head -n 7 audit.log`) is still a valid chain; given a head the device announced
outside the file (`--anchor SEQ:HASH`), `edge audit verify` names what is missing, also after the device went on
writing on the cut file."""

import json
from pathlib import Path

import pytest
from audit_helpers import DEVICE, counters, read_lines, write_log
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.audit.anchor import HeadAnchor
from edge.audit.log import AuditLog
from edge.audit.records import AuditRecord
from edge.cli import main
from edge.errors import EdgeError


def verify(capsys: pytest.CaptureFixture[str], log: Path, pub: Path, *extra: str) -> tuple[int, list[str]]:
    capsys.readouterr()
    rc = main(["audit", "verify", str(log), "--pub", str(pub), *extra])
    out = capsys.readouterr().out
    return rc, [line.removeprefix("PROBLEM: ") for line in out.splitlines() if line.startswith("PROBLEM: ")]


def cut(log: Path, lines: int) -> None:
    """`head -n LINES log > log`."""
    log.write_bytes(b"".join(read_lines(log)[:lines]))


def test_cut_log_verifies_alone_but_not_against_the_announced_head(
        tmp_path: Path, device_key: Ed25519PrivateKey, pub_pem: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "audit.log"
    write_log(log, device_key, minutes=10, every=5)
    head = json.loads(read_lines(log)[-1])  # what the device's status announced last
    anchor = f"{head['seq']}:{head['hash']}"
    assert verify(capsys, log, pub_pem, "--anchor", anchor) == (0, [])
    cut(log, 7)
    assert verify(capsys, log, pub_pem) == (0, [])  # the chain alone cannot tell
    assert verify(capsys, log, pub_pem, "--anchor", anchor) == (1, [
        f"records 7-{head['seq']} missing: the device announced seq {head['seq']} ({head['hash'][:12]}…) but it "
        "ends at seq 6: the log's end was cut off (or an older copy put back)"])

    # the device goes on writing on the cut file: a valid chain again, but not the one it announced
    with AuditLog.open(log, device_key, 5, device_id=DEVICE) as reopened:
        for minute in range(head["seq"]):
            reopened.append("counters", counters(60 * minute))
    rc, problems = verify(capsys, log, pub_pem, "--anchor", anchor)
    assert (rc, problems) == (1, [f"record seq {head['seq']} is not the one the device announced "
                                  f"({head['hash'][:12]}…): the log was cut and written again from there or earlier"])


def test_a_bad_anchor_is_a_clear_error(tmp_path: Path, device_key: Ed25519PrivateKey, pub_pem: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "audit.log"
    write_log(log, device_key, minutes=2)
    assert main(["audit", "verify", str(log), "--pub", str(pub_pem), "--anchor", "12"]) == 2
    assert "anchor '12': give SEQ:HASH" in capsys.readouterr().err


def test_device_refuses_to_go_on_with_a_log_cut_after_its_last_checkpoint(
        tmp_path: Path, device_key: Ed25519PrivateKey) -> None:
    """The device keeps each checkpoint's head beside the log (what `edge run` wires up) and checks it at start."""
    log = tmp_path / "audit.log"
    anchor = HeadAnchor(log)
    uploaded: list[AuditRecord] = []
    with AuditLog.open(log, device_key, 5, device_id=DEVICE, on_record=anchor.chained(uploaded.append)) as audit:
        for minute in range(12):
            audit.append("counters", counters(60 * minute))
    last = json.loads(read_lines(log)[-1])
    assert len(uploaded) == len(read_lines(log)) and last["kind"] == "checkpoint"  # the close checkpoint
    anchor.check()  # intact: the device starts
    original = log.read_bytes()

    cut(log, 7)
    with pytest.raises(EdgeError, match=f"no longer holds record seq {last['seq']} .*its end was cut off"):
        anchor.check()
    with AuditLog.open(log, device_key, 5, device_id=DEVICE) as audit:  # written on past the old head
        for minute in range(12):
            audit.append("counters", counters(60 * minute))
    with pytest.raises(EdgeError, match="the record there now is another one"):
        anchor.check()

    log.write_bytes(original)
    audit = AuditLog.open(log, device_key, 5, device_id=DEVICE, on_record=anchor.chained(uploaded.append))
    for minute in range(3):  # then a crash: records after the last checkpoint are past the head kept, and fine
        audit.append("counters", counters(60 * minute))
    assert json.loads(read_lines(log)[-1])["kind"] == "counters"
    anchor.check()
    audit.close()
