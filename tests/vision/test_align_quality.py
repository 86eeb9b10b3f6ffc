"""Alignment puts landmarks on the ArcFace template; the quality gate says why a face is refused."""

import cv2
import numpy as np
import pytest

from edge.config.quality import QualityConfig
from edge.vision.align import ARCFACE_112, align, similarity
from edge.vision.quality import assess, pose


def test_similarity_recovers_a_known_transform():
    angle, scale, shift = np.deg2rad(17), 2.3, np.array([40.0, -12.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    points = ARCFACE_112 @ rot.T + shift
    m = similarity(points, ARCFACE_112)
    back = points @ m[:, :2].T + m[:, 2]
    assert np.abs(back - ARCFACE_112).max() < 1e-4


def test_aligned_crop_puts_eyes_on_template(stack, data_dir):
    image = cv2.imread(str(data_dir / "demo" / "obama.jpg"))
    det = stack.detector(image)
    crop = align(image, det.landmarks[0], 112)
    assert crop.shape == (112, 112, 3)
    again = stack.detector(cv2.copyMakeBorder(crop, 56, 56, 56, 56, cv2.BORDER_CONSTANT))
    eyes = again.landmarks[0][:2] - 56
    assert np.abs(eyes - ARCFACE_112[:2]).max() < 6


def test_quality_reasons(stack, data_dir):
    image = cv2.imread(str(data_dir / "demo" / "obama.jpg"))
    det = stack.detector(image)
    lm = det.landmarks[0]
    crop = align(image, lm, 112)
    cfg = QualityConfig().for_embedder(stack.embedder.spec.quality_gate)
    good = assess(crop, lm, float(det.scores[0]), cfg)
    assert good.ok and good.score > 0.9
    tiny = cv2.resize(image, None, fx=0.08, fy=0.08)
    small_lm = lm * 0.08
    assert "too_small" in assess(align(tiny, small_lm, 112), small_lm, 0.99, cfg).reasons
    blurred = cv2.GaussianBlur(crop, (0, 0), 6)
    assert "blurred" in assess(blurred, lm, 0.99, cfg).reasons
    assert "too_dark" in assess((crop * 0.1).astype(np.uint8), lm, 0.99, cfg).reasons
    assert "low_confidence" in assess(crop, lm, 0.3, cfg).reasons


def test_pose_grows_when_the_nose_moves_aside():
    frontal = ARCFACE_112.copy()
    turned = ARCFACE_112.copy()
    turned[2, 0] += 20
    assert pose(frontal)[0] < 0.05
    assert pose(turned)[0] > 0.4


def test_the_gate_is_the_embedders_unless_configured():
    """Each embedder runs with the gate its own error-versus-reject curves support (`edge eval quality`)."""
    from edge.models import Manifest

    manifest = Manifest.load()
    sface, mfn = (manifest.spec(n).quality_gate for n in ("sface_128", "mobilefacenet_192"))
    assert sface is not None and mfn is not None
    assert QualityConfig().for_embedder(sface).min_eye_distance == 16.0
    assert QualityConfig().for_embedder(mfn).min_eye_distance == 14.0
    assert QualityConfig(min_eye_distance=20).for_embedder(sface).min_eye_distance == 20.0
    unmeasured = QualityConfig().for_embedder(None)  # the stricter of the measured gates, limit by limit
    assert unmeasured.min_eye_distance == max(sface.min_eye_distance, mfn.min_eye_distance)
    assert unmeasured.min_sharpness == max(sface.min_sharpness, mfn.min_sharpness)
    with pytest.raises(ValueError, match="not resolved"):
        assess(np.zeros((112, 112, 3), np.uint8), np.zeros((5, 2)), 0.9, QualityConfig())
