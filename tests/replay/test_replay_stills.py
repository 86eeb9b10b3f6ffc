"""Photos are judged one by one: every enrolled person in a folder of stills is named, strangers are not, and a
fixed `--threshold` is used, shown, and kept between the embedder's floor and 1."""

import json
import shutil
from pathlib import Path

import pytest

from edge.cli import main
from edge.config.embedder import DEFAULT_EMBEDDER
from edge.config.match import MatchConfig
from edge.models import ENGINES_DIR, Manifest
from edge.watchlist.calibration import load_policy

ENROLLED = ("Colin_Powell", "Serena_Williams")
STRANGERS = ("Aaron_Eckhart", "Abba_Eban", "Adam_Ant", "Yoko_Ono", "Zinedine_Zidane")


@pytest.fixture
def stills(tmp_path: Path, data_dir: Path) -> tuple[Path, Path]:
    """(enrolment folder: each person's first LFW photo; folder of stills: their next two, a byte-identical copy
    of an enrolled photo, and five strangers)."""
    lfw = data_dir / "lfw"
    enroll, photos = tmp_path / "known", tmp_path / "unknown"
    enroll.mkdir()
    photos.mkdir()
    for person in ENROLLED:
        shutil.copy(lfw / person / f"{person}_0001.jpg", enroll / f"{person}.jpg")
        for n in (2, 3):
            shutil.copy(lfw / person / f"{person}_000{n}.jpg", photos)
    shutil.copy(lfw / "Serena_Williams" / "Serena_Williams_0001.jpg", photos / "same_bytes.jpg")
    for person in STRANGERS:
        shutil.copy(lfw / person / f"{person}_0001.jpg", photos)
    return enroll, photos


def replay_json(enroll: Path, photos: Path, capsys, *extra: str) -> tuple[list[dict], str]:
    assert main(["replay", "--source", str(photos), "--enroll", str(enroll), "--json", *extra]) == 0
    out, err = capsys.readouterr()
    return [json.loads(line) for line in out.splitlines()], err


def test_a_folder_of_stills_names_every_enrolled_person_and_no_stranger(stills, capsys):
    alerts, err = replay_json(*stills, capsys)
    assert {a["photo"]: a["person"] for a in alerts} == {
        "Colin_Powell_0002.jpg": "Colin Powell", "Colin_Powell_0003.jpg": "Colin Powell",
        "Serena_Williams_0002.jpg": "Serena Williams", "Serena_Williams_0003.jpg": "Serena Williams",
        "same_bytes.jpg": "Serena Williams"}
    assert next(a for a in alerts if a["photo"] == "same_bytes.jpg")["score"] > 0.99
    assert all(a["evidence"] == 1 for a in alerts), "one embedding decides for a photo"
    summary = err.strip().splitlines()[-1]
    assert summary.startswith("10 photos in "), summary
    seen, discarded, count = (int(summary.split(word)[1].split(",")[0]) for word in
                              ("faces seen ", "discarded without a match ", "alerts "))
    assert count == 5 and seen >= 10 and discarded == seen - count, "every face seen either alerted or was let go"


def test_a_threshold_given_is_used_and_shown(stills, capsys):
    alerts, err = replay_json(*stills, capsys, "--threshold", "0.8")
    assert "threshold 0.800 (fixed (--threshold)" in err
    # the other photos of each person score 0.6-0.75: below 0.8 now; the identical copy still alerts
    assert [a["photo"] for a in alerts] == ["same_bytes.jpg"]
    assert alerts[0]["threshold"] == 0.8 and alerts[0]["threshold_mode"] == "fixed"


@pytest.mark.parametrize("value", ["1.5", "nan", "-0.2", "floor-0.05"])
def test_a_threshold_outside_floor_to_one_is_refused(stills, capsys, value):
    manifest = Manifest.load(ENGINES_DIR)
    floor = load_policy(MatchConfig(), ENGINES_DIR, DEFAULT_EMBEDDER, manifest.spec(DEFAULT_EMBEDDER).sha256).floor
    text = str(round(floor - 0.05, 2)) if value == "floor-0.05" else value
    enroll, photos = stills
    assert main(["replay", "--source", str(photos), "--enroll", str(enroll), "--threshold", text]) == 2
    out, err = capsys.readouterr()
    assert out == "" and f"--threshold {float(text)}: give a cosine from the floor {floor} of {DEFAULT_EMBEDDER}" in err


def test_a_listed_person_whose_photo_edge_cannot_read_is_named_not_dropped(stills, capsys):
    """A person whose only enrolment photo is a .gif or .heic was left off the list without a word."""
    enroll, photos = stills
    (enroll / "Yoko_Ono.gif").write_bytes(b"GIF89a")
    (enroll / "Zinedine_Zidane").mkdir()
    (enroll / "Zinedine_Zidane" / "portrait.heic").write_bytes(b"\0")
    _, err = replay_json(enroll, photos, capsys)
    assert f"not enrolled: {enroll / 'Yoko_Ono.gif'}: not a photo format edge reads" in err, err
    assert f"not enrolled: {enroll / 'Zinedine_Zidane' / 'portrait.heic'}: not a photo format edge reads" in err
