"""Verify an audit chain and name each problem: edited, missing, inserted or reordered records, a broken
link, a bad or unknown checkpoint signature, checkpoints removed, a truncated last line.

Works on the log file (line numbers name records that do not belong) and on records HQ ingested in any
order (sorted by seq; exact duplicates from at-least-once delivery are dropped).
"""

import base64
import binascii
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from edge.audit.records import GENESIS, AuditRecord, CheckpointBody, content_hash, signed_bytes
from edge.config.base import StrictModel
from edge.errors import EdgeError
from edge.keys import key_id
from edge.protocol.canonical import canonical

ProblemKind = Literal[
    "edited", "missing", "inserted", "reordered", "relinked", "malformed", "truncated", "bad_signature",
    "unknown_key", "unsigned",
]
SHOW = 8  # seqs listed in one reorder message


class Problem(StrictModel):
    kind: ProblemKind
    message: str
    seq: int | None = None
    line: int | None = None


class VerifyReport(StrictModel):
    """`ok`: no problem found. Without `signatures_checked` that proves only consistency: a chain rewritten
    with recomputed hashes is consistent too, and only the device's checkpoint signatures reveal it."""

    source: str
    device: str | None
    records: int
    first_seq: int | None
    last_seq: int | None
    signatures_checked: bool
    signed_through: int | None = None
    problems: list[Problem]
    notes: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class _Entry:
    data: dict[str, Any]
    record: AuditRecord | None  # None when the JSON is not a valid edge.audit/1 record
    line: int | None
    index: int
    seq: int
    prev: str
    hash: str
    self_ok: bool

    @property
    def where(self) -> str:
        return f"record at line {self.line}" if self.line is not None else f"record seq {self.seq} ({self.hash[:12]}…)"


def verify_file(path: Path, keys: Sequence[Ed25519PublicKey] = ()) -> VerifyReport:
    """Verify a log file as written by the device; `keys` are the device's public keys for checkpoints."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise EdgeError(f"cannot read audit log {path}: {exc.strerror}: give the path of a device's audit log") from exc
    *lines, trailing = data.split(b"\n")
    problems: list[Problem] = []
    entries: list[_Entry] = []
    for number, raw in enumerate(lines, 1):
        _parse(raw, number, len(entries), entries, problems)
    if trailing:  # no newline at the end: keep it only if it is a whole, valid record
        number, before = len(lines) + 1, len(entries)
        probe: list[Problem] = []
        _parse(trailing, number, before, entries, probe)
        if probe or len(entries) == before:
            del entries[before:]
            after = f", after record seq {entries[-1].seq}" if entries else ""
            problems.append(Problem(
                kind="truncated", line=number,
                message=f"truncated last line (line {number}, {len(trailing)} bytes{after}): a write cut short by "
                        "a crash or power loss, or a cut file; the device removes and records it when it restarts",
            ))
    return _verify(str(path), entries, problems, keys, in_file=True)


def verify_records(records: Iterable[AuditRecord], keys: Sequence[Ed25519PublicKey] = (),
                   source: str = "ingested records") -> VerifyReport:
    """Verify records received in any order, e.g. the ones HQ ingested from a device's audit topic."""
    unique = {(r.seq, r.hash, r.model_dump_json()): r for r in records}
    entries: list[_Entry] = []
    problems: list[Problem] = []
    for index, record in enumerate(sorted(unique.values(), key=lambda r: (r.seq, r.hash))):
        data = record.as_dict()
        entries.append(_Entry(data, record, None, index, record.seq, record.prev, record.hash,
                              content_hash(data) == record.hash))
    for e in entries:
        if not e.self_ok:
            problems.append(Problem(kind="edited", seq=e.seq, message=f"record seq {e.seq} edited (hash mismatch)"))
    return _verify(source, entries, problems, keys, in_file=False)


