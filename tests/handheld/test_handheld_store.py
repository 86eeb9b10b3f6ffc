"""The handheld's store keeps alerts across a restart and survives a corrupt file by setting it aside."""

import logging
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
