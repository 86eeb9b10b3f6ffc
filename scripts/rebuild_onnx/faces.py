"""Real, aligned face crops for comparing two embedders, and random inputs beside them.

Comparing conversions on the inputs the model is made for (faces aligned to the ArcFace five-point
template) exercises the activation ranges that matter; random images cover the rest. Faces come from LFW in
the shared data folder, found with the shipped RetinaFace: the single most confident face per image, with
its landmarks decoded as the RetinaFace reference does (anchors per stride 8/16/32, variance 0.1).
"""

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from edge.models import ModelSpec

# ArcFace five-point template for a 112x112 crop: eyes, nose tip, mouth corners (x, y).
ARCFACE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)
_STEPS = (8, 16, 32)
_SIZES = ((16, 32), (64, 128), (256, 512))


def lfw_images(lfw: Path, count: int) -> list[Path]:
    """First image of `count` people spread evenly over LFW's sorted folders (the same on every run)."""
    people = sorted(p for p in lfw.iterdir() if p.is_dir())
    if not people:
        return []
    picks = np.linspace(0, len(people) - 1, num=min(count, len(people))).round().astype(int)
    found = [next(iter(sorted(people[i].glob("*.jpg"))), None) for i in picks]
    return [p for p in found if p is not None]


def priors(height: int, width: int) -> np.ndarray:
    """RetinaFace anchors (cx, cy, w, h), normalised, ordered row, column, anchor per stride."""
    rows = []
    for step, sizes in zip(_STEPS, _SIZES, strict=True):
        fh, fw = -(-height // step), -(-width // step)
        i, j, k = np.meshgrid(np.arange(fh), np.arange(fw), np.arange(len(sizes)), indexing="ij")
        s = np.asarray(sizes, np.float32)[k.ravel()]
        rows.append(np.stack([(j.ravel() + 0.5) * step / width, (i.ravel() + 0.5) * step / height,
                              s / width, s / height], axis=1))
    return np.concatenate(rows).astype(np.float32)


class LandmarkFinder:
    """The five landmarks of the most confident face in an image, with the shipped RetinaFace."""

    def __init__(self, model: Path, spec: ModelSpec) -> None:
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        self._session = ort.InferenceSession(str(model), sess_options=opts, providers=["CPUExecutionProvider"])
        self._spec = spec

    def find(self, image_bgr: np.ndarray, min_score: float = 0.9) -> np.ndarray | None:
        h, w = image_bgr.shape[:2]
        ph, pw = -(-h // 32) * 32, -(-w // 32) * 32
        canvas = np.zeros((ph, pw, 3), np.float32)
        canvas[:h, :w] = image_bgr
        x = (canvas - np.asarray(self._spec.mean, np.float32)) * self._spec.scale
        loc_conf_lm = self._session.run(["conf", "landmarks"], {self._spec.input: x.transpose(2, 0, 1)[None]})
        conf, lms = loc_conf_lm[0][0, :, 1], loc_conf_lm[1][0]
        best = int(np.argmax(conf))
        if conf[best] < min_score:
            return None
        p = priors(ph, pw)[best]
        points = p[:2] + lms[best].reshape(5, 2) * 0.1 * p[2:]
        return (points * np.array([pw, ph], np.float32)).astype(np.float32)


def align(image: np.ndarray, landmarks: np.ndarray, size: int) -> np.ndarray:
    """Similarity warp of the five landmarks onto the ArcFace template scaled to `size`."""
    matrix, _ = cv2.estimateAffinePartial2D(landmarks, ARCFACE_112 * (size / 112.0), method=cv2.LMEDS)
    if matrix is None:
        raise ValueError("no similarity transform fits these landmarks")
    return cv2.warpAffine(image, matrix, (size, size), borderValue=(0, 0, 0))


def aligned_faces(paths: Sequence[Path], finder: LandmarkFinder, size: int) -> np.ndarray:
    """BGR uint8 crops (N, size, size, 3) of the faces found; images without a confident face are left out."""
    crops = []
    for path in paths:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            continue
        points = finder.find(image)
        if points is not None:
            crops.append(align(image, points, size))
    return np.stack(crops) if crops else np.zeros((0, size, size, 3), np.uint8)


def random_images(count: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, size, size, 3), dtype=np.uint8)


def to_model_input(crops_bgr: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """BGR uint8 crops as the model wants them: channel order, (x - mean) * scale, layout."""
    x = crops_bgr.astype(np.float32)
    if spec.color == "RGB":
        x = x[..., ::-1]
    x = (x - np.asarray(spec.mean, np.float32)) * np.float32(spec.scale)
    if spec.layout == "NCHW":
        x = x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x, dtype=np.float32)
