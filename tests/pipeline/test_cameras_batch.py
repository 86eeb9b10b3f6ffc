"""Several cameras on one set of models: each camera keeps its own tracker, the faces of all of them are embedded
in one call, and each alert comes back with the camera that saw the face. Real models, real photos."""

from pathlib import Path

import cv2
import numpy as np

from edge.capture.base import Frame
from edge.config.track import TrackConfig
from edge.pipeline import Pipeline, process_together
from edge.track.decision import Threshold
from edge.vision.stack import VisionStack
from edge.watchlist.match import Gallery


def test_two_cameras_faces_are_embedded_in_one_call_and_alerts_stay_with_their_camera(demo_dir: Path) -> None:
    stack = VisionStack.open()
    try:
        photos = {name: cv2.imread(str(demo_dir / f"{name}.jpg")) for name in ("obama", "biden")}
        enrolled = []
        for name, image in photos.items():
            det = stack.detector(image)
            enrolled.append((name, name, stack.embedder.embed(stack.embedder.crops(image, det.landmarks[:1]))))
        gallery = Gallery.from_subjects(enrolled)
        threshold = Threshold(0.4, None, "test", "test: a fixed threshold")
        front, rear = (Pipeline(stack, gallery, threshold, track=TrackConfig(reembed_every=1)) for _ in range(2))
        calls: list[int] = []
        embed = stack.embedder.embed

        def counted(crops: np.ndarray, flip: bool = False) -> np.ndarray:  # the real model, its calls counted
            calls.append(len(crops))
            return embed(crops, flip)

        stack.embedder.embed = counted  # type: ignore[method-assign]
        alerts: list[list[str]] = [[], []]
        for index in range(3):
            out = process_together([(front, Frame(photos["obama"], index, index / 25)),
                                    (rear, Frame(photos["biden"], index, index / 25))])
            for camera, found in enumerate(out):
                alerts[camera] += [a.subject_id for a in found]
    finally:
        stack.close()
    assert calls and all(n == 2 for n in calls), calls  # one call per round, one face of each camera in it
    assert alerts == [["obama"], ["biden"]]
    assert front.tracker is not rear.tracker and front.counters.frames == rear.counters.frames == 3
    assert front.counters.embeddings == rear.counters.embeddings == len(calls)
