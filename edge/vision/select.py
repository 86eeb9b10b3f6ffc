"""Which detected face a still photo is about."""

from typing import Literal

import numpy as np

from edge.vision.detect import Detections


def select_face(det: Detections, shape: tuple[int, ...], policy: Literal["single", "central"],
                confident: float = 0.8, dominance: float = 0.5) -> tuple[int | None, str | None]:
    """Index of the photo's subject, or None with a reason ('no_face', 'several_faces').

    Only confident detections are candidates (a low-score box is often a torso or a dog). `single`
    (enrollment) refuses a photo where a second confident face is at least `dominance` times the size of
    the largest, since the photo could then be about either person. `central` (evaluation on centred
    crops like LFW) takes the confident face nearest the centre, weighted by size.
    """
    if len(det) == 0:
        return None, "no_face"
    cand = np.flatnonzero(det.scores >= confident)
    if cand.size == 0:
        if policy == "single":
            return None, "no_face"
        cand = np.array([int(np.argmax(det.scores))])
    widths = det.boxes[cand, 2] - det.boxes[cand, 0]
    if policy == "single":
        order = np.argsort(-widths)
        if len(order) > 1 and widths[order[1]] >= dominance * widths[order[0]]:
            return None, "several_faces"
        return int(cand[order[0]]), None
    h, w = shape[:2]
    centres = (det.boxes[cand, :2] + det.boxes[cand, 2:]) / 2
    dist = np.linalg.norm((centres - [w / 2, h / 2]) / [w, h], axis=1)
    return int(cand[np.argmin(dist - 0.5 * widths / w)]), None
