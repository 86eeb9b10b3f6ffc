"""The usual Python baseline, the `face_recognition` package (dlib HOG detector + ResNet embedding).

Run the way its own examples run it: `face_locations` at default settings (HOG, one upsample) and
`face_encodings` on every frame, then `face_distance` against the known faces. Optional: absent, the
benchmark says so and reports our figures alone.
"""

import importlib.util
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

INSTALL = ("the face_recognition baseline is not installed: `pip install --no-deps face-recognition "
           "face-recognition-models dlib-bin` (plus Click and Pillow if missing)")


def available() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("face_recognition", "dlib"))


class FaceRecognition:
    """face_recognition with a list of known encodings, timed per stage."""

    def __init__(self) -> None:
        import dlib
        import face_recognition

        self.fr: Any = face_recognition
        self.runtime = f"dlib {dlib.__version__} (CUDA {'on' if dlib.DLIB_USE_CUDA else 'off'}), face_recognition " \
                       f"{getattr(face_recognition, '__version__', '?')}"
        self.known = np.zeros((0, 128))

    def encode_photo(self, path: Path) -> np.ndarray | None:
        """One photo's encoding (for the known faces; not timed)."""
        rgb = self.fr.load_image_file(str(path))
        encodings = self.fr.face_encodings(rgb)
        return encodings[0] if encodings else None

    def set_known(self, encodings: np.ndarray) -> None:
        self.known = np.asarray(encodings, dtype=np.float64)

    def frame(self, bgr: np.ndarray) -> dict[str, float]:
        """One frame through locations, encodings and distances; seconds per stage and faces found."""
        t0 = time.perf_counter()
        rgb = np.ascontiguousarray(bgr[:, :, ::-1])
        locations = self.fr.face_locations(rgb)
        t1 = time.perf_counter()
        encodings = self.fr.face_encodings(rgb, locations)
        t2 = time.perf_counter()
        for encoding in encodings:
            self.fr.face_distance(self.known, encoding)
        t3 = time.perf_counter()
        return {"detect": t1 - t0, "align+embed": t2 - t1, "match": t3 - t2, "faces": float(len(encodings))}


def decode_jpeg(data: bytes) -> np.ndarray:
    """The same JPEG decode for both pipelines, so the comparison is about the face work."""
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
