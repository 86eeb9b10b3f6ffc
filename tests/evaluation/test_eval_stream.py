"""`edge eval stream`: the generated video's truth, the per-crossing scoring, and one real run on a slice of LFW."""

import json
from pathlib import Path

import numpy as np
import pytest

from edge.cli import main
from edge.evaluation.stream_scene import PROFILES, Scene, Walker, _body_boxes
from edge.evaluation.stream_score import (
    CrossingTruth,
    Look,
    Raised,
    Sighting,
    assign,
    curve,
    decision_scores,
    score,
)
from edge.vision.stack import VisionStack
from edge.watchlist.photos import person_photos

FIELDS = ("listed_tracks", "passer_tracks", "track_fnir", "false_alerts_per_1000_passers", "wrong_person_alerts",
          "duplicate_alerts_per_crossing", "tracks_per_crossing", "median_seconds_to_alert", "frames_per_second",
          "settings", "curve")


@pytest.fixture(scope="module")
def walkers(lfw_slice: Path) -> list[Walker]:
    return [Walker(name, photos[-1], None) for name, photos in person_photos(lfw_slice)]


@pytest.fixture(scope="module")
def plain() -> np.ndarray:
    """A flat background: anything the detector finds on it was put there by the scene."""
    return np.full((720, 1280, 3), 90, np.uint8)


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    w, h = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
    inter = max(w, 0) * max(h, 0)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.mark.parametrize("profile", ["street", "bodycam"])
