"""How 1:N identification degrades as faces get smaller (or blurrier), through the device's own path.

The gallery is `edge eval identify`'s on LFW (first photo of each person with 2+ photos, known label noise
left out of the passers-by), enrolled from the full photos with the mirror added, as the Enroller does. A
fixed, seeded sample of mated and non-mated probe photos is then shown to a simulated street camera at each
level: the photo is scaled (area averaging, as a sensor integrates light) so that the face's eye distance,
from the detector's landmarks on the full photo, equals the level; optionally blurred (Gaussian, sigma in
frame pixels); and pasted at a seeded position into a 1280x720 grey frame. The frame goes through what the
pipeline does: the detector at its configured input size (with `[detector] refine`, the face found is
looked at again on the full-resolution frame, as the pipeline does before embedding), the quality gate
(`assess`), the embedder and `match`. Only photos whose own eye distance is at least the largest level are
sampled, so that every level is a reduction, never an enlargement.

Rates are per face shown to the camera: a mated probe is a miss unless its face is found (a detection whose
landmarks lie within one eye distance of where the face was pasted), passes the gate where the gate applies,
and its own person is the best candidate at or above the threshold; a non-mated probe is a false alarm when
its face is found, passes, and any candidate is at or above the threshold. A face the camera cannot see or
will not embed is a miss, never an alarm. "without the gate" embeds every face found.
"""

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.capture.opencv import read_image
from edge.config.match import MatchConfig
from edge.config.quality import QualityConfig
from edge.errors import EdgeError
from edge.evaluation.embedcache import EmbedCache
from edge.evaluation.identify import Probe, Protocol, best_matches, build_protocol, enroll
from edge.runtime.progress import progress
from edge.vision.detect import Detections
from edge.vision.quality import assess
from edge.vision.stack import VisionStack
from edge.watchlist.calibration import calibration_path, load_policy
from edge.watchlist.match import Gallery

FRAME_W, FRAME_H = 1280, 720
GREY = 128
LEVELS = (8, 10, 12, 14, 17, 20, 24, 32)
PER_CLASS = 500
FPIRS = (1e-2, 1e-3)
PROTOCOL = ("each probe photo scaled so its eye distance is the level, pasted into a grey 1280x720 frame, then "
            "detect, quality gate, embed, match as the pipeline does; rates per face shown: a face not found or "
            "not through the gate is a miss (mated), never an alarm (non-mated)")
FOUND_WITHIN = 1.0  # eye distances between the pasted landmarks and a detection's, on average, to count it found


@dataclass(frozen=True)
class Condition:
    eye_distance: float  # pixels between the eyes in the frame
    blur: float = 0.0  # Gaussian sigma in frame pixels, after scaling


@dataclass(frozen=True)
class Sample:
    """The probes shown at every level: who, whether mated, the face on the photo, where it goes in the frame."""

    probes: list[Probe]
    mated: np.ndarray  # (N,) bool
    landmarks: np.ndarray  # (N, 5, 2) on the photo
    centres: np.ndarray  # (N, 2) where the face's centre is pasted, pixels in the frame

    def __len__(self) -> int:
        return len(self.probes)


def rate_key(rate: float) -> str:
    return f"fpir_{rate:.0e}".replace("e-0", "e-")


def eye_distance(landmarks: np.ndarray) -> float:
    return float(np.linalg.norm(landmarks[1] - landmarks[0]))


def draw(cache: EmbedCache, protocol: Protocol, per_class: int, seed: int, min_eye: float) -> Sample:
    """`per_class` mated and as many non-mated probes, in a seeded order, whose photo's face is at least
    `min_eye` px between the eyes (the sample depends on the data and the seed only, never on the embedder)."""
    rng = np.random.default_rng(seed)
    chosen: list[tuple[Probe, bool, np.ndarray]] = []
    for mated, pool in ((True, protocol.mated), (False, protocol.non_mated)):
        order = [pool[i] for i in rng.permutation(len(pool))]
        taken = 0
        while order and taken < per_class:
            batch, order = order[:per_class - taken + 16], order[per_class - taken + 16:]
            for probe, face in zip(batch, cache.faces([p.path for p in batch], "probe photos"), strict=True):
                if taken < per_class and face.landmarks is not None and eye_distance(face.landmarks) >= min_eye:
                    chosen.append((probe, mated, face.landmarks))
                    taken += 1
    if not chosen:
        raise EdgeError("no probe photo has a face large enough for the largest level")
    centres = rng.uniform([0.15 * FRAME_W, 0.15 * FRAME_H], [0.85 * FRAME_W, 0.85 * FRAME_H], (len(chosen), 2))
    return Sample([c[0] for c in chosen], np.array([c[1] for c in chosen]), np.stack([c[2] for c in chosen]),
                  centres)


