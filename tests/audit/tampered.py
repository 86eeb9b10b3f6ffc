"""Tampered copies of one deterministic audit log (and of its records as HQ ingests them), and what a verifier
reports on each: the cases the streaming verifier is pinned on.

`data/verify-reference.json` holds the reports of the whole-file verifier the streaming one replaced (commit
c42dcf7, `git show c42dcf7:edge/audit/verify.py`), recorded with

    python tests/audit/tampered.py --record tests/audit/data/verify-reference.json --verifier OLD_VERIFY.py

Re-record (with the current verifier, the default) only after a deliberate change of messages or of the log
the cases start from (`audit_helpers.write_log`, `AuditLog`): the reference also holds that log's sha256.
"""

import argparse
import hashlib
import importlib.util
import json
import random
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from audit_helpers import FakeClock, counters, read_lines, rehash, rewrite_from, write_log
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.audit.log import AuditLog
from edge.audit.records import AuditRecord
from edge.protocol.canonical import canonical

DEVICE_KEY = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"edge test device key").digest())
OTHER_KEY = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"edge test other key").digest())
KEYS = {"device": [DEVICE_KEY.public_key()], "none": [], "other": [OTHER_KEY.public_key()],
        "both": [OTHER_KEY.public_key(), DEVICE_KEY.public_key()]}
REFERENCE = Path(__file__).parent / "data" / "verify-reference.json"
Lines = list[bytes]


def base_log(folder: Path) -> Path:
    path = folder / "base.log"
    if not path.exists():
        write_log(path, DEVICE_KEY, minutes=40, every=10)
    return path


def _edit(line: bytes, **fields: object) -> bytes:
    """The record with fields changed and its hash left as it was: an edit."""
    record = json.loads(line)
    record.update(fields)
    return canonical(record) + b"\n"


def _forge(line: bytes, **fields: object) -> bytes:
    """The record with fields changed and its hash recomputed: a careful forgery."""
    record = json.loads(line)
    record.update(fields)
    return rehash(record)


def _body(line: bytes, rehashed: bool, **fields: object) -> bytes:
    record = json.loads(line)
    return (_forge if rehashed else _edit)(line, body={**record["body"], **fields})


def _t(line: bytes) -> float:
    return json.loads(line)["time"] + 1


def _rewrite(lines: Lines, seq: int, key: Ed25519PrivateKey | None) -> Lines:
    """Edit one record (its time) and recompute every later hash and link (re-signing checkpoints with `key`)."""
    return rewrite_from(lines, seq, lambda record: record.__setitem__("time", record["time"] + 1), key)


def _renumbered_without_checkpoints(lines: Lines) -> Lines:
    out: Lines = []
    for raw in lines:
        record = json.loads(raw)
        if record["kind"] == "checkpoint" and record["seq"] != 0:
            continue
        record["seq"] = len(out)
        if out:
            record["prev"] = json.loads(out[-1])["hash"]
        out.append(rehash(record))
    return out


def _swap(lines: Lines, i: int, j: int) -> Lines:
    lines[i], lines[j] = lines[j], lines[i]
    return lines


def _move(lines: Lines, i: int, j: int) -> Lines:
    lines.insert(j, lines.pop(i))
    return lines


def _signature(line: bytes) -> bytes:
    record = json.loads(line)
    signature = record["body"]["signature"]
    record["body"]["signature"] = ("A" if signature[0] != "A" else "B") + signature[1:]
    return canonical(record) + b"\n"


