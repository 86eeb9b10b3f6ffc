"""The handheld's store keeps alerts across a restart and survives a corrupt file by setting it aside."""

import logging
import os
import stat
import time
from pathlib import Path

import pytest
from sample_alerts import make_alert

from edge.handheld.inbox import Inbox


def test_store_keeps_alerts_across_reopen_and_sets_a_corrupt_file_aside(tmp_path: Path,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "handheld.sqlite"
    alert = make_alert("cam01", "h1")
    store = Inbox(path)
    assert store.add_alert(alert, time.time())
    assert not store.add_alert(alert, time.time())  # QoS 1 may deliver it twice: kept once
    store.close()
    store = Inbox(path)
    assert store.alert(alert.event_id) == alert
    store.close()

    path.write_bytes(b"this is not a database" * 100)
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    with caplog.at_level(logging.ERROR):
        fresh = Inbox(path)
    assert "handheld store" in caplog.text and "started an empty one" in caplog.text
    assert fresh.alerts() == []
    assert fresh.add_alert(alert, time.time())
    fresh.close()
    aside = list(tmp_path.glob("handheld.sqlite.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not a database")


def test_store_files_are_readable_by_their_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    """They hold sealed alerts' face crops: 0600 from creation, and an older 0644 file is narrowed on open."""
    path = tmp_path / "handheld.sqlite"
    old = os.umask(0o022)
    try:
        store = Inbox(path)
        assert store.add_alert(make_alert("cam01", "h1"), time.time())
        for file in (path, Path(f"{path}-wal")):
            assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
        store.close()
        path.chmod(0o644)
        Inbox(path).close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_wal_left_0644_by_an_older_version_is_narrowed_before_new_crops_go_into_it(tmp_path: Path) -> None:
    """A handheld killed (battery out) under an older version leaves its -wal and -shm 0644; SQLite keeps using
    that very file, so every alert kept after the upgrade would go into a world-readable file."""
    old = os.umask(0o022)
    try:
        path = tmp_path / "handheld.sqlite"
        running = Inbox(path)
        assert running.add_alert(make_alert("cam01", "h1"), time.time())
        crashed = tmp_path / "crashed"
        crashed.mkdir()
        for suffix in ("", "-wal", "-shm"):  # the files as a killed process leaves them, as an older one made them
            copy = crashed / f"handheld.sqlite{suffix}"
            copy.write_bytes(Path(f"{path}{suffix}").read_bytes())
            copy.chmod(0o644)
        running.close()
        store = Inbox(crashed / "handheld.sqlite")
        try:
            assert store.add_alert(make_alert("cam01", "h1", label="After the upgrade"), time.time())
            for suffix in ("", "-wal", "-shm"):
                file = crashed / f"handheld.sqlite{suffix}"
                assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
        finally:
            store.close()
    finally:
        os.umask(old)
