"""The outbox keeps messages across reopen until removed, and survives a corrupt file by starting afresh."""

from pathlib import Path

from edge.link.outbox import Outbox


def test_outbox_persists_until_removed_and_sets_a_corrupt_file_aside(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    outbox = Outbox(path)
    ids = [outbox.put("t/a", f"m{i}".encode()) for i in range(3)]
    outbox.close()

    outbox = Outbox(path)
    assert [(e.topic, e.body) for e in outbox.after(0, 10)] == [("t/a", b"m0"), ("t/a", b"m1"), ("t/a", b"m2")]
    assert [e.body for e in outbox.after(ids[0], 1)] == [b"m1"]
    outbox.remove(ids[:2])
    outbox.close()
    assert [e.body for e in Outbox(path).after(0, 10)] == [b"m2"]

    path.write_bytes(b"this is not a database" * 100)
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    fresh = Outbox(path)
    assert len(fresh) == 0
    fresh.put("t/a", b"after")
    assert len(fresh) == 1
    aside = list(tmp_path.glob("outbox.sqlite.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not a database")
