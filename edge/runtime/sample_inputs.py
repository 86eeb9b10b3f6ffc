"""Real images as model inputs, for INT8 calibration and for checking an engine against ONNX Runtime.

The detector gets whole frames letterboxed to a profile's size; embedders get face crops resized to
their input. Preprocessing follows the manifest (colour order, mean, scale, layout), so calibration
sees the value ranges the pipeline feeds.
"""

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np

from edge.errors import ConfigError
from edge.models import ModelSpec
from edge.runtime.engine_file import Shape

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
# LFW deep-funneled images are 250x250 with the face centred; this square holds the face and a margin
# close to the ArcFace 112 template's.
LFW_FACE_BOX = (68, 68, 182, 182)


def preprocess(image_bgr: np.ndarray, spec: ModelSpec, size: tuple[int, int]) -> np.ndarray:
    """One input (no batch axis) of `size` (width, height): letterboxed for a dynamic-size model, resized otherwise."""
    width, height = size
    if spec.size == "dynamic":
        scale = min(width / image_bgr.shape[1], height / image_bgr.shape[0])
        resized = cv2.resize(image_bgr, (max(1, round(image_bgr.shape[1] * scale)),
                                         max(1, round(image_bgr.shape[0] * scale))))
        canvas = np.zeros((height, width, 3), np.uint8)
        canvas[:resized.shape[0], :resized.shape[1]] = resized
    else:
        canvas = cv2.resize(image_bgr, (width, height), interpolation=cv2.INTER_AREA)
    if spec.color == "RGB":
        canvas = cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB)
    values = (canvas.astype(np.float32) - np.asarray(spec.mean, np.float32)) * np.float32(spec.scale)
    return np.ascontiguousarray(values.transpose(2, 0, 1) if spec.layout == "NCHW" else values)


def shape_size(spec: ModelSpec, shape: Shape) -> tuple[int, int]:
    """(width, height) of a full input shape in the model's layout."""
    return (shape[3], shape[2]) if spec.layout == "NCHW" else (shape[2], shape[1])


def folder_images(folder: Path, limit: int) -> Iterator[np.ndarray]:
    """Up to `limit` readable images under `folder`, in name order; unreadable files are logged and skipped."""
    if not folder.is_dir():
        raise ConfigError(f"image folder {folder} does not exist: give a folder of frames from this camera")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ConfigError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {folder}")
    produced = 0
    for path in paths:
        if produced >= limit:
            return
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            log.warning("skipping %s: not a readable image", path)
            continue
        produced += 1
        yield image


def lfw_images(data_dir: Path, count: int, faces: bool) -> list[np.ndarray]:
    """The first image of the first `count` LFW people (cropped to the face when `faces`):
    real, varied and the same on every run."""
    lfw = data_dir / "lfw"
    if not lfw.is_dir():
        raise ConfigError(f"no LFW folder at {lfw}: pass --data with the evaluation data folder")
    images = []
    for person in sorted(p for p in lfw.iterdir() if p.is_dir()):
        if len(images) >= count:
            break
        first = min(person.glob("*.jpg"), default=None)
        image = None if first is None else cv2.imread(str(first), cv2.IMREAD_COLOR)
        if image is None:
            continue
        if faces:
            x0, y0, x1, y1 = LFW_FACE_BOX
            image = image[y0:y1, x0:x1]
        images.append(image)
    if not images:
        raise ConfigError(f"no readable LFW images under {lfw}")
    return images


def batches(images: Iterable[np.ndarray], spec: ModelSpec, shape: Shape) -> Iterator[np.ndarray]:
    """Full batches of `shape` (batch size and input size); a last, partial batch is dropped."""
    size = shape_size(spec, shape)
    pending: list[np.ndarray] = []
    for image in images:
        pending.append(preprocess(image, spec, size))
        if len(pending) == shape[0]:
            yield np.stack(pending)
            pending = []
