"""Durable queue of messages waiting for the broker's PUBACK: SQLite in WAL mode, one row per message.

A row is committed before anyone tries to send it and deleted only after the broker acknowledged it, so a
dead broker, a killed process or a reboot loses nothing; the price is that a message may be sent twice
(HQ de-duplicates by event id). A file SQLite reports as damaged is moved aside, not deleted, and a fresh
outbox is started so the device keeps working; a full disk or a locked file is an error, the file kept as is.
"""

import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from edge.errors import EdgeError
from edge.localdb import no_space, open_local_db

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    body BLOB NOT NULL,
    created REAL NOT NULL
)
"""


class OutboxError(EdgeError):
    """The outbox cannot be written (disk full, permissions): the message was NOT queued.

    `disk_full` says the disk may be out of space, so that freeing some (edge.daemon.reserve) may help.
    """

    def __init__(self, message: str, disk_full: bool = False) -> None:
        super().__init__(message)
        self.disk_full = disk_full


@dataclass(frozen=True)
class Entry:
    id: int
    topic: str
    body: bytes


class Outbox:
    """Thread-safe; one connection guarded by a lock (writes are tiny, contention is not the bottleneck)."""

    def __init__(self, path: Path, sync: Literal["full", "normal"] = "full") -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db = open_local_db(path, _SCHEMA, "outbox", sync)

    def put(self, topic: str, body: bytes) -> int:
        """Commit one message; when this returns it survives a crash. Returns its row id."""
        try:
            with self._lock:
                cur = self._db.execute(
                    "INSERT INTO outbox (topic, body, created) VALUES (?, ?, ?)", (topic, body, time.time())
                )
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot write outbox {self.path}: {exc}; free disk space or fix permissions",
                              disk_full=no_space(exc)) from exc
        assert cur.lastrowid is not None
        return cur.lastrowid

    def after(self, last_id: int, limit: int) -> list[Entry]:
        """Up to `limit` entries with id > `last_id`, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, topic, body FROM outbox WHERE id > ? ORDER BY id LIMIT ?", (last_id, limit)
            ).fetchall()
        return [Entry(r[0], r[1], bytes(r[2])) for r in rows]

    def get(self, ids: Iterable[int]) -> list[Entry]:
        wanted = list(ids)
        if not wanted:
            return []
        with self._lock:
            rows = self._db.execute(
                f"SELECT id, topic, body FROM outbox WHERE id IN ({','.join('?' * len(wanted))}) ORDER BY id", wanted
            ).fetchall()
        return [Entry(r[0], r[1], bytes(r[2])) for r in rows]

    def remove(self, ids: Iterable[int]) -> None:
        """Delete acknowledged entries in one transaction."""
        batch = [(i,) for i in ids]
        if not batch:
            return
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany("DELETE FROM outbox WHERE id = ?", batch)
                self._db.execute("COMMIT")
            except sqlite3.Error:
                self._db.execute("ROLLBACK")
                raise

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