def _parse(raw: bytes, number: int, index: int, entries: list[_Entry], problems: list[Problem]) -> None:
    """One log line: append its entry, or a problem when it cannot take part in the chain at all."""
    try:
        data = json.loads(raw)
        core = (data["seq"], data["prev"], data["hash"])
        if not (isinstance(core[0], int) and isinstance(core[1], str) and isinstance(core[2], str)):
            raise TypeError
        self_ok = content_hash(data) == data["hash"]
    except (ValueError, TypeError, KeyError):
        problems.append(Problem(kind="malformed", line=number,
                                message=f"line {number} is not an audit record (not JSON with seq, prev and hash)"))
        return
    seq = core[0]
    try:
        record: AuditRecord | None = AuditRecord.model_validate(data)
    except ValidationError as exc:
        record = None
        if self_ok:
            problems.append(Problem(kind="malformed", seq=seq, line=number,
                                    message=f"record seq {seq} at line {number} has a consistent hash but is not a "
                                            f"valid edge.audit/1 record ({exc.error_count()} errors): forged"))
    if not self_ok:
        problems.append(Problem(kind="edited", seq=seq, line=number,
                                message=f"record seq {seq} edited (hash mismatch) at line {number}"))
    elif raw != canonical(data):
        self_ok = False
        problems.append(Problem(kind="edited", seq=seq, line=number,
                                message=f"record seq {seq} edited at line {number}: its bytes are not the canonical "
                                        "form the device writes (spacing or escapes changed)"))
    entries.append(_Entry(data, record, number, index, seq, core[1], core[2], self_ok))


def _verify(source: str, entries: list[_Entry], problems: list[Problem], keys: Sequence[Ed25519PublicKey],
            in_file: bool) -> VerifyReport:
    chain = _chain(entries, problems, in_file)
    if not chain:
        problems.append(Problem(kind="missing", message="no audit records: a device's log starts with a checkpoint"))
    _gaps_and_links(chain, problems)
    if in_file:
        _order(chain, problems)
    notes: list[str] = []
    signed_through = _checkpoints(chain, keys, problems, notes)
    problems.sort(key=lambda p: (p.line if p.line is not None else -1, p.seq if p.seq is not None else -1))
    return VerifyReport(
        source=source,
        device=next((e.record.device for e in chain if e.record is not None), None),
        records=len(chain),
        first_seq=chain[0].seq if chain else None,
        last_seq=chain[-1].seq if chain else None,
        signatures_checked=bool(keys),
        signed_through=signed_through,
        problems=problems,
        notes=notes,
    )


def _chain(entries: list[_Entry], problems: list[Problem], in_file: bool) -> list[_Entry]:
    """The records that belong to the chain, sorted by seq; the others are reported as inserted.

    Where several records claim one seq, the chain keeps the one its neighbours link to. A record that
    links to nothing and sits where its seq does not fit between its neighbours in the file is inserted too.
    """
    by_seq: dict[int, list[_Entry]] = {}
    for e in entries:
        by_seq.setdefault(e.seq, []).append(e)
    hashes = {seq: {e.hash for e in group} for seq, group in by_seq.items()}

    def prev_ok(e: _Entry) -> bool:
        return e.prev == GENESIS if e.seq == 0 else e.prev in hashes.get(e.seq - 1, ())

    def next_ok(e: _Entry) -> bool:
        return any(x.prev == e.hash for x in by_seq.get(e.seq + 1, ()))

    kept: list[_Entry] = []
    for seq, group in by_seq.items():
        ranked = sorted(group, key=lambda e: (-(prev_ok(e) + next_ok(e)), not e.self_ok, e.index))
        kept.append(ranked[0])
        for e in ranked[1:]:
            what = "a copy of" if e.data == ranked[0].data else "claims"
            owner = f"line {ranked[0].line}" if in_file else f"hash {ranked[0].hash[:12]}…"
            problems.append(Problem(kind="inserted", seq=seq, line=e.line,
                                    message=f"{e.where} inserted ({what} seq {seq}, which the chain gives to {owner})"))
    if in_file:
        kept.sort(key=lambda e: e.index)
        fits = []
        for i, e in enumerate(kept):
            lo = kept[i - 1].seq if i else -1
            hi = kept[i + 1].seq if i + 1 < len(kept) else None
            if not prev_ok(e) and not next_ok(e) and not (lo < e.seq and (hi is None or e.seq < hi)):
                problems.append(Problem(kind="inserted", seq=e.seq, line=e.line,
                                        message=f"{e.where} inserted (seq {e.seq} links to no record and does not "
                                                "fit between its neighbours)"))
            else:
                fits.append(e)
        kept = fits
    return sorted(kept, key=lambda e: e.seq)


