"""Local SQLite files that must outlive a crash or a reboot: the device's outbox, the handheld's store.

WAL journal, autocommit (each statement is its own transaction unless the caller says BEGIN), commits synced
to disk (`synchronous=FULL`, or NORMAL where losing the last commits on power loss is acceptable). A file
SQLite cannot read is moved aside, never deleted, and an empty one started, so its owner keeps working and
the damaged file can still be examined.
"""

import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)


def open_local_db(path: Path, schema: str, what: str,
                  synchronous: Literal["full", "normal"] = "full") -> sqlite3.Connection:
    """A connection to `path` (shareable across threads; the caller serialises) with `schema` applied.

    `what` names the file in the log line ("outbox", "handheld store") when a corrupt one is set aside.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return _open(path, schema, synchronous)
    except sqlite3.DatabaseError as exc:
        aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
        log.error("%s %s is unreadable (%s); moved it to %s and started an empty one", what, path, exc, aside)
        path.rename(aside)
        for suffix in ("-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return _open(path, schema, synchronous)


def _open(path: Path, schema: str, synchronous: str) -> sqlite3.Connection:
    _owner_only(path)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={synchronous.upper()}")
        if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            raise sqlite3.DatabaseError("quick_check failed")
        db.executescript(schema)
    except sqlite3.DatabaseError:
        db.close()
        raise
    return db


def _owner_only(path: Path) -> None:
    """Create `path` (or narrow an existing one) to 0600 before SQLite opens it: these files hold alerts with face
    crops, and SQLite gives its -wal and -shm files the main file's permissions."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
