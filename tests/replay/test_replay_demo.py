"""The whole pipeline on the demo clip: who it alerts on, who it does not, and what it keeps."""

import io
import json
import logging
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from edge.cli import main
from edge.config.embedder import DEFAULT_EMBEDDER
from edge.config.match import MatchConfig
from edge.models import ENGINES_DIR
from edge.pipeline import Pipeline
from edge.replay.run import replay
from edge.vision.enroll import Enroller
from edge.vision.stack import VisionStack
from edge.watchlist.calibration import Calibration, ThresholdPolicy, calibration_path
from edge.watchlist.match import Gallery
from edge.watchlist.photos import gallery_from_photos


@pytest.fixture(scope="module")
def stack() -> VisionStack:
    return VisionStack.open()


@pytest.fixture
def clip(demo_dir: Path) -> str:
    return str(demo_dir / "short_hamilton_clip.mp4")


DEFAULT_TABLE = Calibration.load(calibration_path(ENGINES_DIR, DEFAULT_EMBEDDER))

def photo_folder(tmp_path: Path, photos: dict[str, Path]) -> Path:
    folder = tmp_path / "watchlist"
    folder.mkdir()
    for name, src in photos.items():
        shutil.copy(src, folder / f"{name}{src.suffix}")
    return folder


def test_alerts_on_lin_manuel_miranda_only(tmp_path, demo_dir, clip, capsys):
    folder = photo_folder(tmp_path, {"lin-manuel-miranda": demo_dir / "lin-manuel-miranda.png",
                                     "alex-lacamoire": demo_dir / "alex-lacamoire.png"})
    assert main(["replay", "--source", clip, "--enroll", str(folder), "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines, "Lin-Manuel Miranda is in the clip and must raise an alert"
    assert {a["person"] for a in lines} == {"Lin Manuel Miranda"}
    # one decision per track, never per frame
    assert len({a["track"] for a in lines}) == len(lines)
    floor = ThresholdPolicy(MatchConfig(), DEFAULT_TABLE).floor
    for a in lines:
        # a two-person list under the default constant-FPIR policy sits on the floor, a rate the table bounds
        assert a["threshold_mode"] == "constant_fpir" and a["threshold"] == floor
        assert a["threshold_policy"].startswith("floor: ")
        assert a["fpir"] == MatchConfig().target_fpir and a["fpir_is_upper_bound"] is True
        assert a["score"] >= a["threshold"]
        assert 0 < a["quality"] <= 1 and a["margin"] > 0
        assert a["status"].startswith("candidate")


def test_people_not_in_the_clip_raise_nothing(tmp_path, demo_dir, clip, capsys):
    folder = photo_folder(tmp_path, {
        "biden": demo_dir / "biden.jpg",
        "kit-harington": demo_dir / "knn_examples/train/kit_harington/john1.jpeg",
        "rose-leslie": demo_dir / "knn_examples/train/rose_leslie/img1.jpg",
    })
    assert main(["replay", "--source", clip, "--enroll", str(folder)]) == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert "alerts 0" in err


def test_nothing_about_unmatched_faces_leaves_the_pipeline(stack, demo_dir, clip, tmp_path, monkeypatch, caplog):
    """Empty list and a list of absent people: no output, no log line, no file written, no socket, nothing kept."""
    caplog.set_level(logging.DEBUG)
    gallery, _ = gallery_from_photos(demo_dir / "knn_examples" / "train" / "kit_harington", Enroller(stack),
                                     progress=False)
    writes: list[str] = []
    active = [True]  # an audit hook cannot be removed; it goes quiet after this test

    def hook(event: str, args: tuple) -> None:
        if not active[0]:
            return
        if event == "open" and isinstance(args[0], str | bytes | Path) and args[1] and set(str(args[1])) & set("wax+"):
            writes.append(str(args[0]))
        if event in ("socket.connect", "socket.sendto", "socket.bind"):
            writes.append(f"{event} {args[1:]}")

    monkeypatch.chdir(tmp_path)
    sys.addaudithook(hook)
    for g in (Gallery.empty(), gallery):
        pipeline = Pipeline(stack, g, stack_threshold())
        out = io.StringIO()
        summary = replay(pipeline, clip, out)
        assert out.getvalue() == "" and summary.alerts == []
        c = summary.counters
        assert c.frames == 275 and c.faces_seen > 10
        assert c.faces_discarded == c.faces_seen, "every face that matched no one is counted as discarded"
        assert pipeline.tracker.tracks == {}
        if g.size == 0:
            assert c.embeddings == 0, "with an empty list no face is even embedded"
        else:
            assert c.embeddings > 0
    active[0] = False
    assert [r.getMessage() for r in caplog.records if r.name.startswith(("edge.pipeline", "edge.track",
                                                                          "edge.vision", "edge.watchlist.match"))] == []
    assert [w for w in writes if not w.startswith(sys.prefix)] == []
    assert list(tmp_path.iterdir()) == []


def stack_threshold():
    from edge.track.decision import Threshold

    return Threshold(DEFAULT_TABLE.fixed_threshold, None, "fixed", "fixed (calibrated default)")


def test_track_state_dies_with_the_track(stack, demo_dir, clip):
    gallery, _ = gallery_from_photos(demo_dir / "knn_examples" / "train" / "biden", Enroller(stack), progress=False)
    pipeline = Pipeline(stack, gallery, stack_threshold())
    from edge.capture.open import open_source

    source = open_source(clip)
    evidence_seen = 0
    while (frame := source.read()) is not None and frame.index < 120:
        pipeline.process(frame)
        evidence_seen = max(evidence_seen, sum(len(t.evidence) for t in pipeline.tracker.tracks.values()))
    source.close()
    assert evidence_seen > 0
    pipeline.finish()
    assert pipeline.tracker.tracks == {}
    assert np.isclose(pipeline.counters.faces_discarded, pipeline.counters.faces_seen)


def test_a_watchlist_update_does_not_alert_again_on_the_same_person(stack, demo_dir, clip):
    """HQ pushes a new version mid-scene: the live track already alerted on Lin-Manuel Miranda stays quiet."""
    enroller = Enroller(stack)
    lin = enroller.enroll(demo_dir / "lin-manuel-miranda.png").embedding
    biden = enroller.enroll(demo_dir / "biden.jpg").embedding
    v1 = Gallery.from_subjects([("lmm", "Lin-Manuel Miranda", lin[None])])
    v2 = Gallery.from_subjects([("biden", "Joe Biden", biden[None]), ("lmm", "Lin-Manuel Miranda", lin[None])])
    threshold = stack_threshold()
    pipeline = Pipeline(stack, v1, threshold)
    from edge.capture.open import open_source

    source = open_source(clip)
    alerts, swapped_at = [], None
    while (frame := source.read()) is not None:
        new = pipeline.process(frame)
        alerts += [(a.track_id, a.subject_id, frame.index) for a in new]
        if new and swapped_at is None:
            pipeline.swap_watchlist(v2, threshold)  # subject indices change: lmm is now index 1
            swapped_at = frame.index
    source.close()
    pipeline.finish()
    assert swapped_at is not None, "the clip must alert on Lin-Manuel Miranda before the update"
    tracks = [t for t, _, _ in alerts]
    assert len(tracks) == len(set(tracks)), f"a track alerted twice: {alerts}"
    assert all(subject == "lmm" for _, subject, _ in alerts)
