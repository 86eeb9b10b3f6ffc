"""AuditLog on real files: restart, crash, torn write, full disk, threads, a second process, the outbox hook."""

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from audit_helpers import DEVICE, T0, FakeClock, alert, read_lines, write_log
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.audit.log import AuditLog
from edge.audit.records import AuditRecord, PeriodStopBody
from edge.audit.verify import verify_file
from edge.config.audit import AuditConfig
from edge.errors import EdgeError
from edge.keys import save_private


def stop(reason: str = "operator") -> PeriodStopBody:
    return PeriodStopBody(period_id="p1", reason=reason)


def kinds(path: Path) -> list[str]:
    return [json.loads(raw)["kind"] for raw in read_lines(path)]


def test_new_log_starts_with_a_signed_checkpoint_and_chains(tmp_path: Path, device_key: Ed25519PrivateKey) -> None:
    path = tmp_path / "sub" / "audit.log"  # the folder is created
    with AuditLog.open(path, device_key, 3, device_id=DEVICE) as log:
        records = [log.append("period_stop", stop(str(i))) for i in range(7)]
        assert log.head == (9, json.loads(read_lines(path)[-1])["hash"])
    assert [r.seq for r in records] == [1, 2, 3, 5, 6, 7, 9]
    assert kinds(path) == ["checkpoint"] + (["period_stop"] * 3 + ["checkpoint"]) * 2 + ["period_stop", "checkpoint"]
    assert [json.loads(raw)["body"].get("reason") for raw in read_lines(path) if b'"checkpoint"' in raw] == [
        "open", "count", "count", "close"]
    assert verify_file(path, [device_key.public_key()]).ok
    assert oct(path.stat().st_mode & 0o777) == "0o640"


def test_restart_continues_the_chain(tmp_path: Path, device_key: Ed25519PrivateKey) -> None:
    path = tmp_path / "audit.log"
    write_log(path, device_key, minutes=5)
    before = read_lines(path)
    with AuditLog.open(path, device_key, 10, device_id=DEVICE) as log:
        record = log.append("period_stop", stop("again"))
    after = read_lines(path)
    assert after[:len(before)] == before  # nothing rewritten
    reopened = json.loads(after[len(before)])
    assert (reopened["kind"], reopened["seq"], reopened["body"]["reason"]) == ("checkpoint", len(before), "open")
    assert reopened["prev"] == json.loads(before[-1])["hash"]
    assert record.seq == len(before) + 1
    report = verify_file(path, [device_key.public_key()])
    assert report.ok and report.last_seq == len(after) - 1


def test_torn_last_line_is_reported_then_recovered_on_restart(tmp_path: Path, device_key: Ed25519PrivateKey) -> None:
    path = tmp_path / "audit.log"
    write_log(path, device_key, minutes=5)
    good = path.read_bytes()
    spare = tmp_path / "spare.log"  # a record as the device would write it next, cut short by power loss
    with AuditLog.open(spare, device_key, 10, device_id=DEVICE) as other:
        whole = json.dumps(other.append("period_stop", stop()).as_dict()).encode()
    path.write_bytes(good + whole[:57])

    report = verify_file(path, [device_key.public_key()])
    assert [p.kind for p in report.problems] == ["truncated"]
    assert report.problems[0].message.startswith("truncated last line")

    with AuditLog.open(path, device_key, 10, device_id=DEVICE) as log:
        log.append("period_stop", stop("after crash"))
    lines = read_lines(path)
    assert b"".join(lines).startswith(good)
    opened = json.loads(lines[len(good.splitlines())])
    assert opened["body"]["reason"] == "open"
    assert opened["body"]["torn_tail"]["length"] == 57
    report = verify_file(path, [device_key.public_key()])
    assert report.ok
    assert any("reopened after a crash; an unfinished line of 57 bytes" in n for n in report.notes)


def test_whole_last_record_without_newline_is_kept(tmp_path: Path, device_key: Ed25519PrivateKey) -> None:
    path = tmp_path / "audit.log"
    write_log(path, device_key, minutes=2)
    data = path.read_bytes()
    path.write_bytes(data[:-1])
    assert verify_file(path, [device_key.public_key()]).ok  # a complete record is not a truncation
    with AuditLog.open(path, device_key, 10, device_id=DEVICE):
        pass
    assert path.read_bytes().startswith(data)
    assert verify_file(path, [device_key.public_key()]).ok


