"""RetinaFace: preprocessing to a fixed input size, anchor decoding and NMS."""

from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

import cv2
import numpy as np

from edge.capture.base import DeviceImage
from edge.models import ModelSpec
from edge.runtime.base import Runtime

STEPS = (8, 16, 32)
MIN_SIZES = ((16, 32), (64, 128), (256, 512))
VARIANCES = (0.1, 0.2)
# Full-resolution refinement (Detector.refine): the square crop of the frame around a face, `REFINE_CONTEXT`
# times the box's larger side, is searched again at REFINE_INPUT x REFINE_INPUT (one more static engine shape,
# edge.engines.sizes), when that sees the face at least REFINE_GAIN times finer than the whole frame's search.
REFINE_INPUT = 160
REFINE_CONTEXT = 2.0
REFINE_GAIN = 1.25
REFINE_MIN_IOU = 0.3  # the crop's detection must overlap the face it refines at least this much
CONFIRM_FLOOR = 0.3  # with refinement, a reduced search's face from this score is confirmed on its crop
CONFIRM_MAX = 8  # at most this many such faces a frame (each costs about a sixth of the reduced search)
REFINE_FLOOR = 0.05  # the crop's detections are kept from this score: the refined score replaces the coarse one


@dataclass(frozen=True)
class Detections:
    """Faces in frame coordinates: boxes (N,4) x1,y1,x2,y2; scores (N,); landmarks (N,5,2).

    Landmark order: eye, eye, nose, mouth corner, mouth corner, left to right in the image.
    """

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    def take(self, index: np.ndarray) -> "Detections":
        return Detections(self.boxes[index], self.scores[index], self.landmarks[index])

    @classmethod
    def empty(cls) -> "Detections":
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32))


def input_size_for(frame_w: int, frame_h: int, long_side: int | None) -> tuple[int, int]:
    """Detector input (W, H), multiples of 32, following the frame's aspect ratio.

    `long_side=None` is full-resolution mode (for small, distant faces): the frame itself, rounded up.
    640 on a 16:9 frame gives 640x384.
    """
    if long_side is None:
        return _up32(frame_w), _up32(frame_h)
    scale = long_side / max(frame_w, frame_h)
    return _up32(round(frame_w * scale)), _up32(round(frame_h * scale))


def _up32(v: float) -> int:
    return max(32, int(np.ceil(v / 32.0)) * 32)


@lru_cache(maxsize=8)
def priors(width: int, height: int) -> np.ndarray:
    """Anchor centres and sizes (A, 4) as fractions of the input, ordered row, column, anchor."""
    out = []
    for step, sizes in zip(STEPS, MIN_SIZES, strict=True):
        fh, fw = int(np.ceil(height / step)), int(np.ceil(width / step))
        ii, jj = np.meshgrid(np.arange(fh), np.arange(fw), indexing="ij")
        cx = ((jj + 0.5) * step / width).reshape(-1, 1)
        cy = ((ii + 0.5) * step / height).reshape(-1, 1)
        per = [np.concatenate([cx, cy, np.full_like(cx, s / width), np.full_like(cy, s / height)], axis=1)
               for s in sizes]
        out.append(np.stack(per, axis=1).reshape(-1, 4))
    return np.concatenate(out).astype(np.float32)


@dataclass(frozen=True)
class Letterbox:
    """How a frame fits the detector's input: the input (W, H), the frame scaled (W, H), and the scale."""

    size: tuple[int, int]
    resized: tuple[int, int]
    scale: float


def letterbox_for(width: int, height: int, long_side: int | None) -> Letterbox:
    """How a width x height frame fits the detector's input at this long side (None: the frame's own size)."""
    in_w, in_h = input_size_for(width, height, long_side)
    scale = min(in_w / width, in_h / height)
    return Letterbox((in_w, in_h), (max(1, round(width * scale)), max(1, round(height * scale))), scale)


class GpuLetterboxer(Protocol):
    """Letterboxes a frame on the GPU into the detector's input and runs it (edge.runtime.letterbox_trt)."""

    def run(self, image: DeviceImage, input_name: str, resized: tuple[int, int], size: tuple[int, int],
            mean: tuple[float, float, float]) -> dict[str, np.ndarray] | None: ...

    def close(self) -> None: ...


