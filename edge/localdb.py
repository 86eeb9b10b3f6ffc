"""Local SQLite files that must outlive a crash or a reboot: the device's outbox, the handheld's store.

WAL journal, autocommit (each statement is its own transaction unless the caller says BEGIN), commits synced
to disk (`synchronous=FULL`, or NORMAL where losing the last commits on power loss is acceptable). A file
SQLite reports as damaged ("file is not a database", "database disk image is malformed", a failed quick
check) is moved aside, never deleted, and an empty one started, so its owner keeps working and the damaged
file can still be examined. Any other failure to open (a full disk, "disk I/O error", "database is locked",
permissions) says nothing about the file's contents: it is raised as it is and the file and its `-wal` are
left alone, since the rows in them (messages not yet sent) would otherwise be lost.
"""

import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Literal

from edge.errors import EdgeError

log = logging.getLogger(__name__)

# SQLite's primary result codes for a damaged file (sqlite3.h): the only ones that move it aside.
SQLITE_CORRUPT = 11
SQLITE_NOTADB = 26
# What a write on a full disk gives: SQLITE_FULL, and SQLITE_IOERR when the WAL or its index cannot grow.
NO_SPACE_CODES = (13, 10)


class LocalDbError(EdgeError):
    """A local database could not be opened for a reason other than damage; the file is untouched.

    `disk_full` says the disk may be out of space, so that freeing some may help.
    """

    def __init__(self, message: str, disk_full: bool = False) -> None:
        super().__init__(message)
        self.disk_full = disk_full


class _Damaged(sqlite3.DatabaseError):
    """PRAGMA quick_check found damage."""


def open_local_db(path: Path, schema: str, what: str,
                  synchronous: Literal["full", "normal"] = "full") -> sqlite3.Connection:
    """A connection to `path` (shareable across threads; the caller serialises) with `schema` applied.

    `what` names the file in messages ("outbox", "handheld store"). Raises LocalDbError, file untouched,
    when it cannot be opened for any reason but damage.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return _open(path, schema, synchronous)
    except sqlite3.DatabaseError as exc:
        if not damaged(exc):
            raise LocalDbError(f"cannot open {what} {path}: {exc}; it was left as it is (its rows are kept): "
                               "free disk space, stop the other process using it, or fix permissions, "
                               "then start again", disk_full=no_space(exc)) from exc
        aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
        log.error("%s %s is unreadable (%s); moved it to %s and started an empty one", what, path, exc, aside)
        path.rename(aside)
        for suffix in ("-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return _open(path, schema, synchronous)


def no_space(exc: sqlite3.Error) -> bool:
    """True when `exc` may be for want of disk space."""
    return _code(exc) in NO_SPACE_CODES


def damaged(exc: sqlite3.Error) -> bool:
    """True only when SQLite says the file's contents are damaged (not full, locked or unreadable)."""
    if isinstance(exc, _Damaged):
        return True
    return _code(exc) in (SQLITE_CORRUPT, SQLITE_NOTADB)


def _code(exc: sqlite3.Error) -> int:
    """SQLite's primary result code of `exc` (0 where the driver gives none)."""
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF


def _open(path: Path, schema: str, synchronous: str) -> sqlite3.Connection:
    _owner_only(path)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={synchronous.upper()}")
        if (result := db.execute("PRAGMA quick_check").fetchone()[0]) != "ok":
            raise _Damaged(f"quick_check failed: {result}")
        db.executescript(schema)
    except sqlite3.DatabaseError:
        db.close()
        raise
    return db


def _owner_only(path: Path) -> None:
    """Create `path` (or narrow an existing one) to 0600 before SQLite opens it: these files hold alerts with face
    crops, and SQLite gives its -wal and -shm files the main file's permissions, but keeps using those a killed
    process left (an older version made them 0644): they are narrowed too."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm"):
        try:
            fd = os.open(f"{path}{suffix}", os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            os.fchmod(fd, 0o600)
        finally:
            os.close(fd)
