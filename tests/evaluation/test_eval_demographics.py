"""`edge eval demographics` on a small real slice of the labelled faces: counts per group, intervals, the
policy it implies, and the per-group curves written into a calibration table the device then judges."""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge.cli import main
from edge.config.embedder import DEFAULT_EMBEDDER
from edge.errors import EdgeError
from edge.evaluation.calibrate import with_demographics
from edge.models import ENGINES_DIR
from edge.watchlist.calibration import Calibration, calibration_path

PER_RACE = 6  # UTKFace passers-by per race group
LONDON_PEOPLE = 10


def _write(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture(scope="module")
def slice_dir(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """London: 10 people (neutral + smiling). UTKFace: 6 adults per race, plus one planted passer-by: a listed
    London person's smiling photo labelled Black, whose search is a true match, so it must count as a Black
    group's false alarm at any usable threshold."""
    src, root = data_dir / "demographics", tmp_path_factory.mktemp("demographics")
    with (src / "london" / "labels.csv").open(newline="") as f:
        london = list(csv.DictReader(f))
    people = sorted({r["identity"] for r in london})[:LONDON_PEOPLE]
    rows = [r for r in london if r["identity"] in people and r["expression"] in ("neutral", "smiling")]
    for r in rows:
        (root / "london" / "images" / r["identity"]).mkdir(parents=True, exist_ok=True)
        (root / "london" / "images" / r["file"]).symlink_to(src / "london" / "images" / r["file"])
    _write(root / "london" / "labels.csv", rows)
    with (src / "utkface" / "labels.csv").open(newline="") as f:
        utk = list(csv.DictReader(f))
    chosen = [r for race in ("White", "Black", "Asian", "Indian", "Others")
              for r in [u for u in utk if u["race"] == race][:PER_RACE]]
    (root / "utkface" / "images").mkdir(parents=True)
    for r in chosen:
        (root / "utkface" / "images" / r["file"]).symlink_to(src / "utkface" / "images" / r["file"])
    planted = next(r for r in rows if r["expression"] == "smiling")
    (root / "utkface" / "images" / "planted.jpg").symlink_to(src / "london" / "images" / planted["file"])
    chosen.append({"file": "planted.jpg", "age": "30", "gender": planted["gender"], "race": "Black"})
    _write(root / "utkface" / "labels.csv", chosen)
    (root / "lfw_race_labels.csv").symlink_to(src / "lfw_race_labels.csv")
    return root


@pytest.fixture(scope="module")
def report(slice_dir: Path, eval_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("demo-report")
    assert main(["eval", "demographics", "--demographics", str(slice_dir), "--lfw", "none",
                 "--report", str(out / "r.json"), "--plot", str(out / "r.png"), "--cache", str(eval_cache),
                 "--threads", "2"]) == 0
    assert (out / "r.png").stat().st_size > 10_000
    return json.loads((out / "r.json").read_text())


def rate(rows: list[dict], group: str, data: str | None = None) -> dict:
    return next(r for r in rows if r["group"] == group and (data is None or r["data"] == data))


def test_counts_per_group_with_intervals(report: dict) -> None:
    assert report["watchlist_size"] == LONDON_PEOPLE and report["embedder"] == DEFAULT_EMBEDDER
    floor = next(t for t in report["at_thresholds"] if t["name"] == "floor (LFW)")
    fa = floor["false_alarms"]
    everyone = rate(fa, "all")
    races = [r for r in fa if r["attribute"] == "race"]
    assert sum(r["trials"] for r in races) == everyone["trials"] == report["passers_by"]["searched"]
    assert rate(fa, "Black")["trials"] == PER_RACE + 1  # the planted one counts with its group
    for r in fa + floor["misses"]:
        low, high = r["ci95"]
        assert low <= r["rate"] <= high and r["rate"] == pytest.approx(r["errors"] / r["trials"], abs=1e-5)
        assert high > 0, "no count, however clean, shows a rate of exactly zero"
    # the planted passer-by is a true match: a false alarm of the Black group at every threshold reported
    for row in report["at_thresholds"]:
        assert rate(row["false_alarms"], "Black")["errors"] >= 1, row["name"]
        assert row["worst_to_best"]["false_alarms"]["race"]["worst"] == "Black"
    misses = rate(floor["misses"], "all", "london")
    assert misses["trials"] == LONDON_PEOPLE and misses["errors"] <= 1  # smiling vs neutral: nearly all found


def test_a_measurement_too_small_to_bound_every_group_is_refused_by_the_policy(report: dict) -> None:
    """A list of ten people cannot stand for the ceiling's 100: the report says the device would refuse."""
    assert "measured against a list of 10 people" in report["policy"]["refused"]
    assert not any(t["policy"].startswith("after") for t in report["at_thresholds"])


def test_write_calibration_never_leaves_a_table_the_device_would_refuse(slice_dir: Path, lfw_slice: Path,
                                                                        eval_cache: Path, tmp_path: Path) -> None:
    """Ten listed people cannot stand for the ceiling's list of 100: the shipped table stays as it was, and the
    command says why (exit 2). A measurement the device accepts is written in place of the old section, the LFW points
    and their notes kept."""
    engines = tmp_path / "engines"
    engines.mkdir()
    for f in ENGINES_DIR.iterdir():
        if f.suffix == ".onnx":
            (engines / f.name).symlink_to(f)
        elif f.is_file():
            shutil.copy(f, engines / f.name)
    table = calibration_path(engines, DEFAULT_EMBEDDER)
    before = table.read_bytes()
    env = {**os.environ, "EDGE_ENGINES_DIR": str(engines)}
    run = subprocess.run([sys.executable, "-m", "edge", "eval", "demographics", "--demographics", str(slice_dir),
                          "--lfw", str(lfw_slice), "--report", str(tmp_path / "r.json"), "--cache", str(eval_cache),
                          "--write-calibration"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 2, run.stderr
    assert "not changed: the device would refuse" in run.stderr and "list of 10 people" in run.stdout
    assert table.read_bytes() == before
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["policy"]["refused"], "the report is still written"
    assert report["mated"]["lfw"]["searched"] == 1, "Adam Scott's second photo: the one labelled LFW person listed"

    shipped = Calibration.load(table)
    text = with_demographics(table, shipped.demographics, shipped.embedder_sha256)
    assert text == before.decode(), "rewriting a section with the same curves changes nothing"
    with pytest.raises(EdgeError, match="another model file"):
        with_demographics(table, shipped.demographics, "f" * 64)


def test_data_that_cannot_speak_for_every_group_is_refused(slice_dir: Path, eval_cache: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    def run(data: Path) -> str:
        capsys.readouterr()
        assert main(["eval", "demographics", "--demographics", str(data), "--lfw", "none",
                     "--report", str(tmp_path / "r.json"), "--cache", str(eval_cache)]) == 2
        return capsys.readouterr().err

    broken = tmp_path / "data"
    shutil.copytree(slice_dir, broken, symlinks=True)
    labels = broken / "utkface" / "labels.csv"
    rows = list(csv.DictReader(labels.open(newline="")))
    _write(labels, [r for r in rows if r["race"] != "Indian"])
    err = run(broken)
    assert "cannot measure every group the policy protects" in err and "Indian" in err
    _write(labels, [{k: v for k, v in r.items() if k != "race"} for r in rows])
    assert "missing column(s) race" in run(broken)
    _write(labels, [*rows, {**rows[0], "file": "gone.jpg"}])
    assert "lists gone.jpg, which is not in" in run(broken)
