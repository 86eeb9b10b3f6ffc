"""The HQ store behaves the same on SQLite and PostgreSQL: one row per kind and event id, refusals kept, status
upserted, audit heads that go backwards recorded; stores from before ids were per kind are migrated."""

import datetime as dt
import os
import pwd
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.hq.broker import free_port
from edge.hq.store import Batch, Event, EventStore, Head, Rejection, Status


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL server on a free 127.0.0.1 port (skipped when PostgreSQL or psycopg is missing)."""
    pytest.importorskip("psycopg", reason="psycopg not installed (pip install 'psycopg[binary]')")
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not on PATH")
    folder = Path(tempfile.mkdtemp(prefix="edge-pg-"))
    user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
    port = free_port()
    subprocess.run(_as_postgres([initdb, "--no-sync", "-D", str(folder / "data"), "-A", "trust", "-U", user]),
                   check=True, capture_output=True)
    subprocess.run(_as_postgres([pg_ctl, "-D", str(folder / "data"), "-w", "-l", str(folder / "log"), "-o",
                                 f"-h 127.0.0.1 -p {port} -k {folder}", "start"]), check=True, capture_output=True)
    try:
        yield f"postgresql://{user}@127.0.0.1:{port}/postgres"
    finally:
        pid = int((folder / "data" / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGQUIT)  # immediate shutdown, without pg_ctl's one-second polling
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            time.sleep(0.02)
        shutil.rmtree(folder, ignore_errors=True)


def event(event_id: str, device: str, received: str) -> Event:
    return Event(event_id, "match", device, "2025-01-01T00:00:00.000Z", received, f'{{"id": "{event_id}"}}')


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_store_deduplicates_keeps_refusals_and_upserts_status(backend: str, tmp_path: Path, request) -> None:  # type: ignore[no-untyped-def]
    target = str(tmp_path / "hq.sqlite") if backend == "sqlite" else request.getfixturevalue("postgres_url")
    store = EventStore.open(target)
    t1, t2 = "2025-01-01T10:00:00.000Z", "2025-01-01T11:00:00.000Z"
    first = Batch(
        events=[event("e1", "a", t1), event("e2", "b", t1), event("e1", "a", t1)],
        rejections=[Rejection(t1, "edge/v1/devices/a/events/match", "bad signature", b"\x00\xff")],
        statuses=[Status("a", True, t1, "{}")],
    )
    assert store.write(first) == 2
    second = Batch(events=[event("e2", "b", t2), event("e3", "a", t2)], statuses=[Status("a", False, t2, "{}")])
    assert store.write(second) == 1
    assert store.count() == 3
    assert [e.event_id for e in store.events(device="a")] == ["e1", "e3"]
    since = dt.datetime(2025, 1, 1, 10, 30, tzinfo=dt.timezone.utc)
    assert [e.event_id for e in store.events(since=since)] == ["e3"]
    assert [(r.reason, r.payload) for r in store.rejections()] == [("bad signature", b"\x00\xff")]
    assert [(s.device, s.online, s.updated_at) for s in store.statuses()] == [("a", False, t2)]
    store.close()
    reopened = EventStore.open(target)  # durable across reopen; creating the schema again is a no-op
    assert reopened.count() == 3
    reopened.close()


def test_postgres_url_without_psycopg_is_a_clear_error() -> None:
    code = (
        "import sys; sys.modules['psycopg'] = None\n"
        "from edge.hq.store import EventStore, StoreError\n"
        "try:\n    EventStore.open('postgresql://hq@127.0.0.1/events')\n"
        "except StoreError as exc:\n    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "psycopg is not installed" in out and "pip install" in out


# The events table as stores were made before ids were unique per kind.
OLD_EVENTS = """CREATE TABLE events (event_id TEXT PRIMARY KEY, kind TEXT NOT NULL, device TEXT NOT NULL,
    occurred_at TEXT NOT NULL, received_at TEXT NOT NULL, payload TEXT NOT NULL)"""


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_old_store_is_migrated_and_kinds_have_their_own_ids(backend: str, tmp_path: Path, request) -> None:  # type: ignore[no-untyped-def]
    """A decision's id is the handheld's choice: one equal to an alert's id must not make the alert a duplicate."""
    t1 = "2025-01-01T10:00:00.000Z"
    if backend == "sqlite":
        target = str(tmp_path / "hq.sqlite")
        with sqlite3.connect(target) as db:
            db.execute(OLD_EVENTS)
            db.execute("INSERT INTO events VALUES ('e1', 'match', 'a', ?, ?, '{}')", (t1, t1))
    else:
        target = request.getfixturevalue("postgres_url")
        import psycopg

        with psycopg.connect(target) as db:
            db.execute("DROP TABLE IF EXISTS events")
            db.execute(OLD_EVENTS)
            db.execute("INSERT INTO events VALUES ('e1', 'match', 'a', %s, %s, '{}')", (t1, t1))
    store = EventStore.open(target)
    assert [(e.event_id, e.kind) for e in store.events()] == [("e1", "match")]  # kept through the migration
    decision = Event("e1", "adjudication", "a", t1, t1, "{}")
    assert store.write(Batch(events=[decision, event("e2", "a", t1), decision])) == 2
    assert sorted((e.event_id, e.kind) for e in store.events()) == [("e1", "adjudication"), ("e1", "match"),
                                                                    ("e2", "match")]
    store.close()
    assert EventStore.open(target).count() == 3  # opening a migrated store again changes nothing


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_audit_heads_going_backwards_are_recorded(backend: str, tmp_path: Path, request) -> None:  # type: ignore[no-untyped-def]
    target = str(tmp_path / "hq.sqlite") if backend == "sqlite" else request.getfixturevalue("postgres_url")
    if backend == "postgresql":
        import psycopg

        with psycopg.connect(target) as db:
            for table in ("audit_heads", "audit_heads_seen", "audit_head_regressions"):
                db.execute(f"DROP TABLE IF EXISTS {table}")
    store = EventStore.open(target)
    h = ["0" * 63 + str(i) for i in range(4)]
    # (a late copy of t1's status, from a slower worker or queued during an outage: no news, however new its head)
    for at, seq, digest in [("t1", 5, h[0]), ("t2", 17, h[1]), ("t1", 5, h[0]), ("t1", 3, h[3]), ("t3", 7, h[2]),
                            ("t4", 9, h[3]), ("t5", 9, h[0])]:
        store.write(Batch(statuses=[Status("a", True, at, "{}", Head(seq, digest))]))
    assert store.head("a") == Head(9, h[0])
    assert [(r.noticed_at, r.before, r.after) for r in store.regressions("a")] == [
        ("t3", Head(17, h[1]), Head(7, h[2])), ("t5", Head(9, h[3]), Head(9, h[0]))]
    assert store.head("b") is None and store.regressions("b") == []


