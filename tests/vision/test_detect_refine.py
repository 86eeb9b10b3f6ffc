"""Full-resolution refinement: a small face in a large frame, searched reduced (1280x720 at 512x288), is looked at
again on a crop of the full frame. Real model, real LFW faces pasted at a known size and place."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.config.detector import DetectorConfig
from edge.evaluation.resolution import Condition, find, render
from edge.vision.detect import Detections, Detector
from edge.vision.stack import VisionStack

PEOPLE = ("Aaron_Peirsol", "Abdullah_Gul", "Adrien_Brody", "Al_Gore", "Alejandro_Toledo", "Ali_Naimi")


@pytest.fixture(scope="module")
def coarse(stack: VisionStack) -> Detector:
    """The same model and input size, without refinement: what the device did before."""
    d = stack.detector
    return Detector(d.runtime, d.spec, d.long_side, d.min_score, d.nms_iou, d.max_faces, refine=False)


def small_faces(stack: VisionStack, data_dir: Path, eye: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """(1280x720 frame, the face's five points in it): LFW photos reduced so the eyes are `eye` px apart; the
    points are the detector's on the full-size photo, scaled with it."""
    rng = np.random.default_rng(0)
    out = []
    for name in PEOPLE:
        photo = cv2.imread(str(data_dir / "lfw" / name / f"{name}_0001.jpg"))
        full = stack.detector(photo)
        truth = full.landmarks[int(np.argmax(full.scores))]
        out.append(render(photo, truth, Condition(eye), rng.uniform([300, 200], [980, 520])))
    return out


def test_a_small_face_gets_landmarks_closer_to_the_truth_and_a_confident_score(stack, coarse, data_dir):
    eye = 20.0
    before, after, scores = [], [], []
    for frame, truth in small_faces(stack, data_dir, eye):
        det = coarse(frame)
        j = find(det, truth, eye)
        if j is None:
            continue
        refined = stack.detector.refine(frame, det.take(np.array([j])))
        before.append(np.linalg.norm(det.landmarks[j] - truth, axis=1).mean() / eye)
        after.append(np.linalg.norm(refined.landmarks[0] - truth, axis=1).mean() / eye)
        scores.append(float(refined.scores[0]))
    assert len(before) >= 3, "the reduced search should find most of these 20 px faces"
    assert np.mean(after) < 0.7 * np.mean(before), (before, after)
    assert min(scores) >= 0.8  # through the quality gate's min_score, which the reduced search often is not


def test_faces_the_reduced_search_barely_sees_are_found(stack, coarse, data_dir):
    eye = 17.0
    frames = small_faces(stack, data_dir, eye)
    without = sum(find(coarse(frame), truth, eye) is not None for frame, truth in frames)
    found = [stack.detector(frame) for frame, _ in frames]
    hits = [find(det, truth, eye) for det, (_, truth) in zip(found, frames, strict=True)]
    assert sum(j is not None for j in hits) >= without + 2, (without, hits)
    assert all(det.scores[j] >= stack.detector.min_score for det, j in zip(found, hits, strict=True) if j is not None)
    assert sum(len(det) for det in found) == sum(j is not None for j in hits)  # nothing else on a grey frame


def test_a_frame_searched_at_its_own_size_or_larger_is_left_as_it_is(stack, coarse, data_dir):
    photo = cv2.imread(str(data_dir / "lfw" / PEOPLE[0] / f"{PEOPLE[0]}_0001.jpg"))  # 250x250, searched at 512
    det = stack.detector(photo)
    assert len(det) and stack.detector.refine(photo, det) is det
    plain = coarse(photo)
    assert np.array_equal(det.landmarks, plain.landmarks) and np.array_equal(det.scores, plain.scores)
    frame, _ = small_faces(stack, data_dir, 20.0)[0]
    full = VisionStack.open(DetectorConfig(long_side="full"))
    try:
        found = full.detector(frame)
        assert len(found) and full.detector.refine(frame, found) is found
    finally:
        full.close()


def test_a_crop_that_finds_nothing_keeps_the_coarse_face(stack):
    grey = np.full((720, 1280, 3), 128, np.uint8)
    box = np.array([[600, 300, 640, 350]], np.float32)
    coarse_face = Detections(box, np.array([0.7], np.float32), np.full((1, 5, 2), 620, np.float32))
    kept = stack.detector.refine(grey, coarse_face)
    assert np.array_equal(kept.boxes, box) and kept.scores[0] == np.float32(0.7)
