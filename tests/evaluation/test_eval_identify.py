"""`edge eval identify` and `edge eval calibrate` on a small real watchlist built from LFW."""

import json
import shutil
from pathlib import Path

import pytest

from edge.cli import main
from edge.config.embedder import DEFAULT_EMBEDDER
from edge.config.match import MatchConfig
from edge.errors import ConfigError
from edge.evaluation.identify import build_protocol
from edge.models import ENGINES_DIR
from edge.watchlist.calibration import Calibration, ThresholdPolicy, calibration_path


def test_protocol_never_searches_the_enrolled_photo(lfw_slice: Path, listed: tuple[str, ...],
                                                    passers_by: tuple[str, ...]) -> None:
    p = build_protocol(lfw_slice, lfw_slice, min_images=2)
    assert sorted(g.identity for g in p.gallery) == sorted(listed)
    assert all(g.path.name.endswith("_0001.jpg") for g in p.gallery)
    enrolled = {g.path for g in p.gallery}
    assert not enrolled & {m.path for m in p.mated}
    total = sum(len(list((lfw_slice / person).iterdir())) for person in listed)
    assert len(p.mated) == total - len(listed)
    assert sorted(n.identity for n in p.non_mated) == sorted(passers_by)
    cleaned = build_protocol(lfw_slice, lfw_slice, min_images=2, exclude_label_noise=True)
    assert [n.identity for n in cleaned.label_noise] == ["Wang_Nan"]
    assert len(cleaned.non_mated) == len(passers_by) - 1


def test_identify_reports_rank1_and_unmeasurable_fpir(lfw_slice: Path, eval_cache: Path, tmp_path: Path,
                                                      listed: tuple[str, ...], passers_by: tuple[str, ...]) -> None:
    out, plot = tmp_path / "identify.json", tmp_path / "det.png"
    rc = main(["eval", "identify", "--gallery", str(lfw_slice), "--probes", str(lfw_slice), "--min-images", "2",
               "--exclude-known-label-noise", "--report", str(out), "--plot", str(plot), "--cache", str(eval_cache),
               "--flip", "enroll,none", "--threads", "2"])
    assert rc == 0
    report = json.loads(out.read_text())
    for key in ("rank1", "fnir_at_fpir_1e-2", "fnir_at_fpir_1e-3", "threshold_at_fpir_1e-2", "threshold_at_fpir_1e-3",
                "mated", "non_mated", "failed_images", "gallery_size"):
        assert key in report
    assert report["gallery_size"] == len(listed)
    assert report["non_mated"] == len(passers_by) - 1
    assert report["rank1"] >= 0.85
    # two passers-by cannot measure 1 false alarm in 100
    assert report["fnir_at_fpir_1e-2"] is None and report["threshold_at_fpir_1e-2"] is None
    assert report["known_label_noise"]["excluded_from_non_mated"] == ["Wang_Nan_0001.jpg"]
    assert report["other_variants"][0]["flip"] == "no flip"
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_photo_with_no_face_is_counted_not_hidden(lfw_slice: Path, eval_cache: Path, tmp_path: Path,
                                                  passers_by: tuple[str, ...]) -> None:
    probes = tmp_path / "probes"
    shutil.copytree(lfw_slice, probes, symlinks=True)
    (probes / "Nobody_Real").mkdir()
    (probes / "Nobody_Real" / "Nobody_Real_0001.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "identify.json"
    assert main(["eval", "identify", "--gallery", str(lfw_slice), "--probes", str(probes), "--min-images", "2",
                 "--report", str(out), "--cache", str(eval_cache), "--threads", "2"]) == 0
    report = json.loads(out.read_text())
    failed = report["failed_images"]
    assert failed["count"] == 1 and failed["non_mated_left_out"] == 1
    assert list(failed["images"].values()) == ["unreadable"]
    assert report["non_mated"] == len(passers_by)


def test_calibrate_writes_a_table_the_device_reads(lfw_slice: Path, eval_cache: Path, tmp_path: Path) -> None:
    table = tmp_path / f"calibration-{DEFAULT_EMBEDDER}.toml"
    assert main(["eval", "calibrate", "--gallery", str(lfw_slice), "--probes", str(lfw_slice), "--min-images", "2",
                 "--sizes", "2,5", "--fpirs", "0.5,0.34", "--repeats", "3", "--out", str(table),
                 "--at-thresholds=-1,0.999", "--report", str(tmp_path / "cal.json"),
                 "--cache", str(eval_cache), "--threads", "2"]) == 0
    cal = Calibration.load(table)
    assert cal.embedder == DEFAULT_EMBEDDER and len(cal.embedder_sha256) == 64
    with pytest.raises(ConfigError, match="no per-group false-alarm rates"):  # a new table lacks them
        ThresholdPolicy(MatchConfig(), cal, cal.embedder)
    shutil.copy(calibration_path(ENGINES_DIR, DEFAULT_EMBEDDER), table)  # re-measuring keeps the measured groups
    assert main(["eval", "calibrate", "--gallery", str(lfw_slice), "--probes", str(lfw_slice), "--min-images", "2",
                 "--sizes", "2,5", "--fpirs", "0.5,0.34", "--repeats", "3", "--out", str(table),
                 "--cache", str(eval_cache), "--threads", "2"]) == 0
    cal = Calibration.load(table)
    assert cal.demographics == Calibration.load(calibration_path(ENGINES_DIR, DEFAULT_EMBEDDER)).demographics
    policy = ThresholdPolicy(MatchConfig(), cal, cal.embedder)  # the device takes its floor and fixed threshold
    assert policy.floor >= cal.floor and policy.for_gallery(3).value >= cal.floor
    assert sorted((p.gallery_size, p.fpir) for p in cal.points) == [(2, 0.34), (2, 0.5), (5, 0.34), (5, 0.5)]
    by = {(p.gallery_size, p.fpir): p.threshold for p in cal.points}
    assert by[(5, 0.34)] >= by[(5, 0.5)]  # fewer false alarms allowed: a stricter threshold
    assert cal.threshold_at(5, 0.5) == pytest.approx(by[(5, 0.5)])
    assert "edge eval calibrate" in cal.command or cal.command == ""
    fixed = json.loads((tmp_path / "cal.json").read_text())["at_thresholds"]
    assert [(f["gallery_size"], f["threshold"]) for f in fixed] == [(2, -1.0), (2, 0.999), (5, -1.0), (5, 0.999)]
    assert [f["fpir"] for f in fixed] == [1.0, 0.0, 1.0, 0.0]  # every passer-by alarms at -1, none at 0.999
    assert fixed[3]["fnir"] == 1.0 and fixed[2]["fnir"] < 0.2


def test_calibrate_refuses_ambiguous_or_impossible_requests(lfw_slice: Path, eval_cache: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    base = ["eval", "calibrate", "--out", str(tmp_path / "t.toml"), "--cache", str(eval_cache)]
    assert main([*base, "--lfw", str(lfw_slice), "--gallery", str(lfw_slice)]) == 2
    assert "not both" in capsys.readouterr().err
    # the --lfw shorthand: 5 people enrolled, 2 passers-by once Wang_Nan (label noise) is left out
    assert main([*base, "--lfw", str(lfw_slice), "--sizes", "9"]) == 2
    assert "exceed the 5 people" in capsys.readouterr().err
    assert main([*base, "--lfw", str(lfw_slice), "--sizes", "5", "--fpirs", "0.1"]) == 2
    assert "2 non-mated probes cannot measure FPIR 0.1" in capsys.readouterr().err
    assert not (tmp_path / "t.toml").exists()