def test_altered_tail_or_other_device_is_refused(tmp_path: Path, device_key: Ed25519PrivateKey) -> None:
    path = tmp_path / "audit.log"
    write_log(path, device_key, minutes=2)
    with pytest.raises(EdgeError, match="belongs to device 'cam-01', not 'cam-02'"):
        AuditLog.open(path, device_key, 10, device_id="cam-02")
    lines = read_lines(path)
    lines[-1] = lines[-1].replace(b'"reason":"close"', b'"reason":"count"')
    path.write_bytes(b"".join(lines))
    with pytest.raises(EdgeError, match="ends with a record that does not verify"):
        AuditLog.open(path, device_key, 10, device_id=DEVICE)
    assert b"".join(lines) == path.read_bytes()  # evidence left as it was


def test_second_opener_is_refused(tmp_path: Path, device_key: Ed25519PrivateKey) -> None:
    path = tmp_path / "audit.log"
    with AuditLog.open(path, device_key, 10, device_id=DEVICE) as log:
        with pytest.raises(EdgeError, match="open in another process"):
            AuditLog.open(path, device_key, 10, device_id=DEVICE)
        log.append("period_stop", stop())
    assert verify_file(path, [device_key.public_key()]).ok


def test_concurrent_appends_from_two_threads_stay_one_chain(tmp_path: Path, device_key: Ed25519PrivateKey) -> None:
    path = tmp_path / "audit.log"
    seen: list[int] = []
    n = 300
    with AuditLog.open(path, device_key, 7, device_id=DEVICE, fsync="checkpoint",
                       on_record=lambda r: seen.append(r.seq)) as log:
        start = threading.Barrier(2)

        def worker(name: str) -> None:
            start.wait()
            for i in range(n):
                log.append("period_stop", stop(f"{name}-{i}"))

        threads = [threading.Thread(target=worker, args=(name,)) for name in ("a", "b")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    report = verify_file(path, [device_key.public_key()])
    assert report.ok, report.problems
    records = [json.loads(raw) for raw in read_lines(path)]
    assert [r["seq"] for r in records] == list(range(len(records))) == seen
    reasons = [r["body"]["reason"] for r in records if r["kind"] == "period_stop"]
    for name in ("a", "b"):  # every append is there once, each thread's in its own order
        assert [x for x in reasons if x.startswith(f"{name}-")] == [f"{name}-{i}" for i in range(n)]


def test_time_checkpoint_and_closed_log(tmp_path: Path, device_key: Ed25519PrivateKey) -> None:
    path = tmp_path / "audit.log"
    clock = FakeClock()
    log = AuditLog.open(path, device_key, 100, device_id=DEVICE, checkpoint_seconds=30, clock=clock)
    log.append("period_stop", stop())
    clock.t = T0 + 29
    log.append("period_stop", stop())
    clock.t = T0 + 31
    log.append("period_stop", stop())
    log.close()
    log.close()
    reasons = [json.loads(raw)["body"].get("reason") for raw in read_lines(path)]
    assert kinds(path) == ["checkpoint", "period_stop", "period_stop", "period_stop", "checkpoint"]
    assert reasons[-1] == "time"  # signed by time; nothing left unsigned at close
    with pytest.raises(EdgeError, match="closed"):
        log.append("period_stop", stop())


def test_append_refuses_a_body_of_another_kind(tmp_path: Path, device_key: Ed25519PrivateKey) -> None:
    with AuditLog.open(tmp_path / "audit.log", device_key, 10, device_id=DEVICE) as log:
        with pytest.raises(ValueError, match="not a kind/body pair"):
            log.append("period_start", stop())
        with pytest.raises(ValueError, match="not a kind/body pair"):
            log.append("checkpoint", stop())
        log.append("alert", alert("ev-1"))


def test_failing_upload_hook_loses_nothing(tmp_path: Path, device_key: Ed25519PrivateKey,
                                           caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "audit.log"
    uploaded: list[AuditRecord] = []

    def outbox(record: AuditRecord) -> None:
        if record.seq == 2:
            raise OSError("outbox full")
        uploaded.append(record)

    with AuditLog.open(path, device_key, 10, device_id=DEVICE, on_record=outbox) as log:
        for _ in range(3):
            log.append("period_stop", stop())
    assert [r.seq for r in uploaded] == [0, 1, 3, 4]
    assert len(read_lines(path)) == 5 and verify_file(path).ok
    assert "seq 2 is in" in caplog.text and "upload hook failed" in caplog.text


KILL_SCRIPT = """
import sys
from edge.audit.log import AuditLog
from edge.audit.records import PeriodStopBody
from edge.keys import load_signing_private
key = load_signing_private(__import__("pathlib").Path(sys.argv[2]))
log = AuditLog.open(sys.argv[1], key, 5, device_id="cam-01")
while True:
    print(log.append("period_stop", PeriodStopBody(period_id="p", reason="loop")).seq, flush=True)
"""


def test_killed_process_loses_no_acknowledged_record(tmp_path: Path, device_key: Ed25519PrivateKey) -> None:
    path, key_file = tmp_path / "audit.log", tmp_path / "device.key"
    save_private(device_key, key_file)
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(path), str(key_file)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    acknowledged = [int(proc.stdout.readline()) for _ in range(150)]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with AuditLog.open(path, device_key, 5, device_id=DEVICE) as log:
        log.append("period_stop", stop("restarted"))
    on_disk = {json.loads(raw)["seq"] for raw in read_lines(path)}
    assert set(acknowledged) <= on_disk
    report = verify_file(path, [device_key.public_key()])
    assert report.ok, report.problems


FULL_DISK_SCRIPT = """
import os, resource, signal, sys
from edge.audit.log import AuditLog, AuditWriteError
from edge.audit.records import PeriodStopBody
from edge.keys import load_signing_private
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG, as a full disk gives ENOSPC
key = load_signing_private(__import__("pathlib").Path(sys.argv[2]))
path = sys.argv[1]
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
def room(n):
    resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(path) + n, hard))
def stop(reason):
    return PeriodStopBody(period_id="p", reason=reason)
log = AuditLog.open(path, key, 2, device_id="cam-01")
size = os.path.getsize(path)
room(100)
try:
    log.append("period_stop", stop("x" * 150))
except AuditWriteError as exc:
    print("refused:", exc)
print("size unchanged:", os.path.getsize(path) == size)
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
first = log.append("period_stop", stop("a")).seq
room(400)  # the next record fits, the checkpoint due after it does not
print("written:", first, log.append("period_stop", stop("b")).seq)
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
print("written:", log.append("period_stop", stop("space again")).seq)
log.close()
"""


def test_full_disk_write_is_refused_and_undone(tmp_path: Path, device_key: Ed25519PrivateKey,
                                               caplog: pytest.LogCaptureFixture) -> None:
    path, key_file = tmp_path / "audit.log", tmp_path / "device.key"
    save_private(device_key, key_file)
    run = subprocess.run([sys.executable, "-c", FULL_DISK_SCRIPT, str(path), str(key_file)], capture_output=True,
                         text=True, timeout=60, check=True)
    assert "refused: audit record seq 1 (period_stop) not written" in run.stdout
    assert "size unchanged: True" in run.stdout and "written: 1 2" in run.stdout and "written: 3" in run.stdout
    assert "audit checkpoint after seq 2 not written" in run.stderr
    assert kinds(path) == ["checkpoint", "period_stop", "period_stop", "period_stop", "checkpoint"]
    report = verify_file(path, [device_key.public_key()])
    assert report.ok, report.problems
    assert "records 1-3: checkpoint late (the device could not write one in time, e.g. a full disk)" in report.notes


def test_audit_config_defaults_and_errors() -> None:
    cfg = AuditConfig()
    assert (cfg.checkpoint_every, cfg.fsync) == (100, "record")
    with pytest.raises(ValueError, match="fsync"):
        AuditConfig.model_validate({"fsync": "never"})
    with pytest.raises(ValueError, match="checkpoint_every"):
        AuditConfig.model_validate({"checkpoint_every": 0})
