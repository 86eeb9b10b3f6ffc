"""Verify an audit chain and name each problem: edited, missing, inserted or reordered records, a broken
link, a bad or unknown checkpoint signature, checkpoints removed, a truncated last line.

Works on the log file (line numbers name records that do not belong) and on records HQ ingested in any
order (sorted by seq; exact duplicates from at-least-once delivery are dropped). A log whose end was cut
off is still a valid chain: given an `Anchor` (a head the device announced outside the file, in its status
or to HQ), the verifier names the records missing after the log's end, or a log rewritten from there. Both
stream: each record is parsed, checked on its own (hash, form, signature) and reduced to what the chain
checks need (`edge.audit.chain`), so memory does not grow with the records' size.
"""

import base64
import binascii
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import Field, ValidationError

from edge.audit.chain import SEQ_MAX, Chain, Checkpoint, Problem, ProblemKind, Row
from edge.audit.records import AuditRecord, CheckpointBody, content_hash, signed_bytes
from edge.config.base import StrictModel
from edge.errors import EdgeError
from edge.keys import key_id
from edge.protocol.canonical import canonical

__all__ = ["Anchor", "Problem", "ProblemKind", "VerifyReport", "verify_file", "verify_records"]

Keys = Mapping[str, Ed25519PublicKey]  # by key id


class Anchor(StrictModel):
    """A head the device announced outside its log: the log must reach `seq`, and hold this hash there."""

    seq: int = Field(ge=0, le=SEQ_MAX)
    hash: str = Field(pattern=r"^[0-9a-f]{64}$")

    @classmethod
    def parse(cls, text: str) -> "Anchor":
        """`SEQ:HASH`, as `edge hq report` prints the last announced head."""
        seq, _, digest = text.strip().partition(":")
        try:
            return cls(seq=int(seq), hash=digest.lower())
        except ValueError:
            raise EdgeError(f"anchor {text!r}: give SEQ:HASH, the seq and 64-hex-digit hash of a record the device "
                            "announced (`edge hq report` prints the last one)") from None


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


def verify_file(path: Path, keys: Sequence[Ed25519PublicKey] = (), anchor: Anchor | None = None) -> VerifyReport:
    """Verify a log file as written by the device; `keys` are the device's public keys for checkpoints, `anchor`
    a head it announced, which the log must still hold."""
    by_id = {key_id(k): k for k in keys}
    chain, problems = Chain(in_file=True), []
    # A file whose first line ends in CR LF was copied as text (to or from Windows): said once, and its lines read
    # without the CRs, rather than every record named as edited. A CR LF line in a file that starts with LF is an
    # edit of that line.
    crlf, as_text = 0, None
    try:
        with path.open("rb") as log:
            for number, raw in enumerate(log, 1):
                if as_text is None:
                    as_text = raw.endswith(b"\r\n")
                if as_text and raw.endswith(b"\r\n"):
                    crlf += 1
                    raw = raw[:-2] + b"\n"
                if raw.endswith(b"\n"):
                    row = _parse(raw[:-1], number, by_id, problems)
                    if row is not None:
                        chain.add(row)
                    continue
                probe: list[Problem] = []  # no newline at the end: keep it only if it is a whole, valid record
                row = _parse(raw, number, by_id, probe)
                if row is not None and not probe:
                    chain.add(row)
                    continue
                after = f", after record seq {chain.last_seq}" if chain.last_seq is not None else ""
                problems.append(Problem(
                    kind="truncated", line=number,
                    message=f"truncated last line (line {number}, {len(raw)} bytes{after}): a write cut short by a "
                            "crash or power loss, or a cut file; the device removes and records it when it restarts",
                ))
    except OSError as exc:
        raise EdgeError(f"cannot read audit log {path}: {exc.strerror}: give the path of a device's audit log") from exc
    if crlf:
        problems.append(Problem(
            kind="line_endings",
            message=f"{crlf} line(s) end in CR LF, not LF as the device writes: the file was copied as text (e.g. "
                    "to or from Windows), so its bytes are not the device's; the other findings are of the records "
                    "read without the CRs. Verify a copy made in binary mode (or `dos2unix` this one)"))
    return _report(str(path), chain, problems, bool(keys), anchor)


def verify_records(records: Iterable[AuditRecord], keys: Sequence[Ed25519PublicKey] = (),
                   source: str = "ingested records", anchor: Anchor | None = None) -> VerifyReport:
    """Verify records received in any order, e.g. the ones HQ ingested from a device's audit topic.

    Holds a reference to each record while sorting them by seq, nothing more of them."""
    by_id = {key_id(k): k for k in keys}
    chain, problems = Chain(in_file=False), []
    for record in _distinct(sorted(records, key=lambda r: (r.seq, r.hash))):
        data = record.as_dict()
        computed = content_hash(data)
        if computed != record.hash:
            problems.append(Problem(kind="edited", seq=record.seq,
                                    message=f"record seq {record.seq} edited (hash mismatch)"))
        if record.seq > SEQ_MAX:
            problems.append(_beyond(record.seq, None))
            continue
        chain.add(Row(seq=record.seq, prev=record.prev, hash=record.hash, line=None, self_ok=computed == record.hash,
                      checkpoint_kind=record.kind == "checkpoint", device=record.device,
                      checkpoint=_checkpoint(record, data, by_id),
                      computed=None if computed == record.hash else computed))
    return _report(source, chain, problems, bool(keys), anchor)


