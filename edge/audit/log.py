"""The audit log file: append-only JSON lines, hash-chained, with checkpoints signed by the device key.

One process owns the file (an exclusive flock); appends from its threads are serialised by a lock. A record
is committed once its whole line, newline included, is in the file. An unfinished line left by a crash is
removed when the log is reopened and described (length, sha256) in the signed `open` checkpoint that starts
the new session, so a restart is visible in the chain and never mistaken for tampering.
"""

import base64
import errno
import fcntl
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel, ValidationError

from edge.audit.records import (
    AUDIT_SCHEMA,
    BODIES,
    GENESIS,
    AuditRecord,
    CheckpointBody,
    Kind,
    TornTail,
    content_hash,
    signed_bytes,
)
from edge.errors import EdgeError
from edge.keys import key_id
from edge.protocol.canonical import canonical

logger = logging.getLogger(__name__)

FsyncPolicy = Literal["record", "checkpoint"]
TAIL_BLOCK = 64 * 1024


class AuditWriteError(EdgeError):
    """A record could not be written or synced; the message says whether the log's head moved.

    `disk_full` says the disk is out of space, so that freeing some (edge.daemon.reserve) may help.
    """

    def __init__(self, message: str, disk_full: bool = False) -> None:
        super().__init__(message)
        self.disk_full = disk_full


