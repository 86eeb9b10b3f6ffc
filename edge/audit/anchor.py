"""The audit log's head kept outside the log, so a log whose end was cut off is refused at start.

A log cut with `head -n 7` is still a valid chain: nothing inside the file shows what is gone. The device
therefore writes the head (seq and hash of each checkpoint, the last record of a clean stop included) to
`<log>.head` beside the log, and at start refuses a log that no longer reaches that head or holds another
record there. The same head leaves the device in its status (`edge.protocol.messages.AuditHead`), so HQ
notices too; someone able to rewrite both files on the device is caught only there (`edge.hq.heads`).
"""

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from edge.audit.records import AuditRecord
from edge.config.base import StrictModel
from edge.errors import EdgeError
from edge.fsio import write_atomic

log = logging.getLogger(__name__)
_BLOCK = 64 * 1024


class Head(StrictModel):
    seq: int
    hash: str


def anchor_path(log_path: Path) -> Path:
    return log_path.with_name(log_path.name + ".head")


class HeadAnchor:
    """Writes a log's head beside it at each checkpoint (`note`, an `AuditLog` record hook) and checks a log
    against it before it is opened again (`check`)."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.path = anchor_path(log_path)

    def note(self, record: AuditRecord) -> None:
        """Keep a checkpoint's (seq, hash). A failure is logged: the record itself is written and uploaded."""
        if record.kind != "checkpoint":
            return
        try:
            write_atomic(self.path, Head(seq=record.seq, hash=record.hash).model_dump_json(), mode=0o640)
        except OSError as exc:
            log.error("audit head seq %d not kept in %s: %s", record.seq, self.path, exc.strerror)

    def chained(self, then: Callable[[AuditRecord], object]) -> Callable[[AuditRecord], None]:
        """An `AuditLog` record hook that keeps the head, then calls `then` (e.g. the upload)."""

        def hook(record: AuditRecord) -> None:
            self.note(record)
            then(record)

        return hook

    def check(self) -> None:
        """Refuse a log that lost records after the head kept beside it (no head kept yet: nothing to check)."""
        try:
            head = Head.model_validate_json(self.path.read_bytes())
        except FileNotFoundError:
            return
        except (OSError, ValidationError) as exc:
            log.error("audit head %s unreadable (%s); the log is checked against HQ's copy only", self.path, exc)
            return
        found = _record_at(self.log_path, head.seq)
        what = (f"audit log {self.log_path} no longer holds record seq {head.seq} ({head.hash[:12]}…), which this "
                f"device wrote (kept in {self.path})")
        if found is None:
            raise EdgeError(f"{what}: its end was cut off or an older copy put back. Keep the file as evidence, run "
                            f"`edge audit verify {self.log_path} --anchor {head.seq}:{head.hash}`, and give a new "
                            "audit.path (or move both files aside) to start a new log")
        if found != head.hash:
            raise EdgeError(f"{what}: the record there now is another one; it was cut and written again. Keep the "
                            f"file as evidence, run `edge audit verify {self.log_path} --anchor {head.seq}:{head.hash}`"
                            ", and give a new audit.path (or move both files aside) to start a new log")


def _record_at(path: Path, seq: int) -> str | None:
    """The hash of the record with `seq`, read backwards from the end of the log (None: not there)."""
    if not path.exists():
        return None
    with open(path, "rb") as f:
        end = f.seek(0, os.SEEK_END)
        carry = b""  # the start of a line that began before the block read last
        while end > 0:
            start = max(0, end - _BLOCK)
            f.seek(start)
            lines = (f.read(end - start) + carry).split(b"\n")
            carry = lines.pop(0) if start > 0 else b""
            for line in reversed(lines):
                found = _seq_hash(line)
                if found is not None and found[0] <= seq:
                    return found[1] if found[0] == seq else None
            end = start
    return None


def _seq_hash(line: bytes) -> tuple[int, str] | None:
    try:
        data = json.loads(line)
        return int(data["seq"]), str(data["hash"])
    except (ValueError, TypeError, KeyError, RecursionError):
        return None