def _distinct(ordered: Iterable[AuditRecord]) -> Iterator[AuditRecord]:
    """Records sorted by (seq, hash) without exact copies; only records sharing a seq and hash are compared."""
    key: tuple[int, str] | None = None
    seen: set[str] = set()
    for record in ordered:
        if (record.seq, record.hash) != key:
            key, seen = (record.seq, record.hash), set()
            first = record
            yield record
            continue
        seen = seen or {first.model_dump_json()}
        text = record.model_dump_json()
        if text not in seen:
            seen.add(text)
            yield record


def _parse(raw: bytes, number: int, by_id: Keys, problems: list[Problem]) -> Row | None:
    """One log line: its row, or None and a problem when it cannot take part in the chain at all."""
    try:
        data = json.loads(raw)
        seq, prev, digest = data["seq"], data["prev"], data["hash"]
        if not (isinstance(seq, int) and isinstance(prev, str) and isinstance(digest, str)):
            raise TypeError
        computed = content_hash(data)
    except (ValueError, TypeError, KeyError, RecursionError):
        problems.append(Problem(kind="malformed", line=number,
                                message=f"line {number} is not an audit record (not JSON with seq, prev and hash)"))
        return None
    if not -SEQ_MAX - 1 <= seq <= SEQ_MAX:
        problems.append(_beyond(seq, number))
        return None
    self_ok = computed == digest
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
    return Row(seq=seq, prev=prev, hash=digest, line=number, self_ok=self_ok,
               checkpoint_kind=data.get("kind") == "checkpoint", device=None if record is None else record.device,
               checkpoint=None if record is None else _checkpoint(record, data, by_id),
               computed=None if self_ok else computed)


def _beyond(seq: int, line: int | None) -> Problem:
    where = f" at line {line}" if line is not None else ""
    return Problem(kind="malformed", line=line,
                   message=f"record{where} is not an audit record: its seq {seq} is beyond any log (2^63)")


def _checkpoint(record: AuditRecord, data: dict[str, Any], by_id: Keys) -> Checkpoint | None:
    """A checkpoint's policy, and its signature checked against the given keys (none given: not checked)."""
    body = record.body
    if not isinstance(body, CheckpointBody):
        return None
    signature = None
    if by_id:
        key = by_id.get(body.key_id)
        signature = "unknown_key" if key is None else "good"
        if key is not None:
            try:
                key.verify(base64.b64decode(body.signature, validate=True), signed_bytes(data))
            except (InvalidSignature, binascii.Error):
                signature = "bad"
    return Checkpoint(body.checkpoint_every, body.late, body.torn_tail, body.key_id, signature)


def _anchor_problems(chain: Chain, last_seq: int | None, anchor: Anchor) -> list[Problem]:
    """The log must reach the announced head and hold its hash there."""
    held = chain.hashes_at(anchor.seq)
    end = "it holds no records" if last_seq is None else f"it ends at seq {last_seq}"
    if not held and (last_seq is None or last_seq < anchor.seq):
        first = 0 if last_seq is None else last_seq + 1
        return [Problem(kind="cut", seq=first, message=f"records {first}-{anchor.seq} missing: the device announced "
                        f"seq {anchor.seq} ({anchor.hash[:12]}…) but {end}: the log's end was cut off (or an older "
                        "copy put back)")]
    if anchor.hash not in held:
        return [Problem(kind="cut", seq=anchor.seq, message=f"record seq {anchor.seq} is not the one the device "
                        f"announced ({anchor.hash[:12]}…): the log was cut and written again from there or earlier")]
    return []


def _report(source: str, chain: Chain, problems: list[Problem], keys_given: bool,
            anchor: Anchor | None) -> VerifyReport:
    outcome = chain.finish(problems, keys_given)
    if anchor is not None:
        problems.extend(_anchor_problems(chain, outcome.last_seq, anchor))
    problems.sort(key=lambda p: (p.line if p.line is not None else -1, p.seq if p.seq is not None else -1))
    return VerifyReport(source=source, device=outcome.device, records=outcome.records, first_seq=outcome.first_seq,
                        last_seq=outcome.last_seq, signatures_checked=keys_given,
                        signed_through=outcome.signed_through, problems=problems, notes=outcome.notes)
