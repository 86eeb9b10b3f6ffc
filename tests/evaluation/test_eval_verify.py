"""`edge eval verify` on a real slice of LFW's pairs: JSON report, accuracy, ROC plot."""

import json
from pathlib import Path

from edge.cli import main


def test_verify_slice_reports_high_accuracy_and_plots(data_dir: Path, eval_cache: Path, tmp_path: Path) -> None:
    out, plot = tmp_path / "verify.json", tmp_path / "roc.png"
    rc = main(["eval", "verify", "--lfw", str(data_dir / "lfw"), "--pairs", str(data_dir / "lfw_meta" / "pairs.txt"),
               "--per-class", "2", "--report", str(out), "--plot", str(plot), "--cache", str(eval_cache),
               "--threads", "2"])
    assert rc == 0
    report = json.loads(out.read_text())
    for key in ("accuracy_mean", "accuracy_std", "threshold", "tar_at_far_1e-2", "tar_at_far_1e-3", "auc", "pairs",
                "failed_images", "fold_thresholds", "embedder_sha256"):
        assert key in report
    assert report["pairs"] == 40 and report["matched_pairs"] == 20
    assert report["accuracy_mean"] > 0.9
    assert report["auc"] > 0.95
    assert 0.0 < report["threshold"] < 0.9
    # 20 impostor pairs cannot measure a 1-in-100 false accept rate
    assert report["tar_at_far_1e-2"] is None and report["tar_at_far_1e-3"] is None
    assert report["failed_images"]["count"] == 0 and "counted_as" in report["failed_images"]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
