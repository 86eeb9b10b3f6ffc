"""The handheld's local store: verified alerts and the officers' signed decisions, in SQLite (WAL).

A page reload, a lost connection or a restart of the handheld loses nothing: alerts are written before the
page hears of them, decisions before they are published, and a decision stays marked unsent until the
broker acknowledged it. Alerts (with their face images) are deleted after the retention period.
"""

import sqlite3
import threading
from pathlib import Path

from edge.errors import EdgeError
from edge.localdb import open_local_db
from edge.protocol.adjudication import Adjudication
from edge.protocol.alert import HandheldAlert

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    event_id TEXT PRIMARY KEY,
    device TEXT NOT NULL,
    observed_at REAL NOT NULL,
    received_at REAL NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS decisions (
    adjudication_id TEXT PRIMARY KEY,
    event_id TEXT NOT NULL REFERENCES alerts(event_id),
    payload BLOB NOT NULL,
    sent INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS decisions_event ON decisions(event_id);
"""


class InboxError(EdgeError):
    """The local store cannot be written (disk full, permissions): the alert or decision was not kept."""


class Inbox:
    """Thread-safe (one connection, one lock): MQTT callbacks and page requests share it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db = open_local_db(path, _SCHEMA, "handheld store")

    def _write(self, sql: str, params: tuple[object, ...]) -> int:
        try:
            with self._lock:
                return self._db.execute(sql, params).rowcount
        except sqlite3.Error as exc:
            why = f"cannot write handheld store {self.path}: {exc}; free disk space or fix permissions"
            raise InboxError(why) from exc

    def add_alert(self, alert: HandheldAlert, received_at: float) -> bool:
        """Keep a verified alert; False when it is already here (QoS 1 may deliver twice)."""
        return self._write(
            "INSERT OR IGNORE INTO alerts (event_id, device, observed_at, received_at, body) VALUES (?, ?, ?, ?, ?)",
            (alert.event_id, alert.device, alert.observed_at.timestamp(), received_at,
             alert.model_dump_json(by_alias=True)),
        ) == 1

    def alert(self, event_id: str) -> HandheldAlert | None:
        with self._lock:
            row = self._db.execute("SELECT body FROM alerts WHERE event_id = ?", (event_id,)).fetchone()
        return None if row is None else HandheldAlert.model_validate_json(row[0])

    def alerts(self) -> list[HandheldAlert]:
        """Newest first (by when the camera saw the face)."""
        with self._lock:
            rows = self._db.execute("SELECT body FROM alerts ORDER BY observed_at DESC, received_at DESC").fetchall()
        return [HandheldAlert.model_validate_json(r[0]) for r in rows]

    def add_decision(self, adjudication: Adjudication, payload: bytes) -> None:
        """Keep a signed decision (unsent) before it is published."""
        self._write("INSERT INTO decisions (adjudication_id, event_id, payload) VALUES (?, ?, ?)",
                    (adjudication.adjudication_id, adjudication.event_id, payload))

    def decisions(self, event_id: str) -> list[tuple[Adjudication, bool]]:
        """Each decision on an alert and whether the broker acknowledged it, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT payload, sent FROM decisions WHERE event_id = ? ORDER BY rowid",
                                    (event_id,)).fetchall()
        return [(Adjudication.model_validate_json(r[0]), bool(r[1])) for r in rows]

    def unsent(self) -> list[tuple[str, bytes]]:
        """(adjudication id, signed payload) of decisions the broker has not acknowledged yet, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT adjudication_id, payload FROM decisions WHERE sent = 0 ORDER BY rowid")
            return [(r[0], bytes(r[1])) for r in rows.fetchall()]

    def mark_sent(self, adjudication_id: str) -> str | None:
        """Record the broker's acknowledgement; returns the decision's event id."""
        self._write("UPDATE decisions SET sent = 1 WHERE adjudication_id = ?", (adjudication_id,))
        with self._lock:
            row = self._db.execute("SELECT event_id FROM decisions WHERE adjudication_id = ?",
                                   (adjudication_id,)).fetchone()
        return None if row is None else str(row[0])

    def purge(self, received_before: float) -> int:
        """Delete alerts received before the cut-off, except those with a decision still unsent."""
        try:
            with self._lock:
                self._db.execute("BEGIN")
                try:
                    old = "SELECT event_id FROM alerts WHERE received_at < ? AND event_id NOT IN " \
                          "(SELECT event_id FROM decisions WHERE sent = 0)"
                    self._db.execute(f"DELETE FROM decisions WHERE event_id IN ({old})", (received_before,))
                    count = self._db.execute(f"DELETE FROM alerts WHERE event_id IN ({old})",
                                             (received_before,)).rowcount
                    self._db.execute("COMMIT")
                except sqlite3.Error:
                    self._db.execute("ROLLBACK")
                    raise
        except sqlite3.Error as exc:
            raise InboxError(f"cannot purge old alerts from {self.path}: {exc}") from exc
        return count

    def close(self) -> None:
        with self._lock:
            self._db.close()
