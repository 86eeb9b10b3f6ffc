"""Photos to gallery embeddings, with the device's own detector, aligner and embedder."""

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.capture.opencv import read_image
from edge.config.detector import DetectorConfig
from edge.config.embedder import DEFAULT_EMBEDDER, EmbedderConfig
from edge.config.quality import QualityConfig
from edge.config.runtime import RuntimeConfig
from edge.errors import SourceError
from edge.vision.quality import assess
from edge.vision.select import select_face
from edge.vision.stack import VisionStack

# Enrollment is stricter than a live probe: the gallery photo sets the bar for every later comparison.
ENROLL_QUALITY = QualityConfig(min_eye_distance=20.0, min_sharpness=25.0, max_yaw=0.35, max_pitch=0.4,
                               min_brightness=40.0, min_score=0.8)


@dataclass(frozen=True)
class Enrollment:
    """One photo's result: an embedding, or the reason it was rejected."""

    path: Path
    embedding: np.ndarray | None
    reason: str | None
    thumbnail: bytes | None
    quality: float


class Enroller:
    """Embeds watchlist photos. `flip` adds the mirrored face (most of flip-test's gain, no query cost)."""

    def __init__(self, stack: VisionStack, quality: QualityConfig = ENROLL_QUALITY, flip: bool = True) -> None:
        self.stack = stack
        self.quality = quality
        self.flip = flip

    @classmethod
    def open(cls, embedder: str = DEFAULT_EMBEDDER, threads: int = 1, flip: bool = True,
             runtime: RuntimeConfig | None = None) -> "Enroller":
        rt = runtime or RuntimeConfig(threads=threads)
        return cls(VisionStack.open(DetectorConfig(), EmbedderConfig(model=embedder), rt), flip=flip)

    @property
    def model_sha256(self) -> str:
        return self.stack.embedder_sha256

    @property
    def model_name(self) -> str:
        return self.stack.embedder.spec.name

    def enroll(self, path: Path) -> Enrollment:
        try:
            image = read_image(path)
        except SourceError:
            return Enrollment(path, None, "unreadable", None, 0.0)
        return self.enroll_image(image, path)

    def enroll_image(self, image: np.ndarray, path: Path = Path("-")) -> Enrollment:
        det = self.stack.detector(image)
        index, reason = select_face(det, image.shape, "single")
        if index is None:
            return Enrollment(path, None, reason, None, 0.0)
        landmarks = det.landmarks[index]
        crop = self.stack.embedder.crops(image, landmarks[None])
        q = assess(crop[0], landmarks, float(det.scores[index]), self.quality)
        if not q.ok:
            return Enrollment(path, None, q.reasons[0], None, q.score)
        embedding = self.stack.embedder.embed(crop, flip=self.flip)[0]
        thumb = crop[0] if crop.shape[1] == 112 else cv2.resize(crop[0], (112, 112), interpolation=cv2.INTER_AREA)
        ok, jpeg = cv2.imencode(".jpg", thumb, [cv2.IMWRITE_JPEG_QUALITY, 85])
        return Enrollment(path, embedding, None, jpeg.tobytes() if ok else None, q.score)
