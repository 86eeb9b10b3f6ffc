"""The tracker keeps one track per face when faces move further than their box between detection rounds (a
walker at stride 3, a panning or shaking body camera), and does not swap two people who cross."""

import numpy as np

from edge.track.tracker import Tracker
from edge.vision.detect import Detections

W = 40.0  # face width in pixels


def faces(*centres: tuple[float, float], width: float = W) -> Detections:
    boxes = np.array([[x - width / 2, y - width / 2, x + width / 2, y + width / 2] for x, y in centres], np.float32)
    return Detections(boxes.reshape(-1, 4), np.full(len(centres), 0.9, np.float32), np.zeros((len(centres), 5, 2)))


def ids(tracker: Tracker, det: Detections, frame: int) -> list[int]:
    seen, _ = tracker.update(det, frame)
    by_det = {d: t.id for t, d in seen}
    return [by_det[d] for d in range(len(det))]


def test_a_walker_moving_more_than_a_face_width_per_round_stays_one_track() -> None:
    """0.9 face widths a round, speeding up to 1.6: no overlap with the last box; IoU alone made a new track
    every round."""
    tracker, x, got = Tracker(), 100.0, set()
    for r in range(12):
        x += W * min(0.9 + 0.1 * r, 1.6)
        got |= set(ids(tracker, faces((x, 300)), 3 * r))
    assert got == {1}


def test_a_fast_pan_moves_every_face_and_each_keeps_its_track() -> None:
    """Five faces, the camera panning 0.4 face widths a round and speeding up to 1.5: the velocity learnt and the
    shift shared by all faces keep every track."""
    tracker = Tracker()
    home = [(200.0 + 150 * i, 300.0 + 40 * (i % 2)) for i in range(5)]
    offset, first = 0.0, None
    for r in range(15):
        offset += W * min(0.4 + 0.1 * r, 1.5)
        got = ids(tracker, faces(*[(x - offset, y) for x, y in home]), r)
        first = first or got
        assert got == first, f"round {r}: {got} != {first}"


def test_a_shaking_camera_keeps_every_track() -> None:
    """The whole image jumps up to 0.7 face widths each round, in any direction (up to twice that between two
    rounds), while the faces walk slowly."""
    rng = np.random.default_rng(4)
    tracker = Tracker()
    home = [(200.0 + 150 * i, 300.0) for i in range(4)]
    first = None
    for r in range(20):
        jx, jy = rng.uniform(-0.7, 0.7, 2) * W
        got = ids(tracker, faces(*[(x + 2 * r + jx, y + jy) for x, y in home]), r)
        first = first or got
        assert got == first, f"round {r}: {got} != {first}"


def test_two_people_crossing_keep_their_own_tracks() -> None:
    """Two walkers pass each other (one slightly nearer, so larger): each track follows its own walker."""
    tracker = Tracker()
    a0 = b0 = None
    for r in range(16):
        a = (100 + 0.6 * W * r, 300.0)
        b = (100 + 0.6 * W * 15 - 0.6 * W * r, 310.0)
        det = Detections(np.concatenate([faces(a).boxes, faces(b, width=W * 1.3).boxes]),
                         np.full(2, 0.9, np.float32), np.zeros((2, 5, 2)))
        ida, idb = ids(tracker, det, r)
        a0, b0 = a0 or ida, b0 or idb
        if abs(a[0] - b[0]) > W:  # apart (while they overlap, one face hides the other)
            assert (ida, idb) == (a0, b0), f"round {r}"


def test_a_new_face_far_from_any_track_starts_its_own() -> None:
    tracker = Tracker()
    assert ids(tracker, faces((100, 100)), 0) == [1]
    assert ids(tracker, faces((100, 100), (400, 100)), 1) == [1, 2]
    assert ids(tracker, faces((100 + 3 * W, 100)), 2)[0] != 1  # three widths in one round: someone else
