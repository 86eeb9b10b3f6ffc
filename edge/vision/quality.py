"""Probe quality: is this face good enough to embed and decide on, and if not, why not."""

from dataclasses import dataclass

import cv2
import numpy as np

from edge.config.quality import QualityConfig
from edge.vision.align import ARCFACE_112, similarity

TEMPLATE_EYE_MID = (ARCFACE_112[0] + ARCFACE_112[1]) / 2
TEMPLATE_MOUTH_MID = (ARCFACE_112[3] + ARCFACE_112[4]) / 2
TEMPLATE_EYE_DIST = float(np.linalg.norm(ARCFACE_112[1] - ARCFACE_112[0]))
TEMPLATE_EYE_TO_MOUTH = float(np.linalg.norm(TEMPLATE_MOUTH_MID - TEMPLATE_EYE_MID))


@dataclass(frozen=True)
class Quality:
    """Measured quality of one face. `score` in [0, 1]; `reasons` empty when the face is usable."""

    score: float
    eye_distance: float
    sharpness: float
    yaw: float
    pitch: float
    brightness: float
    detection: float
    reasons: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.reasons


def pose(landmarks: np.ndarray) -> tuple[float, float]:
    """Yaw and pitch proxies from five points: nose offset from the template, in eye distances.

    The points are first mapped onto the template by the best similarity fit, so roll and scale cancel.
    """
    m = similarity(landmarks, ARCFACE_112)
    pts = landmarks @ m[:, :2].T + m[:, 2]
    nose = pts[2]
    eye_mid, mouth_mid = (pts[0] + pts[1]) / 2, (pts[3] + pts[4]) / 2
    yaw = (nose[0] - (eye_mid[0] + mouth_mid[0]) / 2) / TEMPLATE_EYE_DIST
    ref = (nose[1] - eye_mid[1]) / max(mouth_mid[1] - eye_mid[1], 1e-6)
    frontal = (ARCFACE_112[2, 1] - TEMPLATE_EYE_MID[1]) / (TEMPLATE_MOUTH_MID[1] - TEMPLATE_EYE_MID[1])
    return float(abs(yaw)), float(abs(ref - frontal))


def face_size(landmarks: np.ndarray) -> float:
    """The size `min_eye_distance` is compared with, in eye distances (pixels) of the frame.

    A turned head brings the eyes together without making the face smaller: size is judged on the larger of the
    eye distance and the eye-to-mouth height (scaled to the template's eye distance), so a profile is refused as
    a pose, not as too small."""
    eye_distance = float(np.linalg.norm(landmarks[1] - landmarks[0]))
    eye_to_mouth = float(np.linalg.norm((landmarks[3] + landmarks[4]) / 2 - (landmarks[0] + landmarks[1]) / 2))
    return max(eye_distance, eye_to_mouth * TEMPLATE_EYE_DIST / TEMPLATE_EYE_TO_MOUTH)


def assess(crop: np.ndarray, landmarks: np.ndarray, detection: float, cfg: QualityConfig) -> Quality:
    """Quality of a face from its aligned crop (BGR, any template size) and its frame landmarks (5, 2).

    `cfg` has its gate resolved (`QualityConfig.for_embedder`)."""
    if cfg.min_eye_distance is None or cfg.min_sharpness is None:
        raise ValueError("quality gate not resolved: pass QualityConfig.for_embedder(spec.quality_gate)")
    eye_distance = float(np.linalg.norm(landmarks[1] - landmarks[0]))
    size = face_size(landmarks)
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    if grey.shape[0] != 112:
        grey = cv2.resize(grey, (112, 112), interpolation=cv2.INTER_AREA)
    centre = grey[16:104, 16:96]
    sharpness = float(cv2.Laplacian(centre, cv2.CV_32F).var())
    brightness = float(centre.mean())
    yaw, pitch = pose(landmarks)
    reasons = []
    if size < cfg.min_eye_distance:
        reasons.append("too_small")
    if sharpness < cfg.min_sharpness:
        reasons.append("blurred")
    if yaw > cfg.max_yaw or pitch > cfg.max_pitch:
        reasons.append("extreme_pose")
    if brightness < cfg.min_brightness:
        reasons.append("too_dark")
    if detection < cfg.min_score:
        reasons.append("low_confidence")
    factors = (
        min(1.0, size / cfg.good_eye_distance),
        min(1.0, sharpness / cfg.good_sharpness),
        max(0.0, 1.0 - max(yaw / cfg.max_yaw, pitch / cfg.max_pitch) ** 2),
        min(1.0, detection),
    )
    score = float(np.prod(factors) ** (1 / len(factors)))
    return Quality(round(score, 4), eye_distance, sharpness, yaw, pitch, brightness, detection, tuple(reasons))
