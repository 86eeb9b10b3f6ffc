"""`edge audit verify` on real logs: a clean chain passes; each kind of tampering is named and fails."""

import json
import random
from pathlib import Path

import pytest
from audit_helpers import DEVICE, line_of, read_lines, rehash, rewrite_from, write_log
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.audit.records import AuditRecord
from edge.audit.verify import verify_records
from edge.cli import main
from edge.keys import key_id, save_public
from edge.protocol.canonical import canonical


def verify(capsys: pytest.CaptureFixture[str], log: Path, *pubs: Path, extra: tuple[str, ...] = ()
           ) -> tuple[int, list[str], str]:
    argv = ["audit", "verify", str(log), *extra] + [arg for pub in pubs for arg in ("--pub", str(pub))]
    rc = main(argv)
    out = capsys.readouterr().out
    return rc, [line.removeprefix("PROBLEM: ") for line in out.splitlines() if line.startswith("PROBLEM: ")], out


def seqs_of(lines: list[bytes], kind: str) -> list[int]:
    return [json.loads(raw)["seq"] for raw in lines if json.loads(raw)["kind"] == kind]


@pytest.fixture
def log(tmp_path: Path, device_key: Ed25519PrivateKey) -> Path:
    path = tmp_path / "audit.log"
    write_log(path, device_key)
    return path


