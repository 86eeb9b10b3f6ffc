"""A device's cameras: one [camera] table (a list of one, as before) or several [[cameras]] tables."""

from pathlib import Path

import pytest

from edge.cli import main
from edge.config import load_config

DEVICE = '[device]\nid = "cam-1"\n'


def test_a_list_of_cameras_keeps_each_ones_settings(tmp_path: Path) -> None:
    path = tmp_path / "edge.toml"
    path.write_text(DEVICE + '[[cameras]]\nid = "front"\nsource = "/dev/edge/camera-0"\nstall_s = 5\n'
                    '[[cameras]]\nid = "rear"\nsource = "rtsp://10.0.0.2/stream"\nqueue = 8\nmax_backoff = 10\n')
    cameras = load_config(path).all_cameras
    assert [(c.id, c.source, c.queue, c.stall_s, c.max_backoff) for c in cameras] == [
        ("front", "/dev/edge/camera-0", 4, 5.0, 30.0), ("rear", "rtsp://10.0.0.2/stream", 8, 30.0, 10.0)]


@pytest.mark.parametrize(("toml", "ids"), [
    (DEVICE + '[camera]\nid = "door"\nsource = "csi://1"\n', ["door"]),
    (DEVICE, ["cam0"]),  # no camera given: the one default camera, as before
])
def test_the_single_camera_table_still_means_one_camera(tmp_path: Path, toml: str, ids: list[str]) -> None:
    path = tmp_path / "edge.toml"
    path.write_text(toml)
    cfg = load_config(path)
    assert [c.id for c in cfg.all_cameras] == ids and cfg.cameras is None and cfg.camera is not None


def test_source_override_needs_a_single_camera(tmp_path: Path, capsys) -> None:
    path = tmp_path / "edge.toml"
    path.write_text(DEVICE + '[[cameras]]\nid = "a"\n[[cameras]]\nid = "b"\n')
    assert main(["run", "--config", str(path), "--source", "clip.mp4"]) == 2
    assert "--source replaces the one camera's source, but [[cameras]] lists 2" in capsys.readouterr().err
