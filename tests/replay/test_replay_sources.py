"""`edge replay` fails fast: a live source that is not there, a source without frames and a list without people
are errors within seconds (exit 2, saying why); `--wait` waits for a camera, as the daemon always does."""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge.capture.open import open_source
from edge.capture.opencv import VideoSource
from edge.cli import main
from edge.errors import SourceError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def people(tmp_path: Path, demo_dir: Path) -> Path:
    folder = tmp_path / "people"
    folder.mkdir()
    shutil.copy(demo_dir / "lin-manuel-miranda.png", folder)
    return folder


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("uri", ["/dev/video9", "v4l2:///dev/video9", "rtsp://127.0.0.1:{port}/nope"])
def test_a_missing_live_source_fails_fast(uri: str, people: Path, capsys):
    start = time.monotonic()
    code = main(["replay", "--source", uri.format(port=closed_port()), "--enroll", str(people)])
    elapsed = time.monotonic() - start
    err = capsys.readouterr().err
    assert code == 2 and elapsed < 15, (code, elapsed, err)
    assert "cannot open" in err and "add --wait" in err
    assert "enrolling" not in err, "the source is checked before the photos are enrolled"


def test_with_wait_replay_waits_for_the_camera(people: Path):
    child = subprocess.Popen([sys.executable, "-m", "edge", "replay", "--source", "/dev/video9", "--wait",
                              "--enroll", str(people)], cwd=REPO, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        deadline = time.monotonic() + 30
        lines = []
        while time.monotonic() < deadline and child.poll() is None:
            lines.append(child.stderr.readline())
            if "watchlist:" in lines[-1]:
                break
        time.sleep(2)
        assert child.poll() is None, "".join(lines)
        assert any("not available yet; waiting for it" in line for line in lines), lines
    finally:
        child.kill()
        child.wait()


def test_the_daemon_still_waits_and_replay_does_not():
    source = open_source("/dev/video9", prefer_jetson=False)  # the daemon's call: no exception, it waits
    assert source.live
    source.close()
    with pytest.raises(SourceError, match="cannot open /dev/video9"):
        open_source("/dev/video9", prefer_jetson=False, wait=False)


def test_without_wait_a_dropped_live_source_ends(demo_dir: Path):
    """A stream that drops during a replay ends it (the daemon reopens; see test_capture)."""
    source = VideoSource(str(demo_dir / "short_hamilton_clip.mp4"), "test://live", live=True, wait=False)
    frames = 0
    while source.read() is not None:
        frames += 1
    source.close()
    assert frames == 275


def test_a_source_without_frames_is_an_error(tmp_path: Path, people: Path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    assert main(["replay", "--source", str(empty), "--enroll", str(people)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and f"{empty} gave no readable image: nothing was reviewed" in err
    assert "--wait" not in err, "a folder is not a camera to wait for"


def test_an_enrolment_without_anyone_is_an_error(tmp_path: Path, data_dir: Path, capsys):
    nobody = tmp_path / "nobody"
    nobody.mkdir()
    shutil.copy(data_dir / "dlib_faces" / "dogs.jpg", nobody)
    source = str(data_dir / "demo" / "obama.jpg")
    assert main(["replay", "--source", source, "--enroll", str(nobody)]) == 2
    err = capsys.readouterr().err
    assert "not enrolled: " in err and f"no one enrolled from {nobody}: all 1 photos refused" in err
    (nobody / "dogs.jpg").unlink()
    assert main(["replay", "--source", source, "--enroll", str(nobody)]) == 2
    assert "no photos in it" in capsys.readouterr().err


@pytest.mark.parametrize("option, value, says", [
    ("--stride", "0", "--stride 0: Input should be greater than or equal to 1"),  # was a ZeroDivisionError
    ("--threads", "0", "--threads 0: Input should be greater than or equal to 1"),
    ("--long-side", "0", "--long-side 0: "),  # was every photo refused: a 32 x 32 detector input finds no face
    ("--long-side", "big", "--long-side 'big': give a number of pixels, or 'full'"),
])
def test_model_options_out_of_range_are_named(option: str, value: str, says: str, people: Path, demo_dir: Path,
                                              capsys) -> None:
    code = main(["replay", "--source", str(demo_dir / "short_hamilton_clip.mp4"), "--enroll", str(people),
                 option, value])
    err = capsys.readouterr().err
    assert code == 2 and says in err and "no one enrolled" not in err, err