# name -> (keys, the tampered file from the clean lines); seq == line index in the clean log
FILE_CASES: dict[str, tuple[str, Callable[[Lines], Lines | bytes]]] = {
    "clean": ("device", lambda ls: ls),
    "clean, no key": ("none", lambda ls: ls),
    "clean, another key": ("other", lambda ls: ls),
    "clean, two keys": ("both", lambda ls: ls),
    "body edited": ("device", lambda ls: [*ls[:12], _body(ls[12], False, faces_seen=2), *ls[13:]]),
    "checkpoint policy edited": ("device", lambda ls: [*ls[:10], _body(ls[10], False, checkpoint_every=11),
                                                       *ls[11:]]),
    "checkpoint policy edited, rehashed": ("device", lambda ls: [*ls[:10], _body(ls[10], True, checkpoint_every=11),
                                                                 *ls[11:]]),
    "line deleted": ("device", lambda ls: ls[:20] + ls[21:]),
    "two lines deleted": ("device", lambda ls: ls[:20] + ls[22:]),
    "checkpoint deleted": ("device", lambda ls: ls[:16] + ls[17:]),
    "first line deleted": ("device", lambda ls: ls[1:]),
    "first line deleted, no key": ("none", lambda ls: ls[1:]),
    "adjacent lines swapped": ("device", lambda ls: _swap(ls, 20, 21)),
    "distant lines swapped": ("device", lambda ls: _swap(ls, 5, 50)),
    "line moved back": ("device", lambda ls: _move(ls, 40, 10)),
    "line moved forward": ("device", lambda ls: _move(ls, 10, 40)),
    "block reversed": ("device", lambda ls: [*ls[:20], *reversed(ls[20:32]), *ls[32:]]),
    "forged record after the genuine": ("device", lambda ls: [*ls[:8], _body(ls[7], True, subject_id="s-99"),
                                                              *ls[8:]]),
    "forged record before the genuine": ("device", lambda ls: [*ls[:7], _body(ls[7], True, subject_id="s-99"),
                                                               *ls[7:]]),
    "forged record at the end": ("device", lambda ls: [*ls, _body(ls[3], True, frames=1)]),
    "forged record with a new seq at the end": ("device", lambda ls: [*ls, _forge(ls[30], seq=65)]),
    "forged record with a far seq": ("device", lambda ls: [*ls[:30], _forge(ls[30], seq=1000), *ls[30:]]),
    "forged record with a negative seq": ("device", lambda ls: [*ls[:30], _forge(ls[30], seq=-3), *ls[30:]]),
    "record copied nearby": ("device", lambda ls: [*ls[:13], ls[8], *ls[13:]]),
    "record copied to the end": ("device", lambda ls: [*ls, ls[8]]),
    "first record copied": ("device", lambda ls: [ls[0], *ls]),
    "record copied, edited": ("device", lambda ls: [*ls[:13], _edit(ls[8], time=_t(ls[8])), *ls[13:]]),
    "last line truncated": ("device", lambda ls: b"".join(ls)[:-40]),
    "last newline lost": ("device", lambda ls: b"".join(ls)[:-1]),
    "garbage without newline at the end": ("device", lambda ls: b"".join(ls) + b'{"seq":'),
    "end cut off": ("device", lambda ls: ls[:-5]),
    "end cut off to an unsigned record": ("device", lambda ls: ls[:-1]),
    "checkpoint signature corrupted": ("device", lambda ls: [*ls[:24], _signature(ls[24]), *ls[25:]]),
    "checkpoint signature corrupted, rehashed": ("device", lambda ls: [
        *ls[:24], rehash(json.loads(_signature(ls[24]))), *ls[25:]]),
    "chain rewritten": ("device", lambda ls: _rewrite(ls, 20, None)),
    "chain rewritten, no key": ("none", lambda ls: _rewrite(ls, 20, None)),
    "chain rewritten and signed with another key": ("device", lambda ls: _rewrite(ls, 20, OTHER_KEY)),
    "chain rewritten and signed with another key, both keys": ("both", lambda ls: _rewrite(ls, 20, OTHER_KEY)),
    "record replaced, rehashed": ("device", lambda ls: [*ls[:19], _body(ls[19], True, decision="rejected"),
                                                        *ls[20:]]),
    "garbage line": ("device", lambda ls: [*ls[:4], b"not a record\n", *ls[4:]]),
    "blank line": ("device", lambda ls: [*ls[:4], b"\n", *ls[4:]]),
    "seq is a string": ("device", lambda ls: [*ls[:4], _edit(ls[4], seq="4"), *ls[5:]]),
    "line respaced": ("device", lambda ls: [*ls[:5], json.dumps(json.loads(ls[5]), sort_keys=True).encode() + b"\n",
                                            *ls[6:]]),
    "CRLF line ending": ("device", lambda ls: [*ls[:5], ls[5][:-1] + b"\r\n", *ls[6:]]),
    "consistent hash, invalid record": ("device", lambda ls: [*ls[:5], _forge(ls[5], kind="alert"), *ls[6:]]),
    "checkpoints removed": ("device", _renumbered_without_checkpoints),
    "opening checkpoint replaced": ("device", lambda ls: _rewrite([_forge(ls[3], seq=0, prev="0" * 64), *ls[1:]],
                                                                  -1, None)),
    "empty file": ("device", lambda ls: b""),
    "only garbage": ("device", lambda ls: b"garbage\nmore garbage\n"),
}
RANDOM_SEEDS = range(40)


def _random_case(lines: Lines, seed: int) -> Lines:
    """Two to four tamperings of one kind or another at random places."""
    rng = random.Random(seed)
    for _ in range(rng.randint(2, 4)):
        i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
        op = rng.choice(["edit", "rehash", "delete", "swap", "move", "copy", "forge", "garbage", "near swap"])
        if op == "edit":
            lines[i] = _edit(lines[i], time=_t(lines[i])) if lines[i].startswith(b"{") else lines[i]
        elif op == "rehash":
            lines[i] = _forge(lines[i], time=_t(lines[i])) if lines[i].startswith(b"{") else lines[i]
        elif op == "delete":
            del lines[i]
        elif op == "swap":
            _swap(lines, i, j)
        elif op == "near swap":
            _swap(lines, i, min(i + 1, len(lines) - 1))
        elif op == "move":
            _move(lines, i, j)
        elif op == "copy":
            lines.insert(j, lines[i])
        elif op == "forge" and lines[i].startswith(b"{"):
            lines.insert(j, _forge(lines[i], time=_t(lines[i])))
        elif op == "garbage":
            lines.insert(j, b"garbage\n")
    return lines


