"""`edge bench` end to end on a small frame and a few frames of the demo clip: the report's keys."""

import json
from pathlib import Path

import cv2
import pytest

from edge.bench import baseline
from edge.bench import watchlist as watchlist_bench
from edge.cli import main
from edge.config.detector import DetectorConfig
from edge.vision.detect import input_size_for


@pytest.fixture(scope="module")
def short_clip(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo clip's first eight frames (a person in view), re-encoded so the stream workload stays quick."""
    src = cv2.VideoCapture(str(demo_dir / "short_hamilton_clip.mp4"))
    path = tmp_path_factory.mktemp("clip") / "short.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (640, 360))
    try:
        for _ in range(8):
            ok, frame = src.read()
            assert ok, "demo clip ended early"
            writer.write(frame)
    finally:
        src.release()
        writer.release()
    return path


def test_bench_reports_stages_and_fps(data_dir: Path, short_clip: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    rc = main(["bench", "--size", "480x270", "--faces", "2", "--runs", "1", "--stream-runs", "1",
               "--clip", str(short_clip), "--gallery-size", "50", "--data", str(data_dir), "--report", str(out)])
    assert rc == 0
    r = json.loads(out.read_text())
    assert r["threads"] == 1 and r["input_size"] == "480x270" and r["detector_input"] == "x".join(
        map(str, input_size_for(480, 270, DetectorConfig().long_side)))
    assert r["runtime"]["detector"].startswith(("onnxruntime:", "tensorrt:"))
    cold = r["cold_frame"]["edge"]
    for key in ("decode_ms", "detect_ms", "align_ms_per_face", "embed_ms_per_face", "match_ms", "frame_ms", "fps"):
        assert cold[key] > 0, key
    assert cold["faces_detected"] == 2 and cold["faces_embedded"] == 2
    assert r["cold_frame"]["gallery_real_people"] == 2
    s = r["stream"]["edge"]
    # one call per detection round, and one per face refined on the full-resolution frame ([detector] refine)
    assert s["frames"] == 8 and s["fps"] > 0 and s["detector_calls"] >= -(-8 // DetectorConfig().stride)
    assert s["embeddings"] >= 1
    for section in (r["cold_frame"], r["stream"]):
        b = section["face_recognition"]
        if baseline.available():
            assert b["fps"] > 0 and section["speedup"] > 0
        else:
            assert "not installed" in b["skipped"]
    printed = capsys.readouterr().out
    assert "cold frame 480x270" in printed and "frames/s" in printed


@pytest.mark.parametrize("argv", [["--faces", "3", "watchlist"], ["--report", "x.json", "link"]])
def test_vision_options_before_another_benchmark_are_refused(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    """`edge bench --faces 3 watchlist` would otherwise run the watchlist benchmark with its own default."""
    assert main(["bench", *argv]) == 2
    assert f"give `edge bench {argv[-1]}` its own options" in capsys.readouterr().err


def test_watchlist_benchmark_takes_its_own_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two real lists, each installed from MQTT chunks and from a file; every figure says where it was measured
    and the target it is held to."""
    out = tmp_path / "wl.json"
    assert main(["bench", "watchlist", "--gallery-size", "200", "--million", "300", "--repeats", "2", "--storage",
                 "float32", "--report", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert figures["threads"] == 1 and figures["storage"] == "float32" and figures["machine"]
    small, large = figures["lists"]
    assert (small["entries"], large["entries"]) == (200, 300)
    for w in (small, large):
        shown = [w["lone_face_ms"], w["batch8_ms_per_face"], w["loaded_mb"], *w["install_peak_mb"].values()]
        assert all(f["value"] > 0 and f["machine"] == figures["machine"] and f["threads"] == 1 for f in shown)
        assert w["install_peak_mb"]["mqtt"]["target"] == w["install_peak_mb"]["file"]["target"] == 1100
        assert w["loaded_mb"]["target"] is None and w["gallery_array_mb"] == w["entries"] * 128 * 4 / 1e6
    assert small["lone_face_ms"]["target_rule"].startswith("at most 2 ms at 100,000 entries")
    assert small["batch8_ms_per_face"]["target"] == 0.5
    printed = capsys.readouterr().out
    assert "from MQTT chunks" in printed and "300 entries" in printed


def test_each_watchlist_figure_is_held_to_the_target_set_for_its_size() -> None:
    common = {"machine": "here", "threads": 1}
    at_1m = watchlist_bench.figure("batch8_ms_per_face", 9.0, 1_000_000, common)
    assert (at_1m["target"], at_1m["met"]) == (10.0, True)
    assert at_1m["target_rule"] == "at most 10 ms per face at 1,000,000 entries"
    assert watchlist_bench.figure("batch8_ms_per_face", 0.6, 100_000, common)["met"] is False
    between = watchlist_bench.figure("batch8_ms_per_face", 0.6, 500_000, common)
    assert between["target"] == 10.0 and "held to every list up to that size" in between["target_rule"]
    lone = watchlist_bench.figure("lone_face_ms", 40.0, 1_000_000, common)
    assert lone["target"] is None and lone["met"] is None and "no target" in lone["target_rule"]
    peak = watchlist_bench.figure("install_peak_mb", 700.0, 1_000_000, common)
    assert (peak["target"], peak["met"], peak["machine"], peak["threads"]) == (1100.0, True, "here", 1)


def test_bench_streams_runs_copies_of_the_clip_at_once(data_dir: Path, short_clip: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "streams.json"
    assert main(["bench", "streams", "--streams", "2", "--runs", "1", "--clip", str(short_clip), "--gallery-size",
                 "50", "--data", str(data_dir), "--report", str(out)]) == 0
    r = json.loads(out.read_text())
    one, two = r["one_stream"], r["streams"]
    assert [p["frames"] for p in one["per_stream"]] == [8] and [p["frames"] for p in two["per_stream"]] == [8, 8]
    assert two["frames"] == 16 and two["aggregate_fps"] > 0 and one["aggregate_fps"] > 0
    assert r["ratio"] == round(two["aggregate_fps"] / one["aggregate_fps"], 3) and r["target"] == 0.9
    assert r["threads"] == 1 and "cpus" in r["cpu"]
    printed = capsys.readouterr().out
    assert "2 stream(s): 16 frames" in printed and "ratio" in printed
