"""The pipeline aligns, gates and keeps on the track the refined face (edge.vision.detect.Detector.refine) of each
face it is about to embed, not the reduced search's coarse one. Real models, a real LFW face pasted small."""

from pathlib import Path

import cv2
import numpy as np

from edge.capture.base import Frame
from edge.evaluation.resolution import Condition, find, render
from edge.pipeline import Pipeline
from edge.track.decision import Threshold
from edge.vision.stack import VisionStack
from edge.watchlist.match import Gallery


def test_the_face_about_to_be_embedded_is_refined(data_dir: Path) -> None:
    stack = VisionStack.open()
    try:
        photo = cv2.imread(str(data_dir / "lfw" / "Al_Gore" / "Al_Gore_0001.jpg"))
        full = stack.detector(photo)
        landmarks = full.landmarks[int(np.argmax(full.scores))]
        gallery = Gallery.from_subjects([("gore", "gore", stack.embedder.embed(stack.embedder.crops(photo,
                                                                                                  landmarks[None])))])
        frame, truth = render(photo, landmarks, Condition(20.0), np.array([700.0, 400.0]))
        coarse = stack.detector(frame)
        j = find(coarse, truth, 20.0)
        assert j is not None and coarse.scores[j] >= stack.detector.min_score  # found by the reduced search alone
        refined = stack.detector.refine(frame, coarse.take(np.array([j])))
        threshold = Threshold(0.4, None, "test", "test: a fixed threshold")

        def look(refine: bool) -> tuple[np.ndarray, float]:
            stack.detector.refines = refine
            todo = Pipeline(stack, gallery, threshold)._look(Frame(frame, 0, 0.0))
            assert len(todo) == 1
            track, _, q = todo[0]
            assert q.detection == track.score
            return track.landmarks, q.detection

        plain_landmarks, plain_score = look(False)
        fine_landmarks, fine_score = look(True)
    finally:
        stack.close()
    assert np.array_equal(plain_landmarks, coarse.landmarks[j]) and plain_score == coarse.scores[j]
    assert np.array_equal(fine_landmarks, refined.landmarks[0]) and fine_score == refined.scores[0]
    error = [np.linalg.norm(lm - truth, axis=1).mean() for lm in (plain_landmarks, fine_landmarks)]
    assert error[1] < 0.7 * error[0], error
