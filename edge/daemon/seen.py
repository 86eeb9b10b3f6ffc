"""The decisions the device has audited, kept on disk so a restart does not audit one twice.

Officers' decisions reach the device again after every reconnect and restart: the broker redelivers what was
not acknowledged and keeps retained ones. Each is audited once; its id goes into this file after its audit
record is written, so a crash between the two audits it at most once more, never not at all. The newest
`limit` ids are kept (a decision older than that is long acknowledged and no longer redelivered).
"""

import sqlite3
import threading
import time
from pathlib import Path

from edge.errors import EdgeError
from edge.localdb import open_local_db

_SCHEMA = "CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY, at REAL NOT NULL)"
SEEN_FILE = "decisions.sqlite"
REMEMBERED = 100_000


class SeenDecisions:
    """Ids of audited decisions, oldest dropped past `limit`. Thread-safe."""

    def __init__(self, path: Path, limit: int = REMEMBERED) -> None:
        self.path = path
        self._limit = limit
        self._lock = threading.Lock()
        self._db = open_local_db(path, _SCHEMA, "audited decisions", "normal")

    def __contains__(self, decision_id: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM seen WHERE id = ?", (decision_id,)).fetchone() is not None

    def add(self, decision_id: str) -> None:
        """Remember `decision_id` (already audited). Raises EdgeError if the file cannot be written."""
        try:
            with self._lock:
                self._db.execute("INSERT OR IGNORE INTO seen (id, at) VALUES (?, ?)", (decision_id, time.time()))
                self._db.execute("DELETE FROM seen WHERE rowid <= (SELECT MAX(rowid) FROM seen) - ?", (self._limit,))
        except sqlite3.Error as exc:
            raise EdgeError(f"cannot record decision {decision_id} as audited in {self.path}: {exc}; it may be "
                            "audited again after a restart: free disk space") from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()
