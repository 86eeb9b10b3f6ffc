"""HQ's record of what devices and handhelds sent: accepted events (de-duplicated by kind and id), refusals,
device status, and the highest audit head each device announced (with every time it went backwards).

SQLite (WAL, synchronous FULL) for one HQ host; PostgreSQL (`postgresql://…`, needs psycopg) when several
ingest workers on several hosts share one store. Each batch is one transaction, written before the
ingest acknowledges the messages to the broker, so a crash loses nothing and a redelivery is a no-op.
Payloads are kept exactly as received, signature included, as evidence.

Ids are unique per kind only: a decision's id is chosen by a handheld, so one equal to an alert's event id
must not make the alert a "duplicate". Stores made when ids were unique across kinds are migrated on open.
"""

import datetime as dt
import importlib
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from edge.errors import EdgeError
from edge.protocol.messages import iso


class StoreError(EdgeError):
    """The store cannot be opened or written."""


@dataclass(frozen=True)
class Event:
    """An accepted, signature-checked record. Times are ISO 8601 UTC strings (`messages.iso`), which sort.

    For an officer's decision (kind "adjudication") `event_id` is its adjudication id and `device` the device
    whose alert it decides; the alert's own event id is in the payload."""

    event_id: str
    kind: str  # "match" | "audit" | "watchlist_state" | "adjudication" | "pairing"
    device: str
    occurred_at: str
    received_at: str
    payload: str


@dataclass(frozen=True)
class Rejection:
    received_at: str
    topic: str
    reason: str
    payload: bytes


@dataclass(frozen=True)
class Head:
    """A device's audit log head as it announced it: the last record's seq and hash."""

    seq: int
    hash: str


@dataclass(frozen=True)
class Status:
    device: str
    online: bool
    updated_at: str
    payload: str
    head: Head | None = None  # the audit head the status announced, if it did


@dataclass(frozen=True)
class Regression:
    """The device announced a head below one it announced before: its log lost its end (cut, or restored)."""

    device: str
    noticed_at: str
    before: Head
    after: Head


@dataclass(frozen=True)
class Batch:
    events: Sequence[Event] = ()
    rejections: Sequence[Rejection] = ()
    statuses: Sequence[Status] = ()


class _Connection(Protocol):
    def cursor(self) -> Any: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def close(self) -> None: ...


_TABLES = """
CREATE TABLE IF NOT EXISTS events (
    event_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    device TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    received_at TEXT NOT NULL,
    payload TEXT NOT NULL,
    PRIMARY KEY (kind, event_id)
);
CREATE INDEX IF NOT EXISTS events_received ON events (received_at);
CREATE INDEX IF NOT EXISTS events_device ON events (device, received_at);
CREATE TABLE IF NOT EXISTS rejected (
    id {serial},
    received_at TEXT NOT NULL,
    topic TEXT NOT NULL,
    reason TEXT NOT NULL,
    payload {blob} NOT NULL
);
CREATE TABLE IF NOT EXISTS device_status (
    device TEXT PRIMARY KEY,
    online BOOLEAN NOT NULL,
    updated_at TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_heads (
    device TEXT PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    announced_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_heads_seen (
    device TEXT NOT NULL,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (device, seq, hash)
);
CREATE TABLE IF NOT EXISTS audit_head_regressions (
    id {serial},
    device TEXT NOT NULL,
    noticed_at TEXT NOT NULL,
    from_seq BIGINT NOT NULL,
    from_hash TEXT NOT NULL,
    to_seq BIGINT NOT NULL,
    to_hash TEXT NOT NULL
);
"""
# Stores written before ids were per kind had `event_id TEXT PRIMARY KEY`: rebuilt with the same rows.
_SQLITE_MIGRATE = """
CREATE TABLE events_by_kind (
    event_id TEXT NOT NULL, kind TEXT NOT NULL, device TEXT NOT NULL, occurred_at TEXT NOT NULL,
    received_at TEXT NOT NULL, payload TEXT NOT NULL, PRIMARY KEY (kind, event_id)
);
INSERT INTO events_by_kind SELECT event_id, kind, device, occurred_at, received_at, payload FROM events;
DROP TABLE events;
ALTER TABLE events_by_kind RENAME TO events;
"""
# The primary key of the `events` table the store's unqualified name resolves to (another schema may have one).
_POSTGRES_KEY = ("SELECT c.conname, a.attname FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid "
                 "AND a.attnum = ANY(c.conkey) WHERE c.conrelid = to_regclass('events') AND c.contype = 'p'")
_POSTGRES_MIGRATE = 'ALTER TABLE events DROP CONSTRAINT "{}", ADD PRIMARY KEY (kind, event_id)'


_HEADS_KEPT = 100_000  # announced heads remembered below the latest, in seqs: far more than any worker lags


