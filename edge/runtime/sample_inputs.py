"""Real images as model inputs, for INT8 calibration and for checking an engine against ONNX Runtime.

The detector gets whole frames letterboxed to a profile's size. Embedders get what the device feeds them:
faces found by the device's detector and aligned by their five landmarks to the ArcFace template at the
embedder's size. Finding and aligning faces is vision's work, above this package, so the caller hands it in
(`FaceCrops`, from edge.engines.faces). Preprocessing follows the manifest (colour order, mean, scale,
layout), so calibration sees the value ranges the pipeline feeds.
"""

import logging
import sys
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from pathlib import Path

import cv2
import numpy as np

from edge.errors import ConfigError
from edge.models import ModelSpec
from edge.runtime.engine_file import Shape
from edge.runtime.progress import progress

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
# Fewest aligned faces an embedder is calibrated on (or the calibration size asked for, if smaller): ranges
# measured on a handful of faces clip the rest.
MIN_CALIBRATION_FACES = 64

FaceCrops = Callable[[np.ndarray, int], list[np.ndarray]]
"""A BGR image and a side in pixels -> the aligned BGR crops (side x side, uint8) of the faces in it that the
device would embed; an empty list when it has none."""


def preprocess(image_bgr: np.ndarray, spec: ModelSpec, size: tuple[int, int]) -> np.ndarray:
    """One input (no batch axis) of `size` (width, height): letterboxed for a dynamic-size model, resized otherwise."""
    width, height = size
    if spec.size == "dynamic":
        scale = min(width / image_bgr.shape[1], height / image_bgr.shape[0])
        resized = cv2.resize(image_bgr, (max(1, round(image_bgr.shape[1] * scale)),
                                         max(1, round(image_bgr.shape[0] * scale))))
        canvas = np.zeros((height, width, 3), np.uint8)
        canvas[:resized.shape[0], :resized.shape[1]] = resized
    elif image_bgr.shape[:2] == (height, width):
        canvas = image_bgr  # an aligned crop at the embedder's size: fed as the device feeds it
    else:
        canvas = cv2.resize(image_bgr, (width, height), interpolation=cv2.INTER_AREA)
    if spec.color == "RGB":
        canvas = cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB)
    values = (canvas.astype(np.float32) - np.asarray(spec.mean, np.float32)) * np.float32(spec.scale)
    return np.ascontiguousarray(values.transpose(2, 0, 1) if spec.layout == "NCHW" else values)


def shape_size(spec: ModelSpec, shape: Shape) -> tuple[int, int]:
    """(width, height) of a full input shape in the model's layout."""
    return (shape[3], shape[2]) if spec.layout == "NCHW" else (shape[2], shape[1])


def image_paths(folder: Path) -> list[Path]:
    """The images under `folder`, in name order."""
    if not folder.is_dir():
        raise ConfigError(f"image folder {folder} does not exist: give a folder of frames from this camera")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ConfigError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {folder}")
    return paths


def _readable(paths: Iterable[Path]) -> Iterator[np.ndarray]:
    for path in paths:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            log.warning("skipping %s: not a readable image", path)
            continue
        yield image


def folder_images(folder: Path, limit: int) -> Iterator[np.ndarray]:
    """Up to `limit` readable images under `folder`, in name order; unreadable files are logged and skipped."""
    return islice(_readable(image_paths(folder)), limit)


def aligned_faces(images: Iterable[np.ndarray], face_crops: FaceCrops, size: int, limit: int, desc: str,
                  total: int | None = None) -> list[np.ndarray]:
    """Up to `limit` aligned face crops (side `size`) from these images, in order, with a progress bar on
    stderr; an image without a usable face adds none."""
    crops: list[np.ndarray] = []
    with progress(images, total=total, desc=desc, unit="img") as bar:
        for image in bar:
            crops.extend(face_crops(image, size))
            bar.set_postfix(faces=len(crops), refresh=False)
            if len(crops) >= limit:
                break
    return crops[:limit]


def folder_faces(folder: Path, face_crops: FaceCrops, size: int, limit: int, minimum: int,
                 model: str) -> list[np.ndarray]:
    """Up to `limit` aligned faces from the frames under `folder`, for calibrating embedder `model`; fewer
    than `minimum` is an error saying what to pass."""
    paths = image_paths(folder)
    crops = aligned_faces(_readable(paths), face_crops, size, limit, f"finding faces for {model}", len(paths))
    if len(crops) < minimum:
        raise ConfigError(
            f"int8 calibration of {model} found {len(crops)} usable face(s) in the {len(paths)} frame(s) under "
            f"{folder}; it needs at least {minimum}. An embedder is calibrated on the aligned faces the device "
            "would embed, and frames without one (no face, or too small, blurred, dark or turned away) are "
            f"skipped: pass --calib-dir with more frames from this camera where people face it, or build {model} "
            "with --precision fp16")
    if len(crops) < limit:
        print(f"{model}: calibrating on {len(crops)} aligned faces from {len(paths)} frames "
              f"(--calib-images asked for {limit})", file=sys.stderr)
    return crops


def lfw_photos(data_dir: Path) -> Iterator[np.ndarray]:
    """The first image of each LFW person, in name order: real, varied and the same on every run."""
    lfw = data_dir / "lfw"
    if not lfw.is_dir():
        raise ConfigError(f"no LFW folder at {lfw}: pass --data with the evaluation data folder")
    for person in sorted(p for p in lfw.iterdir() if p.is_dir()):
        first = min(person.glob("*.jpg"), default=None)
        image = None if first is None else cv2.imread(str(first), cv2.IMREAD_COLOR)
        if image is not None:
            yield image


def lfw_images(data_dir: Path, count: int) -> list[np.ndarray]:
    """The first image of the first `count` LFW people, whole."""
    images = list(islice(lfw_photos(data_dir), count))
    if not images:
        raise ConfigError(f"no readable LFW images under {data_dir / 'lfw'}")
    return images


def lfw_faces(data_dir: Path, count: int, face_crops: FaceCrops, size: int) -> list[np.ndarray]:
    """`count` aligned faces (side `size`): the face each LFW person's first photo is about, for photos that
    have one."""
    crops = aligned_faces(lfw_photos(data_dir), face_crops, size, count, "aligning LFW faces")
    if not crops:
        raise ConfigError(f"no face found in the LFW images under {data_dir / 'lfw'}")
    return crops


def batches(images: Iterable[np.ndarray], spec: ModelSpec, shape: Shape) -> Iterator[np.ndarray]:
    """Full batches of `shape` (batch size and input size); a last, partial batch is dropped."""
    size = shape_size(spec, shape)
    pending: list[np.ndarray] = []
    for image in images:
        pending.append(preprocess(image, spec, size))
        if len(pending) == shape[0]:
            yield np.stack(pending)
            pending = []
