"""Real, aligned face crops for comparing two embedders, and random inputs beside them.

Comparing conversions on the inputs the model is made for (faces aligned to the ArcFace five-point
template) exercises the activation ranges that matter; random images cover the rest. Faces come from LFW in
the shared data folder, found and aligned by the device's own code (edge.vision: the shipped RetinaFace with
the default [detector] settings, the face the photo is about, five-point alignment), so the comparison runs
on the crops a device would embed.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edge.capture.opencv import read_image
from edge.errors import SourceError
from edge.models import ModelSpec
from edge.vision.align import align
from edge.vision.detect import Detector
from edge.vision.select import select_face


def lfw_images(lfw: Path, count: int) -> list[Path]:
    """First image of `count` people spread evenly over LFW's sorted folders (the same on every run)."""
    people = sorted(p for p in lfw.iterdir() if p.is_dir())
    if not people:
        return []
    picks = np.linspace(0, len(people) - 1, num=min(count, len(people))).round().astype(int)
    found = [next(iter(sorted(people[i].glob("*.jpg"))), None) for i in picks]
    return [p for p in found if p is not None]


def aligned_faces(paths: Sequence[Path], detector: Detector, size: int) -> np.ndarray:
    """BGR uint8 crops (N, size, size, 3) of the face each photo is about; photos without one are left out."""
    crops = []
    for path in paths:
        try:
            image = read_image(path)
        except SourceError:
            continue
        detections = detector(image)
        index, _ = select_face(detections, image.shape, "central")
        if index is not None:
            crops.append(align(image, detections.landmarks[index], size))
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
