"""Frame sources: files end cleanly, folders skip what they cannot read, a live source comes back after a drop."""

import logging
import shutil
import threading
from pathlib import Path

import pytest

from edge.capture.open import open_source
from edge.capture.opencv import VideoSource
from edge.errors import SourceError


def test_file_ends_cleanly(demo_dir: Path):
    source = open_source(str(demo_dir / "short_hamilton_clip.mp4"))
    frames = 0
    while (frame := source.read()) is not None:
        assert frame.image.shape == (360, 640, 3) and frame.index == frames
        frames += 1
    assert frames == 275 and not source.live
    assert source.read() is None
    source.close()


def test_file_uri_and_single_image(demo_dir: Path):
    source = open_source(f"file://{demo_dir / 'obama.jpg'}")
    assert source.read().image.ndim == 3
    assert source.read() is None


def test_live_source_that_drops_is_reopened_and_the_gap_logged(demo_dir: Path, caplog):
    """A live source read past its end behaves as a dropped camera: reopened with back-off, gap logged."""
    source = VideoSource(str(demo_dir / "short_hamilton_clip.mp4"), "test://live", live=True, max_backoff=0.5)
    caplog.set_level(logging.WARNING)
    for _ in range(275 + 10):
        assert source.read() is not None
    source.close()
    assert "source dropped; reopening" in caplog.text
    assert "source back after a" in caplog.text


@pytest.mark.parametrize("uri", ["csi://0", "gopher://x", "/no/such/clip.mp4"])
def test_unusable_sources_say_what_to_do(uri: str):
    with pytest.raises(SourceError) as err:
        open_source(uri)
    assert "csi" in str(err.value) or "not found" in str(err.value)


@pytest.mark.parametrize("uri", ["/dev/video99", "v4l2:///dev/video98", "rtsp://127.0.0.1:9/none"])
def test_a_live_source_missing_at_start_is_waited_for(uri: str, caplog):
    caplog.set_level(logging.WARNING)
    source = open_source(uri, prefer_jetson=False)  # no exception: the daemon waits instead of restarting
    assert source.live
    source.close()
    assert "not available yet" in caplog.text


def test_a_source_waited_for_from_the_start_is_not_said_to_have_dropped(demo_dir: Path, tmp_path: Path, caplog):
    """Waiting for a camera that was never there: no "source dropped; reopening", and it says when it comes up."""
    caplog.set_level(logging.WARNING)
    target = tmp_path / "camera.mp4"  # appears a moment later, as a camera plugged in after start
    source = VideoSource(str(target), "test://late", live=True, max_backoff=0.5)
    timer = threading.Timer(1.0, shutil.copy, (demo_dir / "short_hamilton_clip.mp4", target))
    timer.start()
    try:
        assert source.read() is not None
    finally:
        timer.cancel()
        source.close()
    assert "not available yet; waiting for it" in caplog.text
    assert "dropped" not in caplog.text, caplog.text
    assert "source up after" in caplog.text


def test_a_photo_folder_names_the_files_it_does_not_review(demo_dir: Path, tmp_path: Path, caplog):
    shutil.copy(demo_dir / "obama.jpg", tmp_path / "a.jpg")
    (tmp_path / "b.gif").write_bytes(b"GIF89a")
    (tmp_path / "c.heic").write_bytes(b"\0")
    caplog.set_level(logging.WARNING)
    source = open_source(str(tmp_path))
    assert source.read() is not None and source.read() is None
    assert "2 file(s) not reviewed" in caplog.text and "b.gif, c.heic" in caplog.text