class Detector:
    """Runs RetinaFace at a fixed input size per frame shape and returns confident, de-duplicated faces.

    `gpu`: where the detector runs on TensorRT, the letterbox of frames the GPU can address (`Frame.device`)
    runs there too; other frames, and any the GPU cannot take, are letterboxed on the CPU.
    """

    def __init__(self, runtime: Runtime, spec: ModelSpec, long_side: int | None = 640,
                 min_score: float = 0.6, nms_iou: float = 0.4, max_faces: int = 64, refine: bool = True,
                 gpu: GpuLetterboxer | None = None) -> None:
        """`refine`: whether `refine` looks again at small faces on the full-resolution frame."""
        self.runtime = runtime
        self.spec = spec
        self.long_side = long_side
        self.min_score = min_score
        self.nms_iou = nms_iou
        self.max_faces = max_faces
        self.refines = refine
        self.gpu = gpu
        self._mean = np.array(spec.mean, np.float32)

    def letterbox(self, width: int, height: int) -> Letterbox:
        return letterbox_for(width, height, self.long_side)

    def preprocess(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        """Letterbox the BGR frame into the input (top-left aligned, mean padding); returns blob and scale.

        Mean padding is zero once the mean is subtracted, so each channel is written straight into a zeroed
        NCHW blob: no float HWC canvas and no transpose copy (0.4 ms instead of 2.9 ms at 640x384, one core).
        """
        h, w = image.shape[:2]
        box = self.letterbox(w, h)
        (in_w, in_h), (nw, nh) = box.size, box.resized
        resized = image if (nw, nh) == (w, h) else cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
        blob = np.zeros((1, 3, in_h, in_w), np.float32)
        for c in range(3):
            np.subtract(resized[:, :, c], self._mean[c], out=blob[0, c, :nh, :nw], dtype=np.float32)
        return blob, box.scale

    def __call__(self, image: np.ndarray, device: DeviceImage | None = None) -> Detections:
        """Faces at or above `min_score` in the BGR frame `image`; `device`: the same pixels on the GPU (letterboxed
        there when it can). With refinement on a reduced frame, faces the reduced search scores from
        CONFIRM_FLOOR up are kept too when their full-resolution crop (`refine`) reaches `min_score`: a small face
        the reduced search barely sees is found (at most CONFIRM_MAX of them a frame)."""
        h, w = image.shape[:2]
        box = self.letterbox(w, h)
        out = None
        if device is not None and self.gpu is not None:
            mean = (float(self._mean[0]), float(self._mean[1]), float(self._mean[2]))
            out = self.gpu.run(device, self.spec.input, box.resized, box.size, mean)
        if out is None:
            blob, _ = self.preprocess(image)
            out = self.runtime.run({self.spec.input: blob})
        (in_w, in_h), scale = box.size, box.scale
        cascade = self.refines and scale < 1.0 and self.min_score > CONFIRM_FLOOR
        found = decode(out["loc"][0], out["conf"][0], out["landmarks"][0], in_w, in_h, scale,
                       CONFIRM_FLOOR if cascade else self.min_score, self.nms_iou, self.max_faces)
        if not cascade:
            return found
        sure = found.scores >= self.min_score
        unsure = np.flatnonzero(~sure)[:CONFIRM_MAX]  # best first: decode orders by score
        if unsure.size == 0:
            return found
        confirmed = self.refine(image, found.take(unsure))
        kept = np.concatenate([np.flatnonzero(sure), unsure[confirmed.scores >= self.min_score]])
        merged = Detections(found.boxes.copy(), found.scores.copy(), found.landmarks.copy())
        merged.boxes[unsure], merged.scores[unsure], merged.landmarks[unsure] = (
            confirmed.boxes, confirmed.scores, confirmed.landmarks)
        merged = merged.take(kept)
        return merged.take(nms(merged.boxes, merged.scores, self.nms_iou))  # two crops may settle on one face

    def refine(self, image: np.ndarray, dets: Detections) -> Detections:
        """These faces' boxes, landmarks and scores searched again on the full-resolution frame.

        The fast search reduces a 1280x720 frame to 512x288, so a face 20 px between the eyes is found at 8 px:
        often with a low score, and with landmarks too coarse to align it well. Each face the reduced search
        saw coarser than a REFINE_INPUT crop around it would is looked at again in that crop; the crop's
        detection that overlaps it best replaces it. A face whose crop finds nothing keeps its coarse values;
        a frame searched at its own size or larger (an LFW photo at 512) is returned as it is.
        """
        if not self.refines or len(dets) == 0:
            return dets
        h, w = image.shape[:2]
        coarse = self.letterbox(w, h).scale
        if coarse >= 1.0:
            return dets
        boxes, scores, landmarks = dets.boxes.copy(), dets.scores.copy(), dets.landmarks.copy()
        for i, box in enumerate(dets.boxes):
            side = REFINE_CONTEXT * float(max(box[2] - box[0], box[3] - box[1]))
            s = REFINE_INPUT / max(side, 1.0)
            if s < coarse * REFINE_GAIN:
                continue
            x0, y0 = (box[0] + box[2] - side) / 2, (box[1] + box[3] - side) / 2
            found = self._search_crop(image, x0, y0, s)
            if len(found) == 0:
                continue
            overlap = _iou(box, found.boxes)
            j = int(np.argmax(overlap))
            if overlap[j] >= REFINE_MIN_IOU:
                boxes[i], scores[i], landmarks[i] = found.boxes[j], found.scores[j], found.landmarks[j]
        return Detections(boxes, scores, landmarks)

    def _search_crop(self, image: np.ndarray, x0: float, y0: float, s: float) -> Detections:
        """Faces in the square crop whose top-left is (x0, y0) in the frame, scaled by `s` to REFINE_INPUT;
        in frame coordinates. The crop leaving the frame is padded with the mean, as the letterbox is."""
        n = REFINE_INPUT
        # pixel centres map onto pixel centres: u = s * (x + 0.5 - x0) - 0.5
        m = np.array([[s, 0.0, s * (0.5 - x0) - 0.5], [0.0, s, s * (0.5 - y0) - 0.5]])
        crop = cv2.warpAffine(image, m, (n, n), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                              borderValue=tuple(float(v) for v in self._mean))
        blob = np.ascontiguousarray((crop.astype(np.float32) - self._mean).transpose(2, 0, 1)[None])
        out = self.runtime.run({self.spec.input: blob})
        found = decode(out["loc"][0], out["conf"][0], out["landmarks"][0], n, n, 1.0, REFINE_FLOOR,
                       self.nms_iou, self.max_faces)
        offset = np.array([x0, y0], np.float32)  # decode's coordinates are continuous (pixel i spans [i, i+1))
        return Detections(found.boxes / s + np.tile(offset, 2), found.scores, found.landmarks / s + offset)


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one box (4,) with each of boxes (N, 4)."""
    lo, hi = np.maximum(box[:2], boxes[:, :2]), np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
    area = np.prod(box[2:] - box[:2]) + np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    return inter / (area - inter + 1e-9)


def decode(loc: np.ndarray, conf: np.ndarray, landmarks: np.ndarray, in_w: int, in_h: int, scale: float,
           min_score: float, nms_iou: float, max_faces: int) -> Detections:
    """Decode raw outputs into frame coordinates (divide by the letterbox scale), then NMS."""
    scores = conf[:, 1]
    keep = np.flatnonzero(scores >= min_score)
    if keep.size == 0:
        return Detections.empty()
    p = priors(in_w, in_h)[keep]
    loc, lm, scores = loc[keep], landmarks[keep].reshape(-1, 5, 2), scores[keep]
    v0, v1 = VARIANCES
    centre = p[:, :2] + loc[:, :2] * v0 * p[:, 2:]
    size = p[:, 2:] * np.exp(loc[:, 2:] * v1)
    wh = np.array([in_w, in_h], np.float32)
    boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1) * np.tile(wh, 2) / scale
    points = (p[:, None, :2] + lm * v0 * p[:, None, 2:]) * wh / scale
    order = nms(boxes, scores, nms_iou)[:max_faces]
    return Detections(boxes[order].astype(np.float32), scores[order].astype(np.float32),
                      points[order].astype(np.float32))


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Greedy non-maximum suppression; indices of kept boxes, best first."""
    order = np.argsort(-scores)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    kept = []
    while order.size:
        i = order[0]
        kept.append(i)
        rest = order[1:]
        xx1 = np.maximum(boxes[i, 0], boxes[rest, 0])
        yy1 = np.maximum(boxes[i, 1], boxes[rest, 1])
        xx2 = np.minimum(boxes[i, 2], boxes[rest, 2])
        yy2 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(xx2 - xx1, 0, None) * np.clip(yy2 - yy1, 0, None)
        overlap = inter / (area[i] + area[rest] - inter + 1e-9)
        order = rest[overlap <= iou]
    return np.array(kept, dtype=np.int64)