def test_clean_chain_verifies(log: Path, pub_pem: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, problems, out = verify(capsys, log, pub_pem)
    last = len(read_lines(log)) - 1
    assert (rc, problems) == (0, [])
    assert f"device {DEVICE}, {last + 1} records (seq 0-{last}); signed through seq {last}" in out
    assert out.rstrip().endswith("OK")


def test_edited_byte_in_a_body_is_named(log: Path, pub_pem: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = read_lines(log)
    i = next(i for i, raw in enumerate(lines) if b'"frames":1505' in raw)
    lines[i] = lines[i].replace(b'"frames":1505', b'"frames":1905')
    log.write_bytes(b"".join(lines))
    rc, problems, _ = verify(capsys, log, pub_pem)
    seq = json.loads(lines[i])["seq"]
    assert (rc, problems) == (1, [f"record seq {seq} edited (hash mismatch) at line {i + 1}"])


@pytest.mark.parametrize("count", [1, 2])
def test_deleted_records_are_a_gap(log: Path, pub_pem: Path, capsys: pytest.CaptureFixture[str], count: int) -> None:
    lines = read_lines(log)
    first = seqs_of(lines, "alert")[1]
    i = line_of(lines, first)
    del lines[i:i + count]
    log.write_bytes(b"".join(lines))
    rc, problems, _ = verify(capsys, log, pub_pem)
    span = f"record {first}" if count == 1 else f"records {first}-{first + 1}"
    assert (rc, problems) == (1, [f"{span} missing (gap)"])


@pytest.mark.parametrize("where", ["after", "before"])
def test_forged_record_inserted_is_named_by_line(log: Path, pub_pem: Path, capsys: pytest.CaptureFixture[str],
                                                 where: str) -> None:
    lines = read_lines(log)
    seq = seqs_of(lines, "alert")[0]
    i = line_of(lines, seq)
    forged = json.loads(lines[i])
    forged["body"]["subject_id"] = "s-99"  # same seq, same prev, a consistent hash: a careful forgery
    at = i + 1 if where == "after" else i
    lines.insert(at, rehash(forged))
    log.write_bytes(b"".join(lines))
    rc, problems, _ = verify(capsys, log, pub_pem)
    genuine_line = i + 1 if where == "after" else i + 2
    assert (rc, problems) == (1, [f"record at line {at + 1} inserted (claims seq {seq}, which the chain gives to "
                                  f"line {genuine_line})"])


def test_copied_line_is_an_insertion(log: Path, pub_pem: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = read_lines(log)
    seq = seqs_of(lines, "adjudication")[0]
    i = line_of(lines, seq)
    lines.insert(i + 5, lines[i])
    log.write_bytes(b"".join(lines))
    rc, problems, _ = verify(capsys, log, pub_pem)
    assert (rc, problems) == (1, [f"record at line {i + 6} inserted (a copy of seq {seq}, which the chain gives to "
                                  f"line {i + 1})"])


def test_swapped_records_are_reordered(log: Path, pub_pem: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = read_lines(log)
    i = line_of(lines, 20)
    lines[i], lines[i + 1] = lines[i + 1], lines[i]
    log.write_bytes(b"".join(lines))
    rc, problems, _ = verify(capsys, log, pub_pem)
    assert (rc, problems) == (1, [f"records 20 and 21 reordered at lines {i + 1}-{i + 2}"])


def test_replaced_record_with_recomputed_hash_breaks_the_link(log: Path, pub_pem: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    lines = read_lines(log)
    seq = seqs_of(lines, "adjudication")[1]
    i = line_of(lines, seq)
    record = json.loads(lines[i])
    record["body"]["decision"] = "rejected"
    lines[i] = rehash(record)
    log.write_bytes(b"".join(lines))
    rc, problems, _ = verify(capsys, log, pub_pem)
    assert rc == 1
    assert problems == [f"chain broken between records {seq} and {seq + 1} (line {i + 2}): record {seq + 1} links "
                        "to a different hash (one of them was rewritten with a recomputed hash)"]


def test_truncated_mid_line_is_reported_as_such(log: Path, pub_pem: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = read_lines(log)
    log.write_bytes(b"".join(lines)[:-40])
    rc, problems, _ = verify(capsys, log, pub_pem)
    cut = len(lines[-1]) - 40
    assert rc == 1
    assert problems == [f"truncated last line (line {len(lines)}, {cut} bytes, after record seq {len(lines) - 2}): "
                        "a write cut short by a crash or power loss, or a cut file; the device removes and records "
                        "it when it restarts"]


def _rewrite_from(lines: list[bytes], seq: int, key: Ed25519PrivateKey | None = None) -> list[bytes]:
    return rewrite_from(lines, seq, lambda record: record["body"].__setitem__("faces_discarded", 0), key)


def test_rewrite_with_recomputed_hashes_fails_on_signatures(log: Path, pub_pem: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    lines = read_lines(log)
    seq = seqs_of(lines, "counters")[5]
    log.write_bytes(b"".join(_rewrite_from(lines, seq)))
    later = [s for s in seqs_of(lines, "checkpoint") if s > seq]
    rc, problems, _ = verify(capsys, log, pub_pem)
    assert rc == 1
    assert problems == [f"checkpoint at seq {s}: bad signature" for s in later]
    # Without the device key only the chain itself can be checked, and it is consistent: the result must not read
    # as success (exit 3, and the last line says why), unless the caller said it wants the chain only.
    rc, problems, out = verify(capsys, log)
    assert (rc, problems) == (3, [])
    assert out.splitlines()[-1] == "chain intact; signatures NOT checked: give --pub to detect a rewritten log"
    assert "OK" not in out.splitlines()
    rc, problems, out_chain_only = verify(capsys, log, extra=("--no-signatures",))
    assert (rc, problems, out_chain_only) == (0, [], out)


def test_signatures_cannot_be_both_checked_and_skipped(log: Path, pub_pem: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["audit", "verify", str(log), "--pub", str(pub_pem), "--no-signatures"])
    assert exited.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_problems_fail_with_or_without_a_key(log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Exit 3 is only for a chain that holds: a broken one fails (1) whichever way it is checked."""
    lines = read_lines(log)
    del lines[line_of(lines, 20)]
    log.write_bytes(b"".join(lines))
    for extra in ((), ("--no-signatures",)):
        rc, problems, out = verify(capsys, log, extra=extra)
        assert (rc, problems) == (1, ["record 20 missing (gap)"])
        assert out.splitlines()[-1] == "FAILED: 1 problem(s)"


def test_rewrite_signed_with_another_key_is_refused(log: Path, pub_pem: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    lines = read_lines(log)
    other = Ed25519PrivateKey.generate()
    log.write_bytes(b"".join(_rewrite_from(lines, seqs_of(lines, "counters")[2], other)))
    rc, problems, _ = verify(capsys, log, pub_pem)
    assert rc == 1
    assert problems[0] == "no checkpoint is signed by a given key: nothing in this log is authenticated"
    other_id = key_id(other.public_key())[:16]
    assert problems[1:] == [f"checkpoint at seq {s}: signed by key {other_id}…, which is not a given public key"
                            for s in seqs_of(lines, "checkpoint")]


def test_removed_checkpoints_are_detected(log: Path, pub_pem: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = read_lines(log)
    kept = [raw for raw in lines if json.loads(raw)["kind"] != "checkpoint" or json.loads(raw)["seq"] == 0]
    renumbered, prev = [], None
    for seq, raw in enumerate(kept):
        record = json.loads(raw)
        record["seq"], record["prev"] = seq, prev if prev is not None else record["prev"]
        raw = rehash(record)
        prev = json.loads(raw)["hash"]
        renumbered.append(raw)
    log.write_bytes(b"".join(renumbered))
    rc, problems, _ = verify(capsys, log, pub_pem)
    n = len(renumbered) - 1
    assert (rc, problems) == (1, [f"records 1-{n}: {n} records without a checkpoint, where the device signs at least "
                                  "every 10: checkpoints were removed or the chain rewritten"])


def test_forged_log_from_scratch_is_refused(tmp_path: Path, pub_pem: Path, capsys: pytest.CaptureFixture[str]) -> None:
    forged = tmp_path / "forged.log"
    write_log(forged, Ed25519PrivateKey.generate())
    rc, problems, _ = verify(capsys, forged, pub_pem)
    assert rc == 1 and problems[0].startswith("no checkpoint is signed by a given key")


def test_garbage_line_is_malformed(log: Path, pub_pem: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = read_lines(log)
    lines.insert(4, b"not a record\n")
    log.write_bytes(b"".join(lines))
    rc, problems, _ = verify(capsys, log, pub_pem)
    assert (rc, problems) == (1, ["line 5 is not an audit record (not JSON with seq, prev and hash)"])


def test_several_tamperings_are_all_named(log: Path, pub_pem: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = read_lines(log)
    a, b = line_of(lines, 12), line_of(lines, 30)
    lines[a] = lines[a].replace(b'"faces_seen":12', b'"faces_seen":2')
    lines[b], lines[b + 1] = lines[b + 1], lines[b]
    del lines[line_of(lines, 25)]
    log.write_bytes(b"".join(lines))
    rc, problems, _ = verify(capsys, log, pub_pem)
    assert rc == 1
    assert problems == [f"record seq 12 edited (hash mismatch) at line {a + 1}", "record 25 missing (gap)",
                        f"records 30 and 31 reordered at lines {b}-{b + 1}"]


def test_ingested_records_verify_in_any_order_with_duplicates(log: Path, device_key: Ed25519PrivateKey) -> None:
    records = [AuditRecord.model_validate_json(raw) for raw in read_lines(log)]
    delivered = records + random.Random(5).sample(records, 10)  # at-least-once delivery repeats some
    random.Random(7).shuffle(delivered)
    report = verify_records(delivered, [device_key.public_key()])
    assert report.ok and report.records == len(records) and report.signed_through == records[-1].seq

    delivered = [r for r in delivered if r.seq != 9]
    assert [p.message for p in verify_records(delivered, [device_key.public_key()]).problems] == [
        "record 9 missing (gap)"]

    edited = records[14].model_copy(update={"time": records[14].time + 1})
    report = verify_records([*records[:14], edited, *records[15:]], [device_key.public_key()])
    assert [p.message for p in report.problems] == ["record seq 14 edited (hash mismatch)"]


def test_record_is_its_own_mqtt_payload(log: Path) -> None:
    for raw in read_lines(log):
        record = AuditRecord.model_validate_json(raw)
        payload = record.model_dump_json()
        assert json.loads(payload)["schema"] == "edge.audit/1"
        assert canonical(json.loads(payload)) + b"\n" == raw  # what HQ receives hashes exactly as the file


def test_cli_errors_are_one_line_and_exit_2(tmp_path: Path, log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "verify", str(tmp_path / "absent.log")]) == 2
    assert "cannot read audit log" in capsys.readouterr().err
    not_a_key = tmp_path / "bad.pem"
    not_a_key.write_text("hello")
    assert main(["audit", "verify", str(log), "--pub", str(not_a_key)]) == 2
    assert "is not a PEM" in capsys.readouterr().err


def test_json_report(log: Path, pub_pem: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    old = tmp_path / "old.pub.pem"
    save_public(Ed25519PrivateKey.generate().public_key(), old)
    assert main(["audit", "verify", str(log), "--pub", str(old), "--pub", str(pub_pem), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["signatures_checked"] and report["problems"] == [] and report["device"] == DEVICE


def test_empty_log_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.log"
    empty.write_bytes(b"")
    rc, problems, _ = verify(capsys, empty)
    assert rc == 1 and problems == ["no audit records: a device's log starts with a checkpoint"]


def test_a_log_copied_as_text_is_one_finding_and_edits_inside_it_still_show(
        log: Path, pub_pem: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """CR LF line endings (a copy to or from Windows) are said once, not as every record edited; an edit made
    in such a copy is still named."""
    lines = read_lines(log)
    log.write_bytes(b"".join(raw.replace(b"\n", b"\r\n") for raw in lines))
    rc, problems, _ = verify(capsys, log, pub_pem)
    assert rc == 1 and len(problems) == 1 and problems[0].startswith(f"{len(lines)} line(s) end in CR LF")
    i = next(i for i, raw in enumerate(lines) if b'"frames":1505' in raw)
    lines[i] = lines[i].replace(b'"frames":1505', b'"frames":1905')
    log.write_bytes(b"".join(raw.replace(b"\n", b"\r\n") for raw in lines))
    rc, problems, _ = verify(capsys, log, pub_pem)
    assert rc == 1 and f"record seq {json.loads(lines[i])['seq']} edited (hash mismatch) at line {i + 1}" in problems
