"""Aligned faces for an embedder's INT8 calibration and engine check: the step edge.runtime cannot take itself
(vision sits above it), handed to it as `sample_inputs.FaceCrops`.

A face goes through what the device runs: the shipped detector with the default [detector] settings, on ONNX
Runtime on the CPU (a Jetson has it too, and the engine being built is not there yet), the device's choice of
face, and `Embedder.crops`' five-point alignment at the embedder's input size. The manifest preprocessing is
edge.runtime's.
"""

import os

import numpy as np

from edge.config.detector import DetectorConfig
from edge.config.quality import QualityConfig
from edge.models import Manifest
from edge.runtime import Runtime, open_runtime
from edge.vision.align import align_faces
from edge.vision.detect import Detector
from edge.vision.quality import assess
from edge.vision.select import select_face

# Calibration wants clean faces, whatever the live gate lets through (its sharpness limit is 4 since edge eval
# quality, docs/evaluation.md): the size and sharpness limits the live gate had before, fixed here.
CALIBRATION_QUALITY = QualityConfig(min_eye_distance=14.0, min_sharpness=30.0)


class FaceAligner:
    """Frames and photos to aligned BGR crops. The detector opens on first use, so building only the detector
    needs none."""

    def __init__(self, manifest: Manifest, detector: DetectorConfig | None = None,
                 quality: QualityConfig | None = None, threads: int | None = None) -> None:
        self.manifest = manifest
        self.config = detector or DetectorConfig()
        self.quality = (quality or CALIBRATION_QUALITY).for_embedder(None)
        self.threads = threads or os.cpu_count() or 1
        self._runtime: Runtime | None = None
        self._detector: Detector | None = None

    @property
    def detector(self) -> Detector:
        if self._detector is None:
            cfg = self.config
            self._runtime = open_runtime(self.manifest, cfg.model, "onnxruntime", self.threads)
            self._detector = Detector(self._runtime, self.manifest.spec(cfg.model),
                                      None if cfg.long_side == "full" else cfg.long_side, cfg.min_score,
                                      cfg.nms_iou, cfg.max_faces, cfg.refine)
        return self._detector

    def frame_faces(self, frame: np.ndarray, size: int) -> list[np.ndarray]:
        """Every face of a camera frame that the device would embed: detected, aligned, and through the
        stricter measured quality gate; none for a frame without one."""
        det = self.detector.refine(frame, self.detector(frame))
        crops = align_faces(frame, det.landmarks, size)
        return [crop for crop, landmarks, score in zip(crops, det.landmarks, det.scores, strict=True)
                if assess(crop, landmarks, float(score), self.quality).ok]

    def photo_face(self, photo: np.ndarray, size: int) -> list[np.ndarray]:
        """The face a photo is about (`select_face(..., "central")`, as the evaluation picks an LFW photo's
        subject), aligned; none when the detector finds no face."""
        det = self.detector(photo)
        index, _ = select_face(det, photo.shape, "central")
        if index is None:
            return []
        return list(align_faces(photo, self.detector.refine(photo, det.take(np.array([index]))).landmarks, size))

    def close(self) -> None:
        if self._runtime is not None:
            self._runtime.close()
            self._runtime = self._detector = None
