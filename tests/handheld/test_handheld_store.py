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