class EventStore:
    """One store connection, serialised by a lock so readers in other threads never split a write batch."""

    def __init__(self, connection: _Connection, placeholder: str, location: str) -> None:
        self._lock = threading.Lock()
        self._db = connection
        self._ph = placeholder
        self.location = location

    @classmethod
    def open(cls, target: str) -> "EventStore":
        """`target`: a SQLite file path, or a `postgresql://` / `postgres://` URL."""
        if target.startswith(("postgresql://", "postgres://")):
            return cls._open_postgres(target)
        path = Path(target)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            db = sqlite3.connect(path, check_same_thread=False, timeout=30)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            if [r[1] for r in db.execute("PRAGMA table_info(events)") if r[5]] == ["event_id"]:
                db.executescript(f"BEGIN; {_SQLITE_MIGRATE} COMMIT;")
            db.executescript(_TABLES.format(serial="INTEGER PRIMARY KEY AUTOINCREMENT", blob="BLOB"))
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open HQ store {path}: {exc}") from exc
        return cls(db, "?", str(path))

    @classmethod
    def _open_postgres(cls, url: str) -> "EventStore":
        try:
            psycopg = importlib.import_module("psycopg")
        except ImportError as exc:
            raise StoreError(
                "a PostgreSQL URL was given but psycopg is not installed: pip install 'psycopg[binary]'"
            ) from exc
        try:
            db = psycopg.connect(url)
            with db.cursor() as cur:
                cur.execute(_POSTGRES_KEY)
                key = cur.fetchall()
                if [r[1] for r in key] == ["event_id"]:
                    cur.execute(_POSTGRES_MIGRATE.format(key[0][0].replace('"', '""')))
                for statement in _TABLES.format(serial="BIGSERIAL PRIMARY KEY", blob="BYTEA").split(";"):
                    if statement.strip():
                        cur.execute(statement)
            db.commit()
        except psycopg.Error as exc:
            raise StoreError(f"cannot open PostgreSQL store: {exc}") from exc
        return cls(db, "%s", url.split("@")[-1])

    def _sql(self, text: str) -> str:
        return text.replace("?", self._ph)

    def write(self, batch: Batch) -> int:
        """Write a batch in one transaction; return how many events were new (the rest were duplicates)."""
        return self._transaction(batch)

    def _transaction(self, batch: Batch, *also: tuple[str, tuple[Any, ...]]) -> int:
        """`batch` and the statements `also` (SQL, parameters) in one transaction; how many events were new."""
        with self._lock:
            cur = self._db.cursor()
            try:
                new = self._write(cur, batch)
                for sql, params in also:
                    cur.execute(self._sql(sql), params)
                self._db.commit()
            except Exception as exc:
                self._db.rollback()
                raise StoreError(f"cannot write to HQ store {self.location}: {exc}") from exc
            finally:
                cur.close()
        return new

    def _write(self, cur: Any, batch: Batch) -> int:
        new = 0
        for e in batch.events:
            cur.execute(
                self._sql(
                    "INSERT INTO events (event_id, kind, device, occurred_at, received_at, payload) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (kind, event_id) DO NOTHING"
                ),
                (e.event_id, e.kind, e.device, e.occurred_at, e.received_at, e.payload),
            )
            new += max(cur.rowcount, 0)
        for r in batch.rejections:
            cur.execute(
                self._sql("INSERT INTO rejected (received_at, topic, reason, payload) VALUES (?, ?, ?, ?)"),
                (r.received_at, r.topic, r.reason, r.payload),
            )
        for s in batch.statuses:
            cur.execute(
                self._sql(
                    "INSERT INTO device_status (device, online, updated_at, payload) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (device) DO UPDATE SET online = excluded.online, "
                    "updated_at = excluded.updated_at, payload = excluded.payload"
                ),
                (s.device, s.online, s.updated_at, s.payload),
            )
            if s.head is not None:
                self._head(cur, s.device, s.head, s.updated_at)
        return new

    def _head(self, cur: Any, device: str, head: Head, at: str) -> None:
        """Keep the latest head announced; one below the head before it (or another hash at the same seq) is also
        kept as a regression, once: the head then follows the device's new chain.

        Statuses are ordered by when the device said them (`at`, which sorts), not by when they arrive: a late
        copy of an older one (each of several ingest workers gets every status and writes at its own pace; paho
        sends the statuses queued during an outage after the one `on_connect` says) is no news. A device whose
        clock went back is then not heard until it catches up; every head it announced is kept
        (`heads_seen`), and one that is not the record HQ holds at its seq still shows (`edge.hq.heads`)."""
        cur.execute(self._sql("INSERT INTO audit_heads_seen (device, seq, hash) VALUES (?, ?, ?) "
                              "ON CONFLICT (device, seq, hash) DO NOTHING"), (device, head.seq, head.hash))
        cur.execute(self._sql("DELETE FROM audit_heads_seen WHERE device = ? AND seq < ?"),
                    (device, head.seq - _HEADS_KEPT))
        cur.execute(self._sql("SELECT seq, hash, announced_at FROM audit_heads WHERE device = ?"), (device,))
        row = cur.fetchone()
        if row is not None and at < row[2]:
            return
        if row is not None and (head.seq < row[0] or (head.seq == row[0] and head.hash != row[1])):
            cur.execute(self._sql("INSERT INTO audit_head_regressions (device, noticed_at, from_seq, from_hash, "
                                  "to_seq, to_hash) VALUES (?, ?, ?, ?, ?, ?)"),
                        (device, at, row[0], row[1], head.seq, head.hash))
        cur.execute(self._sql("INSERT INTO audit_heads (device, seq, hash, announced_at) VALUES (?, ?, ?, ?) "
                                  "ON CONFLICT (device) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, "
                              "announced_at = excluded.announced_at"), (device, head.seq, head.hash, at))

    def events(
        self, since: dt.datetime | None = None, device: str | None = None, kind: str | None = None,
        limit: int | None = 1000,
    ) -> list[Event]:
        """Accepted events received since `since`, oldest first; `limit` None: all of them."""
        where, args = ["1=1"], []
        if since is not None:
            where.append("received_at >= ?")
            args.append(iso(since))
        if device is not None:
            where.append("device = ?")
            args.append(device)
        if kind is not None:
            where.append("kind = ?")
            args.append(kind)
        rows = self._query(
            f"SELECT event_id, kind, device, occurred_at, received_at, payload FROM events "
            f"WHERE {' AND '.join(where)} ORDER BY received_at, event_id"
            + ("" if limit is None else f" LIMIT {int(limit)}"),
            args,
        )
        return [Event(*r) for r in rows]

    def count(self, kind: str | None = None) -> int:
        if kind is None:
            return int(self._query("SELECT COUNT(*) FROM events", [])[0][0])
        return int(self._query("SELECT COUNT(*) FROM events WHERE kind = ?", [kind])[0][0])

    def rejections(self, limit: int = 1000) -> list[Rejection]:
        rows = self._query(
            f"SELECT received_at, topic, reason, payload FROM rejected ORDER BY id LIMIT {int(limit)}", []
        )
        return [Rejection(r[0], r[1], r[2], bytes(r[3])) for r in rows]

    def refused(self, after: int = 0, limit: int | None = None) -> list[tuple[int, Rejection]]:
        """Refusals kept with a row id above `after` (at most `limit`), oldest first, with their row id (for
        `accept_refused`). A flood of refused messages can be far larger than memory: page through it."""
        rows = self._query("SELECT id, received_at, topic, reason, payload FROM rejected WHERE id > ? ORDER BY id"
                           + ("" if limit is None else f" LIMIT {int(limit)}"), [after])
        return [(int(r[0]), Rejection(r[1], r[2], r[3], bytes(r[4]))) for r in rows]

    def accept_refused(self, row_id: int, batch: Batch) -> int:
        """Store what a second check of refusal `row_id` accepted and drop that refusal, in one transaction."""
        if batch.rejections:
            raise ValueError("a refusal is accepted with its events and statuses only")
        return self._transaction(batch, ("DELETE FROM rejected WHERE id = ?", (row_id,)))

    def devices(self, kind: str | None = None) -> list[str]:
        """Devices with accepted events (of `kind`, if given), sorted."""
        sql, args = ("SELECT DISTINCT device FROM events", []) if kind is None else (
            "SELECT DISTINCT device FROM events WHERE kind = ?", [kind])
        return sorted(r[0] for r in self._query(sql, args))

    def statuses(self) -> list[Status]:
        rows = self._query("SELECT device, online, updated_at, payload FROM device_status ORDER BY device", [])
        return [Status(r[0], bool(r[1]), r[2], r[3]) for r in rows]

    def head(self, device: str) -> Head | None:
        """The audit head `device` announced last in its status."""
        rows = self._query("SELECT seq, hash FROM audit_heads WHERE device = ?", [device])
        return Head(int(rows[0][0]), rows[0][1]) if rows else None

    def heads_seen(self, device: str) -> list[Head]:
        """Every head `device` announced (the last 100,000 seqs of them), by seq."""
        rows = self._query("SELECT seq, hash FROM audit_heads_seen WHERE device = ? ORDER BY seq, hash", [device])
        return [Head(int(r[0]), r[1]) for r in rows]

    def regressions(self, device: str) -> list[Regression]:
        """Each time `device` announced an audit head below the highest before it, oldest first."""
        rows = self._query("SELECT noticed_at, from_seq, from_hash, to_seq, to_hash FROM audit_head_regressions "
                           "WHERE device = ? ORDER BY id", [device])
        return [Regression(device, r[0], Head(int(r[1]), r[2]), Head(int(r[3]), r[4])) for r in rows]

    def _query(self, sql: str, args: list[Any]) -> list[tuple[Any, ...]]:
        with self._lock:
            cur = self._db.cursor()
            try:
                cur.execute(self._sql(sql), args)
                rows = list(cur.fetchall())
                self._db.commit()
                return rows
            finally:
                cur.close()

    def close(self) -> None:
        with self._lock:
            self._db.close()
