"""Bad input gets a clear message and the run goes on: corrupt, empty, grey, tiny, huge, truncated."""

import json
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.cli import main


@pytest.fixture
def odd_folder(tmp_path: Path, data_dir: Path) -> Path:
    folder = tmp_path / "frames"
    folder.mkdir()
    face = cv2.imread(str(data_dir / "demo" / "obama.jpg"))
    (folder / "a_corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg" * 10)
    (folder / "b_empty.png").write_bytes(b"")
    cv2.imwrite(str(folder / "c_grey.png"), cv2.cvtColor(face, cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(folder / "d_tiny.png"), cv2.resize(face, (6, 5)))
    cv2.imwrite(str(folder / "e_huge.jpg"), cv2.resize(face, (4800, 3600)))
    shutil.copy(data_dir / "demo" / "test_images" / "32bit.png", folder / "f_rgba.png")
    cv2.imwrite(str(folder / "g_noface.png"), np.full((240, 320, 3), 127, np.uint8))
    return folder


def test_replay_over_odd_images_goes_on(odd_folder: Path, data_dir: Path, tmp_path: Path, capsys, caplog):
    people = tmp_path / "people"
    people.mkdir()
    shutil.copy(data_dir / "demo" / "obama.jpg", people / "barack-obama.jpg")
    shutil.copy(odd_folder / "a_corrupt.jpg", people / "someone-else.jpg")
    assert main(["replay", "--source", str(odd_folder), "--enroll", str(people), "--json"]) == 0
    out, err = capsys.readouterr()
    assert "someone-else.jpg: unreadable" in err
    assert "a_corrupt.jpg: not a readable image" in caplog.text and "b_empty.png" in caplog.text
    assert re.search(r"^5 photos in ", err, re.M), err  # the two unreadable files are skipped, the rest processed
    # each photo is judged on its own: the grey and the huge copies of the enrolled face, and the RGBA photo (also
    # of Barack Obama, from face_recognition's tests) are named; nothing else
    assert sorted(json.loads(line)["photo"] for line in out.splitlines()) == ["c_grey.png", "e_huge.jpg", "f_rgba.png"]


def test_truncated_video_ends_cleanly(tmp_path: Path, demo_dir: Path, capsys):
    clip = tmp_path / "cut.mp4"
    data = (demo_dir / "short_hamilton_clip.mp4").read_bytes()
    clip.write_bytes(data[: len(data) // 2])
    people = tmp_path / "people"
    people.mkdir()
    shutil.copy(demo_dir / "lin-manuel-miranda.png", people)
    code = main(["replay", "--source", str(clip), "--enroll", str(people)])
    err = capsys.readouterr().err
    assert code in (0, 2), err
    if code == 2:  # the container index was cut off: OpenCV cannot open it at all, and says so
        assert "cannot open" in err
    else:
        assert "frames in" in err


def test_missing_source_is_a_clear_error(tmp_path: Path, capsys):
    people = tmp_path / "people"
    people.mkdir()
    assert main(["replay", "--source", str(tmp_path / "nope.mp4"), "--enroll", str(people)]) == 2
    assert "not found" in capsys.readouterr().err
