"""Thresholds: the floor is enforced where users set them; the constant-FPIR mode follows the list's size."""

from pathlib import Path

import pytest

from edge.cli import main
from edge.config import load_config
from edge.config.match import THRESHOLD_FLOOR, MatchConfig
from edge.errors import ConfigError
from edge.models import ENGINES_DIR, Manifest
from edge.watchlist.calibration import Calibration, CalibrationPoint, ThresholdPolicy, calibration_path, load_policy


def test_replay_refuses_a_threshold_below_the_floor(tmp_path, capsys):
    code = main(["replay", "--source", str(tmp_path), "--enroll", str(tmp_path), "--threshold",
                 str(THRESHOLD_FLOOR - 0.05)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"below match.floor {THRESHOLD_FLOOR}" in err and str(THRESHOLD_FLOOR - 0.05) in err


def test_device_config_refuses_a_threshold_below_the_floor(tmp_path):
    path = tmp_path / "edge.toml"
    path.write_text(f'[device]\nid = "cam-1"\n[match]\nthreshold = {THRESHOLD_FLOOR - 0.1:.2f}\n')
    with pytest.raises(ConfigError, match=r"match\.threshold .* is below match\.floor"):
        load_config(path)


def table() -> Calibration:
    points = []
    for size, base in ((100, 0.55), (1000, 0.60)):
        for fpir, offset in ((1e-2, 0.0), (1e-3, 0.05)):
            points.append(CalibrationPoint(gallery_size=size, fpir=fpir, threshold=base + offset))
    return Calibration(embedder="m", embedder_sha256="0" * 64, dataset="test", command="test", points=points)


def test_constant_fpir_threshold_grows_with_the_list():
    policy = ThresholdPolicy(MatchConfig(mode="constant_fpir", target_fpir=1e-3), table())
    small, large, huge = (policy.for_gallery(n) for n in (100, 1000, 10000))
    assert small.value == pytest.approx(0.60) and large.value == pytest.approx(0.65)
    assert huge.value == pytest.approx(0.70)  # extrapolated at the measured slope
    assert small.fpir == pytest.approx(1e-3) and small.mode == "constant_fpir"


def test_fixed_threshold_reports_the_fpir_it_stands_for():
    policy = ThresholdPolicy(MatchConfig(mode="fixed", threshold=0.60), table())
    assert policy.for_gallery(100).fpir == pytest.approx(1e-3)
    assert policy.for_gallery(1000).fpir == pytest.approx(1e-2)


def test_constant_fpir_needs_a_table():
    with pytest.raises(ConfigError, match="calibration table"):
        ThresholdPolicy(MatchConfig(mode="constant_fpir"), None)


def test_shipped_calibration_matches_the_shipped_embedder():
    manifest = Manifest.load(ENGINES_DIR)
    spec = manifest.spec("mobilefacenet_192")
    path: Path = calibration_path(ENGINES_DIR, spec.name)
    if not path.is_file():
        pytest.fail(f"{path} missing: run `edge eval calibrate` and commit it")
    policy = load_policy(MatchConfig(mode="constant_fpir"), ENGINES_DIR, spec.name, spec.sha256)
    thresholds = [policy.for_gallery(n).value for n in (100, 500, 1680)]
    assert thresholds == sorted(thresholds), "a longer list needs a higher threshold for the same FPIR"
    assert all(THRESHOLD_FLOOR <= t < 1 for t in thresholds)
    tiny = policy.for_gallery(2)
    assert tiny.value == THRESHOLD_FLOOR and tiny.fpir_bound, "a tiny list sits on the floor; its rate is a bound"
