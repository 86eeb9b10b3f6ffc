"""The detector on real annotated photos: recall on dlib's boxes, counts on group photos, no dog faces."""

import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.track.tracker import iou_matrix
from edge.vision.detect import input_size_for, nms, priors


def annotated(path: Path) -> list[tuple[str, np.ndarray]]:
    out = []
    for image in ET.parse(path).getroot().iter("image"):
        boxes = [[int(b.get("left")), int(b.get("top")), int(b.get("left")) + int(b.get("width")),
                  int(b.get("top")) + int(b.get("height"))] for b in image.iter("box")]
        out.append((image.get("file"), np.array(boxes, np.float32)))
    return out


def test_finds_annotated_faces(stack, data_dir):
    found = total = false = 0
    for name in ("training.xml", "testing.xml"):
        for file, truth in annotated(data_dir / "dlib_faces" / name):
            det = stack.detector(cv2.imread(str(data_dir / "dlib_faces" / file)))
            overlap = iou_matrix(truth, det.boxes)
            # dlib's boxes are tighter and squarer than RetinaFace's: a loose overlap is a hit.
            found += int((overlap.max(axis=1) >= 0.3).sum()) if len(det) else 0
            total += len(truth)
            false += int((overlap.max(axis=0) < 0.1).sum()) if len(truth) else len(det)
    assert total == 43
    assert found / total >= 0.95, f"found {found} of {total} annotated faces"
    assert false <= 2


@pytest.mark.parametrize(("photo", "faces"), [("bbt1.jpg", 4), ("bbt2.jpg", None), ("bbt5.jpg", None)])
def test_group_photos(stack, data_dir, photo, faces):
    det = stack.detector(cv2.imread(str(data_dir / "bbt" / photo)))
    assert len(det) >= 2
    if faces is not None:
        assert len(det) == faces
    assert np.all(det.scores >= stack.detector.min_score)
    # landmarks lie inside their boxes
    inside = (det.landmarks[..., 0] >= det.boxes[:, None, 0] - 5) & (det.landmarks[..., 0] <= det.boxes[:, None, 2] + 5)
    assert inside.all()


def test_no_confident_face_on_dogs(stack, data_dir):
    det = stack.detector(cv2.imread(str(data_dir / "dlib_faces" / "dogs.jpg")))
    assert not np.any(det.scores >= 0.8)


def test_input_size_follows_aspect():
    assert input_size_for(640, 360, 640) == (640, 384)
    assert input_size_for(1280, 720, 640) == (640, 384)
    assert input_size_for(250, 250, 640) == (640, 640)
    assert input_size_for(1280, 720, None) == (1280, 736)


def test_priors_match_reference_count():
    assert priors(640, 640).shape == (16800, 4)


def test_nms_keeps_best_of_overlapping():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], np.float32)
    keep = nms(boxes, np.array([0.9, 0.95, 0.5], np.float32), 0.4)
    assert keep.tolist() == [1, 2]
