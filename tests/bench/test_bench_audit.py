"""`edge bench audit` on a small log: it writes the log once, reuses it, and reports each figure with the machine,
thread count and target it is held to."""

import json
from pathlib import Path

import pytest

from edge.cli import main


def test_audit_benchmark_reports_its_figures_and_reuses_its_log(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    log, out = tmp_path / "audit.log", tmp_path / "audit.json"
    argv = ["bench", "audit", "--records", "300", "--runs", "1", "--log", str(log), "--report", str(out)]
    assert main(argv) == 0
    figures = json.loads(out.read_text())
    assert figures["records"] == 300 and figures["log_written_s"] > 0
    assert figures["command"] == f"edge bench audit --records 300 --runs 1 --log {log} --report {out}"
    for name in ("verify_peak_mb", "verify_records_per_s"):
        figure = figures[name]
        assert figure["value"] > 0 and figure["target"] > 0 and isinstance(figure["met"], bool), name
        assert figure["machine"] == figures["machine"] and figure["threads"] == 1, name
    assert figures["verify_peak_mb"]["met"]  # a small log stays far under the bound
    assert "peak resident" in capsys.readouterr().out

    written = log.read_bytes()
    assert main(argv) == 0
    assert "reusing" in capsys.readouterr().err and log.read_bytes() == written
    assert "log_written_s" not in json.loads(out.read_text())


def test_audit_benchmark_never_overwrites_a_log_it_has_no_key_for(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "audit.log"
    log.write_bytes(b"a device's log\n")
    assert main(["bench", "audit", "--records", "300", "--log", str(log)]) == 2
    assert f"not its public key {log}.pub.pem" in capsys.readouterr().err
    assert log.read_bytes() == b"a device's log\n"


def test_audit_benchmark_refuses_a_log_too_short_to_be_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "audit", "--records", "3"]) == 2
    assert "give at least 10 records" in capsys.readouterr().err