class AuditLog:
    """Appends records to one log file. Thread-safe; use `AuditLog.open`, and `close()` when done."""

    def __init__(self, path: Path, fd: int, signing_key: Ed25519PrivateKey, device_id: str,
                 checkpoint_every: int, checkpoint_seconds: float, fsync: FsyncPolicy,
                 clock: Callable[[], float], on_record: Callable[[AuditRecord], object] | None) -> None:
        self.path = path
        self.device_id = device_id
        self._fd = fd
        self._key = signing_key
        self._key_id = key_id(signing_key.public_key())
        self._every = checkpoint_every
        self._seconds = checkpoint_seconds
        self._fsync = fsync
        self._clock = clock
        self._on_record = on_record
        self._lock = threading.Lock()
        self._seq = 0
        self._head = GENESIS
        self._size = 0
        self._unsigned = 0
        self._last_checkpoint = clock()
        self._broken: str | None = None
        self._late = False  # a due checkpoint could not be written

    @classmethod
    def open(cls, path: Path | str, signing_key: Ed25519PrivateKey, checkpoint_every: int = 100, *,
             device_id: str, checkpoint_seconds: float = 300.0, fsync: FsyncPolicy = "record",
             clock: Callable[[], float] = time.time,
             on_record: Callable[[AuditRecord], object] | None = None) -> "AuditLog":
        """Open (or create) the log, recover an unfinished last line, and start a session with a checkpoint.

        `on_record` sees every record written, checkpoints included, in order (the outbox hook); if it
        raises, the record stays in the file and the error is logged.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        created = not path.exists()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise EdgeError(
                    f"audit log {path} is open in another process (is the edge daemon running?): "
                    "stop it, or give another path"
                ) from None
            if created:
                _fsync_dir(path.parent)
            log = cls(path, fd, signing_key, device_id, checkpoint_every, checkpoint_seconds, fsync, clock,
                      on_record)
            torn = log._recover_tail()
            with log._lock:
                log._checkpoint("open", torn)
        except BaseException:
            os.close(fd)
            raise
        return log

    @property
    def head(self) -> tuple[int, str]:
        """(seq, hash) of the last record written."""
        with self._lock:
            return self._seq - 1, self._head

    def append(self, kind: Kind, body: BaseModel) -> AuditRecord:
        """Write one record (and a checkpoint after it when one is due). Returns the record written."""
        expected = BODIES.get(kind)
        if expected is None or kind == "checkpoint" or type(body) is not expected:
            raise ValueError(f"append({kind!r}, {type(body).__name__}): not a kind/body pair callers may append")
        with self._lock:
            record = self._write(kind, body.model_dump(mode="json"))
            self._unsigned += 1
            reason = ("count" if self._unsigned >= self._every else
                      "time" if self._clock() - self._last_checkpoint >= self._seconds else None)
            if reason is not None:
                try:
                    self._checkpoint(reason, None)
                except AuditWriteError:  # the record is written: report that, and retry with the next one
                    self._late = True
                    logger.exception("audit checkpoint after seq %d not written; retried after the next record",
                                     record.seq)
            return record

    def close(self) -> None:
        """Sign whatever is unsigned, sync, and release the file. Idempotent."""
        with self._lock:
            if self._fd < 0:
                return
            try:
                if self._unsigned and self._broken is None:
                    self._checkpoint("close", None)
                os.fsync(self._fd)
            finally:
                os.close(self._fd)
                self._fd = -1

    def __enter__(self) -> "AuditLog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _checkpoint(self, reason: str, torn: TornTail | None) -> AuditRecord:
        body = CheckpointBody(reason=reason, key_id=self._key_id, checkpoint_every=self._every,
                              checkpoint_seconds=self._seconds, torn_tail=torn, late=self._late, signature="")
        record = self._write("checkpoint", body.model_dump(mode="json"))
        self._unsigned, self._late = 0, False
        self._last_checkpoint = self._clock()
        return record

    def _write(self, kind: str, body: dict[str, Any]) -> AuditRecord:
        """Append one record under the lock: build, hash (and sign), write whole, sync, notify."""
        if self._fd < 0:
            raise AuditWriteError(f"audit log {self.path} is closed: open it again")
        if self._broken is not None:
            raise AuditWriteError(f"audit log {self.path} needs a restart to recover: {self._broken}")
        raw: dict[str, Any] = {"schema": AUDIT_SCHEMA, "device": self.device_id, "seq": self._seq,
                               "time": self._clock(), "kind": kind, "body": body, "prev": self._head}
        if kind == "checkpoint":
            body["signature"] = base64.b64encode(self._key.sign(signed_bytes(raw))).decode()
        raw["hash"] = content_hash(raw)
        record = AuditRecord.model_validate(raw)
        line = canonical(raw) + b"\n"
        try:
            written = os.write(self._fd, line)
            while written < len(line):
                written += os.write(self._fd, line[written:])
        except OSError as exc:
            self._undo_partial_write()
            raise AuditWriteError(
                f"audit record seq {self._seq} ({kind}) not written to {self.path}: {exc.strerror}; the log is "
                f"unchanged: free space on {self.path.parent} or fix the disk", disk_full=_no_space(exc)
            ) from exc
        self._seq += 1
        self._head = raw["hash"]
        self._size += len(line)
        if self._fsync == "record" or kind == "checkpoint":
            try:
                os.fsync(self._fd)
            except OSError as exc:
                raise AuditWriteError(
                    f"audit record seq {record.seq} is in {self.path} but not confirmed on disk: {exc.strerror}"
                ) from exc
        if self._on_record is not None:
            try:
                self._on_record(record)
            except Exception:
                logger.exception("audit record seq %d is in %s but its upload hook failed", record.seq, self.path)
        return record

    def _undo_partial_write(self) -> None:
        """Cut a partly written line back off: its bytes were never a record, and later ones must chain."""
        try:
            os.ftruncate(self._fd, self._size)
        except OSError as exc:
            self._broken = f"a partial line could not be removed ({exc.strerror})"

    def _recover_tail(self) -> TornTail | None:
        """Find the head from the last line; remove an unfinished line after it and describe it."""
        self._size = os.fstat(self._fd).st_size
        last, fragment = _read_tail(self.path, self._size)
        torn = None
        if fragment and _complete_record(fragment) is not None:
            os.write(self._fd, b"\n")  # a whole record whose newline was lost: keep it
            self._size += 1
            last = fragment
        elif fragment:
            self._size -= len(fragment)
            os.ftruncate(self._fd, self._size)
            os.fsync(self._fd)
            torn = TornTail(length=len(fragment), sha256=hashlib.sha256(fragment).hexdigest())
            logger.warning("audit log %s ended with an unfinished line (%d bytes) from a crash; removed it and "
                           "recorded its sha256 in the next checkpoint", self.path, len(fragment))
        if last is None:
            return torn
        record = _complete_record(last)
        if record is None:
            raise EdgeError(
                f"audit log {self.path} ends with a record that does not verify: it was altered or the disk is "
                f"damaged. Run `edge audit verify {self.path} --pub <device_signing.pub>`, keep the file as evidence, "
                f"and give a new path"
            )
        if record.device != self.device_id:
            raise EdgeError(
                f"audit log {self.path} belongs to device {record.device!r}, not {self.device_id!r}: give this "
                "device's own log path"
            )
        self._seq, self._head = record.seq + 1, record.hash
        return torn


def _read_tail(path: Path, size: int) -> tuple[bytes | None, bytes]:
    """The last complete line (without newline; None if there is none) and the bytes after it."""
    with open(path, "rb") as f:
        start = size
        while True:
            start = max(0, start - TAIL_BLOCK)
            f.seek(start)
            data = f.read(size - start)
            end = data.rfind(b"\n")
            if end < 0 and start == 0:
                return None, data
            begin = data.rfind(b"\n", 0, max(end, 0))
            if end >= 0 and (begin >= 0 or start == 0):
                return data[begin + 1:end], data[end + 1:]


def _complete_record(line: bytes) -> AuditRecord | None:
    """The record on this line if it parses and its hash matches its content, else None."""
    try:
        record = AuditRecord.model_validate_json(line)
    except ValidationError:
        return None
    return record if content_hash(record.as_dict()) == record.hash else None


def _no_space(exc: OSError) -> bool:
    return exc.errno in (errno.ENOSPC, errno.EDQUOT)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