def file_cases(folder: Path) -> dict[str, tuple[str, bytes]]:
    """name -> (keys, file content) for every case."""
    lines = read_lines(base_log(folder))
    out: dict[str, tuple[str, bytes]] = {}
    for name, (keys, tamper) in FILE_CASES.items():
        content = tamper(list(lines))
        out[name] = (keys, content if isinstance(content, bytes) else b"".join(content))
    for seed in RANDOM_SEEDS:
        out[f"random {seed}"] = ("device", b"".join(_random_case(list(lines), seed)))
    out["reopened after a crash"] = ("device", _reopened(folder, lines))
    return out


def _reopened(folder: Path, lines: Lines) -> bytes:
    """The log cut mid-line by a crash, then reopened by the device (which records the torn tail) and used on."""
    path = folder / "reopened.log"
    path.write_bytes(b"".join(lines[:30]) + lines[30][:25])
    clock = FakeClock(json.loads(lines[29])["time"] + 60)
    with AuditLog.open(path, DEVICE_KEY, 10, device_id="cam-01", clock=clock) as log:
        for m in range(12):
            clock.t += 60
            log.append("counters", counters(int(clock.t) // 60 * 60 + 60 * m))
    return path.read_bytes()


def record_cases(folder: Path) -> dict[str, tuple[str, list[AuditRecord]]]:
    """name -> (keys, records as HQ ingested them)."""
    lines = read_lines(base_log(folder))
    records = [AuditRecord.model_validate_json(raw) for raw in lines]

    def forged(i: int, **body: object) -> AuditRecord:
        return AuditRecord.model_validate_json(_body(lines[i], True, **body))

    out = {"in order": ("device", records), "in order, no key": ("none", records),
           "in order, another key": ("other", records)}
    delivered = records + random.Random(5).sample(records, 10)
    random.Random(7).shuffle(delivered)
    out["shuffled, with copies"] = ("device", delivered)
    out["some missing"] = ("device", [r for r in delivered if r.seq not in (9, 30, 31)])
    out["first missing"] = ("device", records[1:])
    out["edited"] = ("device", [*records[:14], records[14].model_copy(update={"time": records[14].time + 1}),
                                *records[15:]])
    out["forged beside the genuine"] = ("device", [*records, forged(7, subject_id="s-99")])
    out["forged in place of the genuine"] = ("device", [*records[:7], forged(7, subject_id="s-99"), *records[8:]])
    out["two forgeries of one seq"] = ("device", [*records, forged(7, subject_id="s-98"), forged(7, subject_id="s-99")])
    rewritten = [AuditRecord.model_validate_json(raw) for raw in _rewrite(list(lines), 20, None)]
    out["rewritten"] = ("device", rewritten)
    out["partly rewritten"] = ("device", records[:40] + rewritten[40:])
    for seed in range(10):
        rng = random.Random(100 + seed)
        picked = [r for r in records if rng.random() > 0.1] + rng.sample(records, 5)
        picked += [AuditRecord.model_validate_json(_forge(lines[i], time=_t(lines[i])))
                   for i in rng.sample(range(len(records)), 2)]
        rng.shuffle(picked)
        out[f"random {seed}"] = ("device", picked)
    return out


def reports(verify: ModuleType, folder: Path) -> dict:
    """Every case's report (without its source, a temporary path), from the verifier module `verify`."""
    out: dict = {"base_log_sha256": hashlib.sha256(base_log(folder).read_bytes()).hexdigest(), "file": {},
                 "records": {}}
    for name, (keys, content) in file_cases(folder).items():
        path = folder / "case.log"
        path.write_bytes(content)
        out["file"][name] = verify.verify_file(path, KEYS[keys]).model_dump(mode="json", exclude={"source"})
    for name, (keys, records) in record_cases(folder).items():
        out["records"][name] = verify.verify_records(records, KEYS[keys]).model_dump(mode="json",
                                                                                   exclude={"source"})
    return out


def _load(path: Path | None) -> ModuleType:
    if path is None:
        return importlib.import_module("edge.audit.verify")
    spec = importlib.util.spec_from_file_location("reference_verify", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--record", type=Path, required=True, help="write the reference here")
    parser.add_argument("--verifier", type=Path, help="a verify.py to record with (default: edge.audit.verify)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        figures = reports(_load(args.verifier), Path(tmp))
    args.record.parent.mkdir(parents=True, exist_ok=True)
    args.record.write_text(json.dumps(figures, indent=1, ensure_ascii=False) + "\n")
    sys.exit(0)