def render(photo: np.ndarray, landmarks: np.ndarray, cond: Condition, centre: np.ndarray) -> tuple[np.ndarray,
                                                                                                    np.ndarray]:
    """A 1280x720 grey frame holding the photo scaled to this eye distance (and blurred), the face's centre
    at `centre`; and the face's five points in the frame."""
    s = cond.eye_distance / eye_distance(landmarks)
    w, h = max(1, round(photo.shape[1] * s)), max(1, round(photo.shape[0] * s))
    small = cv2.resize(photo, (w, h), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    if cond.blur > 0:
        small = cv2.GaussianBlur(small, (0, 0), cond.blur, borderType=cv2.BORDER_REPLICATE)
    scale = np.array([w / photo.shape[1], h / photo.shape[0]])
    points = (landmarks + 0.5) * scale - 0.5
    offset = np.round(centre - points.mean(axis=0)).astype(int)
    frame = np.full((FRAME_H, FRAME_W, 3), GREY, np.uint8)
    x0, y0 = max(offset[0], 0), max(offset[1], 0)
    x1, y1 = min(offset[0] + w, FRAME_W), min(offset[1] + h, FRAME_H)
    frame[y0:y1, x0:x1] = small[y0 - offset[1]:y1 - offset[1], x0 - offset[0]:x1 - offset[0]]
    return frame, (points + offset).astype(np.float32)


def find(det: Detections, expected: np.ndarray, eye: float) -> int | None:
    """The detection that is the pasted face, or None (not found)."""
    if len(det) == 0:
        return None
    err = np.linalg.norm(det.landmarks - expected, axis=2).mean(axis=1)
    best = int(np.argmin(err))
    return best if err[best] <= FOUND_WITHIN * eye else None


@dataclass
class Looks:
    """What the camera made of each probe at one condition."""

    found: np.ndarray  # (N,) bool
    passed: np.ndarray  # (N,) bool: found and through the gate
    correct: np.ndarray  # (N,) bool: best candidate is the probe's own person (mated)
    scores: np.ndarray  # (N,) best score; -inf where not found
    reasons: Counter[str]
    sizes: list[float]
    sharpness: list[float]


def look(stack: VisionStack, gallery: Gallery, sample: Sample, cond: Condition, quality: QualityConfig,
         bar: Any = None) -> Looks:
    n = len(sample)
    found, passed = np.zeros(n, bool), np.zeros(n, bool)
    reasons: Counter[str] = Counter()
    sizes, sharpness, crops, where = [], [], [], []
    for i, probe in enumerate(sample.probes):
        frame, expected = render(read_image(probe.path), sample.landmarks[i], cond, sample.centres[i])
        det = stack.detector(frame)
        j = find(det, expected, cond.eye_distance)
        if bar is not None:
            bar.update()
        if j is None:
            continue
        face = stack.detector.refine(frame, det.take(np.array([j])))  # as Pipeline._worth_embedding does
        lm = face.landmarks[0]
        crop = stack.embedder.crops(frame, lm[None])[0]
        q = assess(crop, lm, float(face.scores[0]), quality)
        found[i], passed[i] = True, q.ok
        reasons.update(q.reasons)
        sizes.append(q.eye_distance)
        sharpness.append(q.sharpness)
        crops.append(crop)
        where.append(i)
    scores, correct = np.full(n, -np.inf), np.zeros(n, bool)
    if crops:
        ids, best = best_matches(gallery, stack.embedder.embed(np.stack(crops)))
        for k, i in enumerate(where):
            scores[i] = best[k]
            correct[i] = sample.mated[i] and ids[k] == sample.probes[i].identity
    return Looks(found, passed, correct, scores, reasons, sizes, sharpness)


def rates(sample: Sample, used: np.ndarray, correct: np.ndarray, scores: np.ndarray,
          thresholds: dict[str, float]) -> dict[str, Any]:
    """FNIR and FPIR per face shown, at each threshold, counting only the faces in `used`."""
    out: dict[str, Any] = {}
    mated, non = sample.mated, ~sample.mated
    for key, t in thresholds.items():
        hit = used & correct & (scores >= t)
        alarm = used & (scores >= t)
        out[key] = {"fnir": _ratio((~hit)[mated]), "fpir": _ratio(alarm[non])}
    return out


def _ratio(values: np.ndarray) -> float | None:
    return round(float(values.mean()), 4) if len(values) else None


def level_report(sample: Sample, cond: Condition, lk: Looks, thresholds: dict[str, float]) -> dict[str, Any]:
    return {
        "eye_distance": cond.eye_distance,
        "blur_sigma": cond.blur,
        "detected": _ratio(lk.found),
        "passed_gate": _ratio(lk.passed),
        "gate_reasons": dict(sorted(lk.reasons.items())),
        "measured_eye_distance_median": round(float(np.median(lk.sizes)), 2) if lk.sizes else None,
        "sharpness_median": round(float(np.median(lk.sharpness)), 1) if lk.sharpness else None,
        "with_gate": rates(sample, lk.passed, lk.correct, lk.scores, thresholds),
        "without_gate": {"rank1": _ratio(lk.correct[sample.mated]),
                         **rates(sample, lk.found, lk.correct, lk.scores, thresholds)},
        "found_only": {"what": "without the gate, among the faces found: the embedder alone at this size",
                       "mated": int(lk.found[sample.mated].sum()), "non_mated": int(lk.found[~sample.mated].sum()),
                       **rates(_only(sample, lk.found), lk.found[lk.found], lk.correct[lk.found],
                               lk.scores[lk.found], thresholds)},
    }


def _only(sample: Sample, keep: np.ndarray) -> Sample:
    return Sample([p for p, k in zip(sample.probes, keep, strict=True) if k], sample.mated[keep],
                  sample.landmarks[keep], sample.centres[keep])


def thresholds_for(stack: VisionStack, gallery_size: int) -> tuple[dict[str, float], dict[str, Any]]:
    """The embedder's calibrated thresholds at each FPIR for this gallery size, and where they come from."""
    name = stack.embedder.spec.name
    policy = load_policy(MatchConfig(), stack.manifest.folder, name, stack.embedder_sha256)
    if policy.calibration is None:
        raise EdgeError(f"no calibration table for {name}: run `edge eval calibrate --lfw DIR --embedder {name}`")
    values = {rate_key(f): round(policy.calibration.threshold_at(gallery_size, f), 4) for f in FPIRS}
    about = {"table": calibration_path(stack.manifest.folder, name).name, "gallery_size": gallery_size, **values,
             "device_default": policy.for_gallery(gallery_size).value}
    return values, about


@dataclass(frozen=True)
class CameraSetup:
    """What both camera studies (this and edge.evaluation.quality_eval) start from: the gate resolved for the
    embedder, the gallery enrolled as the device enrolls (and who failed), and the calibrated thresholds."""

    quality: QualityConfig
    gallery: Gallery
    failed: dict[str, str]
    thresholds: dict[str, float]
    about: dict[str, Any]


def camera_setup(cache: EmbedCache, protocol: Protocol, quality: QualityConfig | None) -> CameraSetup:
    quality = (quality or QualityConfig()).for_embedder(cache.stack.embedder.spec.quality_gate)
    gallery, failed = enroll(cache, protocol, "enroll")
    if gallery.size == 0:
        raise EdgeError("no gallery photo had a usable face: nobody could be enrolled")
    thresholds, about = thresholds_for(cache.stack, gallery.size)
    return CameraSetup(quality, gallery, failed, thresholds, about)


def resolution_report(cache: EmbedCache, protocol: Protocol, conditions: list[Condition], per_class: int = PER_CLASS,
                      seed: int = 0, quality: QualityConfig | None = None, gallery_note: str = "",
                      on_level: Any = None) -> dict[str, Any]:
    start = time.perf_counter()
    stack = cache.stack
    setup = camera_setup(cache, protocol, quality)
    quality, gallery, failed, thresholds, about = (setup.quality, setup.gallery, setup.failed, setup.thresholds,
                                                   setup.about)
    min_eye = max(c.eye_distance for c in conditions)
    sample = draw(cache, protocol, per_class, seed, min_eye)
    full = cache.embed([p.path for p in sample.probes], desc="probe photos")
    ids, best = best_matches(gallery, full.embeddings)
    full_correct = np.array([ok and m and i == p.identity for ok, m, i, p in
                             zip(full.ok, sample.mated, ids, sample.probes, strict=True)], bool)
    levels = []
    with progress(total=len(conditions) * len(sample), desc=f"frames ({cache.embedder})", unit="frame",
                  enabled=cache.progress) as bar:
        for cond in conditions:
            row = level_report(sample, cond, look(stack, gallery, sample, cond, quality, bar), thresholds)
            levels.append(row)
            if on_level is not None:
                on_level(row)
    return {
        "protocol": PROTOCOL,
        "gallery": gallery_note,
        "embedder": cache.embedder,
        "embedder_sha256": stack.embedder_sha256,
        "detector_long_side": stack.detector.long_side or "full",
        "detector_refine": stack.detector.refines,
        "frame": f"{FRAME_W}x{FRAME_H}",
        "quality_gate": quality.model_dump(),
        "gallery_size": gallery.size,
        "gallery_failed": dict(sorted(failed.items())),
        "thresholds": about,
        "sample": {"seed": seed, "mated": int(sample.mated.sum()), "non_mated": int((~sample.mated).sum()),
                   "min_photo_eye_distance": min_eye},
        "full_photo": {"what": "the same probes as LFW photos (no camera, no gate), as `edge eval identify` sees them",
                       "rank1": _ratio(full_correct[sample.mated]),
                       **rates(sample, full.ok, full_correct, best, thresholds)},
        "levels": levels,
        "seconds": round(time.perf_counter() - start, 1),
    }


def lfw_protocol(lfw: Path) -> Protocol:
    """`edge eval identify --min-images 2 --exclude-known-label-noise` on this folder."""
    return build_protocol(lfw, lfw, 2, True)
