"""A disk that fills while the device runs loses no alert silently: `edge run` with a real broker and HQ,
its state on a small tmpfs filled to the last byte once the models are loaded and before the first frame.

Before: the outbox write failed, the audit record was skipped with it, and at stop the alert was dropped with
a CRITICAL line and exit status 0.
"""

from pathlib import Path

import pytest
from daemon_helpers import (
    audit_lines,
    edge,
    fill,
    hq_events,
    mount_tmpfs,
    run_paused_at_ready,
    umount,
    wait_for_hq_audit,
)

from edge.daemon.reserve import RESERVE_FILE
from edge.demo.trial import TrialFleet

DEVICE = "cam-full"
PEOPLE = {"lin-manuel-miranda.png": "Lin-Manuel Miranda"}


@pytest.fixture
def fleet(make_fleet) -> TrialFleet:
    return make_fleet("full", DEVICE)


def device_config(fleet: TrialFleet, demo_dir: Path, port: int, *link: str) -> Path:
    config = fleet.device_config(DEVICE, str(demo_dir / "short_hamilton_clip.mp4"), port)
    with open(config, "a") as out:  # [link] is the file's last table
        out.write("".join(f"{line}\n" for line in link))
    return config


def test_reserve_keeps_alerts_when_the_disk_fills(fleet: TrialFleet, demo_dir: Path, tmp_path: Path):
    state = fleet.state_dir(DEVICE)
    mount_tmpfs(state, "16m")  # outbox, audit log, watchlist: all on it
    broker = fleet.broker()
    broker.start()
    ingest = edge(*fleet.ingest_command(broker.port))
    try:
        fleet.publish(fleet.build_watchlist([DEVICE], demo_dir, PEOPLE, 1, fleet.hq / "v1.bundle"), broker.port)
        config = device_config(fleet, demo_dir, broker.port, "outbox_reserve_mb = 4")
        code, log = run_paused_at_ready(config, tmp_path, lambda _: fill(state))
        assert code == 0, log[-4000:]
        assert "released the 4 MiB reserve" in log, log[-4000:]
        alerts = [r["body"]["event_id"] for r in audit_lines(fleet, DEVICE) if r["kind"] == "alert"]
        assert alerts, log[-4000:]
        wait_for_hq_audit(fleet, DEVICE)
        assert sorted(m["event_id"] for m in hq_events(fleet, "match")) == sorted(alerts)
    finally:
        ingest.terminate()
        ingest.wait(10)
        broker.stop()
        umount(state)


def test_alert_the_outbox_cannot_take_is_audited_and_the_device_exits_with_an_error(fleet: TrialFleet,
                                                                                   demo_dir: Path, tmp_path: Path):
    queue_disk = tmp_path / "queue"
    mount_tmpfs(queue_disk, "4m")  # only the outbox; the audit log has room
    broker = fleet.broker()
    broker.start()
    try:
        fleet.publish(fleet.build_watchlist([DEVICE], demo_dir, PEOPLE, 1, fleet.hq / "v1.bundle"), broker.port)
        config = device_config(fleet, demo_dir, broker.port, f'outbox = "{queue_disk / "outbox.sqlite"}"',
                               "outbox_reserve_mb = 1")

        def spent_reserve_and_full(_: int) -> None:
            (queue_disk / RESERVE_FILE).unlink()  # spent by an earlier fill
            fill(queue_disk)

        code, log = run_paused_at_ready(config, tmp_path, spent_reserve_and_full)
        alerts = [r["body"]["event_id"] for r in audit_lines(fleet, DEVICE) if r["kind"] == "alert"]
        assert alerts, log[-4000:]  # audited, though the outbox could not take them
        assert code == 2, log[-4000:]
        [error] = [line for line in log.splitlines() if line.startswith("edge: error:")]
        assert f"{len(alerts)} alerts were lost at stop" in error, error
        assert all(f"{a} (not queued for HQ)" in error for a in alerts), error
    finally:
        broker.stop()
        umount(queue_disk)