def _gaps_and_links(chain: list[_Entry], problems: list[Problem]) -> None:
    expected, prev_hash = 0, GENESIS
    for e in chain:
        if e.seq > expected:
            problems.append(Problem(kind="missing", seq=expected, line=e.line,
                                    message=f"{_span(expected, e.seq - 1)} missing (gap)"))
        elif e.prev != prev_hash:
            message = (f"record seq 0 does not start from the genesis hash{_at(e)}" if e.seq == 0 else
                       f"chain broken between records {e.seq - 1} and {e.seq}{_at(e)}: record {e.seq} links to a "
                       f"different hash (one of them was rewritten with a recomputed hash)")
            problems.append(Problem(kind="relinked", seq=e.seq, line=e.line, message=message))
        expected, prev_hash = e.seq + 1, e.hash


def _order(chain: list[_Entry], problems: list[Problem]) -> None:
    """Runs of positions where the file order differs from seq order, each named by its seqs."""
    in_file = sorted(chain, key=lambda e: e.index)
    run: list[_Entry] = []
    for found, want in [*zip(in_file, chain, strict=True), (None, None)]:
        if found is not None and found is not want:
            run.append(found)
            continue
        if run:
            seqs = sorted(e.seq for e in run)
            if len(run) == 2:
                message = f"records {seqs[0]} and {seqs[1]} reordered"
            else:
                shown = ", ".join(str(e.seq) for e in run[:SHOW]) + (", …" if len(run) > SHOW else "")
                message = f"records {seqs[0]}-{seqs[-1]} reordered (file order {shown})"
            problems.append(Problem(kind="reordered", seq=seqs[0], line=min(e.line or 0 for e in run),
                                    message=f"{message} at lines {run[0].line}-{run[-1].line}"))
            run = []


def _checkpoints(chain: list[_Entry], keys: Sequence[Ed25519PublicKey], problems: list[Problem],
                 notes: list[str]) -> int | None:
    """Check signatures and that no more records follow a checkpoint than the signed policy allows.

    Returns the seq of the last checkpoint with a good signature (None when none was checked or good).
    """
    by_id = {key_id(k): k for k in keys}
    if chain and chain[0].seq == 0 and chain[0].data.get("kind") != "checkpoint":
        problems.append(Problem(kind="unsigned", seq=0, line=chain[0].line,
                                message="record seq 0 is not the opening checkpoint: the log's start was replaced"))
    every: int | None = None
    run: list[_Entry] = []
    signed_through = None

    def close_run(late: bool = False) -> None:
        if every is None or len(run) <= every:
            return
        if late:
            notes.append(f"records {run[0].seq}-{run[-1].seq}: checkpoint late (the device could not write one "
                         "in time, e.g. a full disk)")
        else:
            problems.append(Problem(
                kind="unsigned", seq=run[0].seq, line=run[0].line,
                message=f"records {run[0].seq}-{run[-1].seq}: {len(run)} records without a checkpoint, where the "
                        f"device signs at least every {every}: checkpoints were removed or the chain rewritten",
            ))

    for e in chain:
        body = e.record.body if e.record is not None else None
        if not isinstance(body, CheckpointBody):
            run.append(e)
            continue
        close_run(body.late)
        run, every = [], body.checkpoint_every
        if body.torn_tail is not None:
            notes.append(f"seq {e.seq}: reopened after a crash; an unfinished line of {body.torn_tail.length} "
                         f"bytes (sha256 {body.torn_tail.sha256[:16]}…) was removed")
        if not keys:
            continue
        key = by_id.get(body.key_id)
        if key is None:
            problems.append(Problem(kind="unknown_key", seq=e.seq, line=e.line,
                                    message=f"checkpoint at seq {e.seq}: signed by key {body.key_id[:16]}…, which is "
                                            "not a given public key"))
            continue
        try:
            key.verify(base64.b64decode(body.signature, validate=True), signed_bytes(e.data))
        except (InvalidSignature, binascii.Error):
            problems.append(Problem(kind="bad_signature", seq=e.seq, line=e.line,
                                    message=f"checkpoint at seq {e.seq}: bad signature"))
            continue
        signed_through = e.seq
    close_run()
    if not keys:  # the report's signatures_checked says so, and `edge audit verify` exits 3 unless told not to
        return None
    if chain and signed_through is None:
        problems.append(Problem(kind="unsigned", message="no checkpoint is signed by a given key: nothing in this "
                                                         "log is authenticated"))
    elif run and not any(p.kind == "unsigned" for p in problems):
        notes.append(f"{_span(run[0].seq, run[-1].seq)} after the last checkpoint: not signed yet")
    return signed_through


def _span(first: int, last: int) -> str:
    return f"record {first}" if first == last else f"records {first}-{last}"


def _at(e: _Entry) -> str:
    return f" (line {e.line})" if e.line is not None else ""
