"""A full disk or a locked file at start-up is not corruption: the outbox and its `-wal` are kept as they are.

Before: `open_local_db` moved the outbox aside and deleted its `-wal` on any SQLite error at open, so a device
started on a full disk lost every message still waiting for the broker.
"""

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from daemon_helpers import fill, mount_tmpfs, umount

from edge.link.outbox import Outbox
from edge.localdb import LocalDbError, damaged

# Rows committed to the WAL only: the process ends without closing, so nothing is checkpointed into the file.
_CRASH = """
import os, sys
from pathlib import Path
from edge.link.outbox import Outbox
outbox = Outbox(Path(sys.argv[1]))
for i in range(5):
    outbox.put("t/a", f"m{i}".encode())
os._exit(0)
"""


def test_full_disk_at_open_keeps_the_outbox_and_its_wal(tmp_path: Path) -> None:
    disk = tmp_path / "small"
    mount_tmpfs(disk, "256k")
    try:
        path = disk / "outbox.sqlite"
        subprocess.run([sys.executable, "-c", _CRASH, str(path)], check=True)
        wal = Path(f"{path}-wal")
        assert wal.stat().st_size > 0
        Path(f"{path}-shm").unlink()  # as after a reboot: the index is rebuilt on open, which needs space
        fill(disk)
        with pytest.raises(LocalDbError, match="left as it is") as caught:
            Outbox(path)
        assert caught.value.disk_full
        assert not list(disk.glob("*.corrupt-*")) and path.exists() and wal.stat().st_size > 0
        (disk / "filler").unlink()
        outbox = Outbox(path)
        assert [e.body for e in outbox.after(0, 10)] == [f"m{i}".encode() for i in range(5)]
        outbox.close()
    finally:
        umount(disk)


def test_only_damage_counts_as_corruption(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    other = sqlite3.connect(path, timeout=0)
    with pytest.raises(sqlite3.OperationalError, match="database is locked") as locked:
        other.execute("PRAGMA journal_mode=WAL")
    assert not damaged(locked.value)
    holder.execute("ROLLBACK")
    holder.close()
    other.close()
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(sqlite3.DatabaseError, match="file is not a database") as not_a_db:
        sqlite3.connect(path).execute("PRAGMA journal_mode=WAL")
    assert damaged(not_a_db.value)
    Outbox(path).close()  # moved aside, an empty one started
    assert len(list(tmp_path.glob("outbox.sqlite.corrupt-*"))) == 1
