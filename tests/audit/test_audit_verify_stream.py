"""The streaming verifier against the whole-file verifier it replaced: the same report, problem for problem and
note for note, on every tampered log and set of ingested records of tampered.py (reference recorded with the
old verifier in data/verify-reference.json); and tamperings the streaming design must get right, from first
principles: records far out of place, copies far from their original, the end of a log cut off."""

import hashlib
import json
from pathlib import Path

import pytest
from audit_helpers import read_lines, rehash
from tampered import DEVICE_KEY, KEYS, REFERENCE, base_log, file_cases, record_cases

from edge.audit.records import AuditRecord
from edge.audit.verify import verify_file, verify_records
from edge.hq.report import build_report

RECORDED = json.loads(REFERENCE.read_text())
PUB = [DEVICE_KEY.public_key()]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tampered")


@pytest.fixture(scope="module")
def logs(folder: Path) -> dict[str, tuple[str, bytes]]:
    return file_cases(folder)


@pytest.fixture(scope="module")
def ingested(folder: Path) -> dict[str, tuple[str, list[AuditRecord]]]:
    return record_cases(folder)


def test_cases_are_the_recorded_ones(folder: Path, logs: dict, ingested: dict) -> None:
    assert hashlib.sha256(base_log(folder).read_bytes()).hexdigest() == RECORDED["base_log_sha256"], (
        "the log the cases start from changed (audit_helpers.write_log or AuditLog): re-record, see tampered.py")
    assert (sorted(logs), sorted(ingested)) == (sorted(RECORDED["file"]), sorted(RECORDED["records"]))


@pytest.mark.parametrize("name", sorted(RECORDED["file"]))
def test_log_report_is_the_whole_file_verifiers(name: str, logs: dict, tmp_path: Path) -> None:
    keys, content = logs[name]
    path = tmp_path / "audit.log"
    path.write_bytes(content)
    assert verify_file(path, KEYS[keys]).model_dump(mode="json", exclude={"source"}) == RECORDED["file"][name]


@pytest.mark.parametrize("name", sorted(RECORDED["records"]))
def test_ingested_report_is_the_whole_file_verifiers(name: str, ingested: dict) -> None:
    keys, records = ingested[name]
    assert verify_records(records, KEYS[keys]).model_dump(mode="json", exclude={"source"}) == RECORDED["records"][name]


@pytest.mark.parametrize("name", sorted(RECORDED["records"]))
def test_deployment_report_states_the_same_integrity(name: str, ingested: dict) -> None:
    """HQ's report verifies its records with the same verifier, and says what it found first."""
    keys, records = ingested[name]
    report = build_report(records, keys=KEYS[keys], clock=lambda: 0.0)
    expected = RECORDED["records"][name]
    assert report.integrity_problems == [p["message"] for p in expected["problems"]]
    assert (report.signatures_checked, report.signed_through) == (expected["signatures_checked"],
                                                                  expected["signed_through"])


@pytest.fixture
def lines(folder: Path) -> list[bytes]:
    return read_lines(base_log(folder))


def _verify(tmp_path: Path, lines: list[bytes]) -> tuple[list[str], list[str], int]:
    path = tmp_path / "audit.log"
    path.write_bytes(b"".join(lines))
    report = verify_file(path, PUB)
    return [p.message for p in report.problems], report.notes, report.records


def test_records_far_out_of_place_are_each_named(tmp_path: Path, lines: list[bytes]) -> None:
    """Every record between them is in its place: only the two moved ones are reordered."""
    lines[3], lines[60] = lines[60], lines[3]
    assert _verify(tmp_path, lines) == (["records 60-60 reordered (file order 60) at lines 4-4",
                                         "records 3-3 reordered (file order 3) at lines 61-61"], [], 65)


def test_copy_far_from_its_original_is_inserted(tmp_path: Path, lines: list[bytes]) -> None:
    copied = [*lines, lines[2]]
    assert _verify(tmp_path, copied)[0] == [
        "record at line 66 inserted (a copy of seq 2, which the chain gives to line 3)"]
    forged = json.loads(lines[2])
    forged["body"]["place"] = "elsewhere"
    assert _verify(tmp_path, [*lines, rehash(forged)])[0] == [
        "record at line 66 inserted (claims seq 2, which the chain gives to line 3)"]


def test_end_cut_off_is_not_a_problem_but_its_unsigned_tail_is_noted(tmp_path: Path, lines: list[bytes]) -> None:
    """A log cut at a line boundary is a shorter log: only records HQ already holds show what is missing."""
    assert _verify(tmp_path, lines[:-1]) == ([], ["record 63 after the last checkpoint: not signed yet"], 64)


def test_corrupted_checkpoint_signature(tmp_path: Path, lines: list[bytes]) -> None:
    checkpoint = next(i for i, raw in enumerate(lines) if i and json.loads(raw)["kind"] == "checkpoint")
    record = json.loads(lines[checkpoint])
    record["body"]["signature"] = record["body"]["signature"][::-1]
    lines[checkpoint] = rehash(record)
    assert _verify(tmp_path, lines)[0] == [
        f"checkpoint at seq {checkpoint}: bad signature",
        f"chain broken between records {checkpoint} and {checkpoint + 1} (line {checkpoint + 2}): record "
        f"{checkpoint + 1} links to a different hash (one of them was rewritten with a recomputed hash)"]


def test_seq_beyond_any_log_is_not_a_record(tmp_path: Path, lines: list[bytes]) -> None:
    """Seqs are kept as 64-bit integers: a larger one cannot come from a device, and is named, not a crash."""
    record = json.loads(lines[5])
    record["seq"] = 2**64
    lines.insert(6, rehash(record))
    assert _verify(tmp_path, lines)[0] == [
        f"record at line 7 is not an audit record: its seq {2**64} is beyond any log (2^63)"]


def test_ingested_forgery_is_named_by_its_hash(lines: list[bytes]) -> None:
    records = [AuditRecord.model_validate_json(raw) for raw in lines]
    forged = json.loads(lines[7])
    forged["body"]["subject_id"] = "s-99"
    forgery = AuditRecord.model_validate_json(rehash(forged))
    report = verify_records([forgery, *records, records[7]], PUB)
    assert [p.message for p in report.problems] == [
        f"record seq 7 ({forgery.hash[:12]}…) inserted (claims seq 7, which the chain gives to hash "
        f"{records[7].hash[:12]}…)"]