def test_old_postgres_store_is_migrated_beside_another_schemas_events_table(postgres_url: str) -> None:
    """A PostgreSQL database shared with something else: another schema's `events` table (its key also named
    `events_pkey`, as PostgreSQL names every such key) must not hide that HQ's own store still has the old key."""
    import psycopg

    t1 = "2025-01-01T10:00:00.000Z"
    with psycopg.connect(postgres_url) as db:
        db.execute("DROP TABLE IF EXISTS events")
        db.execute("DROP SCHEMA IF EXISTS other CASCADE")
        db.execute("CREATE SCHEMA other")
        db.execute("CREATE TABLE other.events (id BIGINT PRIMARY KEY, what TEXT)")
        db.execute(OLD_EVENTS)
        db.execute("INSERT INTO events VALUES ('e1', 'match', 'a', %s, %s, '{}')", (t1, t1))
    try:
        store = EventStore.open(postgres_url)
        decision = Event("e1", "adjudication", "a", t1, t1, "{}")
        assert store.write(Batch(events=[decision])) == 1  # before the fix: no migration, every write failed
        assert sorted((e.event_id, e.kind) for e in store.events()) == [("e1", "adjudication"), ("e1", "match")]
        store.close()
        assert EventStore.open(postgres_url).count() == 2
    finally:
        with psycopg.connect(postgres_url) as db:
            db.execute("DROP SCHEMA other CASCADE")