def test_each_face_is_where_the_truth_says(walkers: list[Walker], plain: np.ndarray, profile: str) -> None:
    stack = VisionStack.open()
    sized = PROFILES[profile].model_copy(update={"face_px": (70.0, 160.0)})  # faces the detector at 512 sees
    scene = Scene(walkers[:1], plain, sized, 12.0, seed=3)
    crossing = scene.crossings[0]
    found = 0
    for i in range(crossing.start, min(crossing.start + crossing.frames, scene.frames), max(crossing.frames // 8, 1)):
        image, truth = scene.render(i)
        if not truth or truth[0].visible < 1.0 or min(truth[0].box[:2]) < 0 or truth[0].box[2] > 1280:
            continue  # entering or leaving the frame
        det = stack.detector(image)
        assert len(det) >= 1, f"frame {i}: no face found at {truth[0].box}"
        assert max(_iou(tuple(b), truth[0].box) for b in det.boxes) >= 0.5
        found += 1
    assert found >= 2


def test_sizes_motion_and_camera_stay_in_the_profile(walkers: list[Walker], plain: np.ndarray) -> None:
    for name, profile in PROFILES.items():
        scene = Scene(walkers * 8, plain, profile, 30.0, seed=1)
        lo, hi = profile.face_px
        for c in scene.crossings:
            seconds = c.frames / profile.fps
            assert profile.seconds_per_crossing[0] - 0.1 <= seconds <= profile.seconds_per_crossing[1] + 0.1
            assert c.start >= 0 and (c.start + c.frames <= scene.frames or c.start == 0)  # whole walks
            first, last = c.face_box(c.start, 1280), c.face_box(c.start + c.frames - 1, 1280)
            assert first is not None and last is not None and c.face_box(c.start + c.frames, 1280) is None
            for box in (first, last):
                assert lo - 1e-6 <= box[2] - box[0] <= hi + 1e-6
            assert (first[0] < last[0]) != c.leftward  # it walks across, the way it was sent
            assert first[2] <= 0 or first[0] >= 1280  # from outside the frame ...
            assert last[2] <= 0 or last[0] >= 1280  # ... to outside it
        sway = np.abs(scene.offsets[:, 0]).max()
        if name == "street":
            assert sway == 0.0
        else:  # the body camera pans and shakes, within its margin
            assert profile.pan_px * 0.5 < sway <= profile.pan_px + 3 * profile.shake_px + 1e-6
            assert np.abs(np.diff(scene.offsets[:, 1])).max() > 0.5
        sizes = [c.size for c in scene.crossings]
        assert min(sizes) < 40 and max(sizes) > 100  # small and large faces both walk


def test_nearer_walkers_hide_farther_faces(walkers: list[Walker], plain: np.ndarray) -> None:
    scene = Scene(walkers * 4, plain, PROFILES["street"], 20.0, seed=2)
    hidden = [t for i in range(scene.frames) for t in scene.truth(i) if t.visible < 0.5]
    assert hidden  # crowds occlude
    far = min(scene.crossings, key=lambda c: c.size)
    torso, head = _body_boxes((0, 0, far.size, far.size * 1.2))
    assert torso[1] > head[1] and torso[3] - torso[1] > far.size  # a body below each face


def test_frames_are_made_again_the_same_under_a_seed(walkers: list[Walker], plain: np.ndarray) -> None:
    a = Scene(walkers, plain, PROFILES["bodycam"], 6.0, seed=7)
    b = Scene(walkers, plain, PROFILES["bodycam"], 6.0, seed=7)
    c = Scene(walkers, plain, PROFILES["bodycam"], 6.0, seed=8)
    busy = max(range(a.frames), key=lambda i: len(a.truth(i)))
    (fa, ta), (fb, tb) = a.render(busy), b.render(busy)
    assert np.array_equal(fa, fb) and ta == tb
    assert np.array_equal(a.render(busy)[0], fa)  # rendering again (a frame revisited) gives the same image
    assert not np.array_equal(c.render(busy)[0], fa)


def test_scoring_a_hand_made_run() -> None:
    """Crossing 0: listed Ann, split into tracks 1 and 2, each alerting on her (a fragment, a duplicate).
    Crossing 1: listed Bob, never alerted (a miss). Crossing 2: a passer alerting on Ann (a false alert).
    Crossing 3: listed Cy, alerted as Bob (a wrong-person alert). Track 9 is a ghost on no one."""
    crossings = [CrossingTruth(0, "ann", 0), CrossingTruth(1, "bob", 0), CrossingTruth(2, None, 0),
                 CrossingTruth(3, "cy", 30), CrossingTruth(4, None, 0)]
    truth = {f: [(0, (f, 0, f + 50, 60)), (1, (500, 0, 550, 60)), (2, (800, 0, 850, 60)), (3, (300, 300, 350, 360))]
             for f in range(0, 60, 3)}
    sightings = [Sighting(f, 1 if f < 30 else 2, (f + 2, 0, f + 52, 60)) for f in range(0, 60, 3)]
    sightings += [Sighting(f, 3, (800, 1, 850, 61)) for f in range(0, 60, 3)]
    sightings += [Sighting(f, 4, (301, 300, 351, 360)) for f in range(30, 60, 3)]
    sightings += [Sighting(f, 9, (1000, 600, 1040, 650)) for f in range(0, 9, 3)]
    alerts = [Raised(1, 6, "ann", 0.6), Raised(2, 36, "ann", 0.7), Raised(3, 12, "ann", 0.5),
              Raised(4, 45, "bob", 0.55)]
    r = score(crossings, sightings, truth, alerts, fps=15.0)
    assert r["listed_tracks"] == 3 and r["passer_tracks"] == 2
    assert r["track_fnir"] == round(2 / 3, 4)  # Bob missed, Cy named wrongly: only Ann found
    assert r["wrong_person_alerts"] == 1
    assert r["false_alerts"] == 1 and r["false_alerts_per_1000_passers"] == 500.0
    assert r["tracks_per_crossing"] == round(4 / 3, 4)  # crossing 0 in two tracks; 2 and 3 in one; 1 unseen
    assert r["duplicate_alerts_per_crossing"] == round(1 / 3, 4)  # one extra alert, over three alerting crossings
    assert r["median_seconds_to_alert"] == 0.4  # Ann's first alert at frame 6, 15 fps
    assert r["ghost_tracks"] == 1 and r["tracker_tracks"] == 5

    looks = [Look(1, 3, "ann", 0.62), Look(1, 6, "ann", 0.6), Look(2, 33, "ann", 0.9), Look(2, 36, "ann", 0.7),
             Look(3, 9, "ann", 0.55), Look(3, 12, "ann", 0.5), Look(4, 42, "bob", 0.55), Look(4, 45, "bob", 0.6),
             Look(5, 3, "bob", 0.99)]  # track 5 had one look only: the rule never fires on it
    decisions = decision_scores(looks, min_evidence=2, rule="votes")
    assert decisions[2] == {"ann": 0.7} and 5 not in decisions
    owner, _ = assign(sightings, truth)
    rows = {r["threshold"]: r for r in curve(crossings, owner, decisions, np.array([0.4, 0.52, 0.8]))}
    assert rows[0.4] == {"threshold": 0.4, "track_fnir": round(2 / 3, 4), "false_alerts_per_1000_passers": 500.0,
                         "wrong_person_alerts": 1}
    assert rows[0.52]["false_alerts_per_1000_passers"] == 0.0 and rows[0.52]["wrong_person_alerts"] == 1
    assert rows[0.8]["track_fnir"] == 1.0 and rows[0.8]["wrong_person_alerts"] == 0


def test_the_aggregate_rule_replayed_by_hand() -> None:
    """A track alerts on the aggregate's person at its best aggregate score after a look that named them too, from
    its second look on; the votes rule on the same looks needs two looks at the threshold."""
    looks = [Look(1, 3, "ann", 0.44, "ann", 0.44), Look(1, 6, "ann", 0.43, "ann", 0.52),  # each short, the mean not
             Look(1, 9, "bob", 0.30, "ann", 0.58),  # the mean still names Ann, this look does not: no alert here
             Look(2, 3, "bob", 0.9, "bob", 0.9),  # one look only
             Look(3, 3, "cy", 0.5, "cy", 0.5), Look(3, 6, "bob", 0.35, "cy", 0.41)]
    assert decision_scores(looks, min_evidence=2, rule="aggregate") == {1: {"ann": 0.52}}
    assert decision_scores(looks, min_evidence=2, rule="votes") == {1: {"ann": 0.43}}
    assert decision_scores(looks, min_evidence=1, rule="aggregate") == {1: {"ann": 0.52}, 2: {"bob": 0.9},
                                                                         3: {"cy": 0.5}}


def test_stream_end_to_end_on_a_slice(lfw_slice: Path, tmp_path: Path, listed: tuple[str, ...]) -> None:
    out, plot = tmp_path / "stream.json", tmp_path / "stream.png"
    assert main(["eval", "stream", "--people", str(lfw_slice), "--listed", "5", "--seconds", "8",
                 "--profile", "bodycam", "--seed", "1", "--report", str(out), "--plot", str(plot),
                 "--threads", "2"]) == 0
    r = json.loads(out.read_text())
    assert all(k in r for k in FIELDS)
    s = r["settings"]
    assert s["profile"]["name"] == "bodycam" and s["stride"] == 3 and s["detector_long_side"] == 512
    assert s["enrolled"] + len(s["not_enrolled"]) == len(listed) and s["threshold_mode"] == "constant_fpir"
    assert r["listed_tracks"] >= 1 and r["passer_tracks"] >= 1
    assert r["frames"] == 200 and r["frames_per_second"] > 0
    assert 0.0 <= r["track_fnir"] <= 1.0 and r["false_alerts_per_1000_passers"] >= 0
    assert r["crossings_seen"] >= 1 and r["tracks_per_crossing"] >= 1.0
    assert r["counters"]["frames"] == 200 and r["counters"]["detections"] > 0
    fnir = [row["track_fnir"] for row in r["curve"]]
    assert fnir == sorted(fnir)  # a higher threshold never finds more people
    assert plot.stat().st_size > 1000
