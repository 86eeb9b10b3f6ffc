"""`edge eval resolution` end to end on a small real watchlist built from LFW: two face sizes, both embedders' path."""

import json
from pathlib import Path

import numpy as np

from edge.cli import main
from edge.evaluation.resolution import FRAME_H, FRAME_W, Condition, eye_distance, render


def test_render_puts_the_face_at_the_asked_size() -> None:
    photo = np.full((250, 250, 3), 200, np.uint8)
    landmarks = np.array([[100, 110], [150, 110], [125, 140], [105, 165], [145, 165]], np.float32)
    frame, points = render(photo, landmarks, Condition(10.0), np.array([640.0, 360.0]))
    assert frame.shape == (FRAME_H, FRAME_W, 3)
    assert abs(eye_distance(points) - 10.0) < 0.1
    assert np.allclose(points.mean(axis=0), [640, 360], atol=1.0)


def test_resolution_report_on_a_slice(lfw_slice: Path, eval_cache: Path, tmp_path: Path,
                                      listed: tuple[str, ...]) -> None:
    out = tmp_path / "resolution.json"
    assert main(["eval", "resolution", "--lfw", str(lfw_slice), "--levels", "8,32", "--probes-per-level", "4",
                 "--blur", "2", "--blur-level", "32", "--report", str(out), "--cache", str(eval_cache),
                 "--threads", "2"]) == 0
    report = json.loads(out.read_text())
    assert report["gallery_size"] == len(listed)
    assert report["sample"]["mated"] == 4 and report["sample"]["non_mated"] == 2  # the slice has 2 passers-by
    assert set(report["thresholds"]) >= {"fpir_1e-2", "fpir_1e-3", "device_default"}
    assert report["quality_gate"]["min_eye_distance"] > 0
    rows = {(r["eye_distance"], r["blur_sigma"]): r for r in report["levels"]}
    assert sorted(rows) == [(8.0, 0.0), (32.0, 0.0), (32.0, 2.0)]
    for row in rows.values():
        for mode in ("with_gate", "without_gate"):
            assert set(row[mode]) >= {"fpir_1e-2", "fpir_1e-3"}
            assert set(row[mode]["fpir_1e-3"]) == {"fnir", "fpir"}
        # the gate can only take faces away: never fewer misses with it than without
        assert row["passed_gate"] <= row["detected"]
        assert row["with_gate"]["fpir_1e-3"]["fnir"] >= row["without_gate"]["fpir_1e-3"]["fnir"]
    small, large = rows[(8.0, 0.0)], rows[(32.0, 0.0)]
    assert large["detected"] >= small["detected"] and large["detected"] == 1.0
    assert large["without_gate"]["fpir_1e-3"]["fnir"] <= small["without_gate"]["fpir_1e-3"]["fnir"]
    assert abs(large["measured_eye_distance_median"] - 32) < 4  # the detector sees the size the face was scaled to
    assert rows[(32.0, 2.0)]["sharpness_median"] < large["sharpness_median"]  # blur is what the gate measures
