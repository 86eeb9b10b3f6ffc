"""`edge eval stream`'s run: enrol the list, walk everyone through generated video, score the device's pipeline.

The pipeline is built as `edge run` builds it (the [quality], [track] and [match] defaults, the detector's stride,
the threshold the embedder's calibration gives for the list's size); after each detection round the run notes
which tracks were seen where and what each embedding's best candidate was, so that scoring and the threshold
curve need nothing else from the pipeline.
"""

import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.capture.base import Frame
from edge.capture.opencv import read_image
from edge.config.match import MatchConfig
from edge.config.quality import QualityConfig
from edge.config.track import TrackConfig
from edge.errors import ConfigError
from edge.evaluation.stream_scene import FRAME_H, FRAME_W, Profile, Scene, Walker
from edge.evaluation.stream_score import CrossingTruth, Look, Raised, Sighting, assign, curve, decision_scores, score
from edge.pipeline import Pipeline
from edge.runtime.progress import progress
from edge.track.tracker import Track
from edge.vision.detect import Detections
from edge.vision.enroll import Enroller
from edge.vision.stack import VisionStack
from edge.watchlist.calibration import load_policy
from edge.watchlist.match import Gallery
from edge.watchlist.photos import gallery_from_photos, person_photos

LISTED_SHARE = 0.5  # of the crossings, at most: the rest are passers-by
CURVE = np.round(np.arange(0.10, 0.901, 0.01), 2)
BACKGROUND_BLUR = 3.0  # sigma (pixels): a scene slightly out of focus behind the walkers
SMUDGE_BLUR = 25.0  # sigma (pixels) over the background's own faces


@dataclass(frozen=True)
class Cast:
    """Who walks: the enrolled list's people (shown by another of their photos) and the passers-by."""

    gallery: Gallery
    walkers: list[Walker]
    not_enrolled: list[str]


def background(data_root: Path, people: Path, detector: Callable[[np.ndarray], Detections]) -> tuple[np.ndarray, str]:
    """A real scene to walk across: the demo clip's first frame, else a photo from `people`; slightly out of focus,
    with any face the detector finds in it smudged away (a face on the background would be a ghost track)."""
    clip = data_root / "demo" / "short_hamilton_clip.mp4"
    image, what = None, ""
    if clip.is_file():
        cap = cv2.VideoCapture(str(clip))
        _, image = cap.read()
        cap.release()
        what = f"{clip.name}, frame 0"
    if image is None:
        photo = next(p for _, photos in person_photos(people) for p in photos)
        image, what = read_image(photo), photo.name
    image = cv2.GaussianBlur(cv2.resize(image, (FRAME_W, FRAME_H), interpolation=cv2.INTER_LINEAR), (0, 0),
                             BACKGROUND_BLUR)
    smudged = cv2.GaussianBlur(image, (0, 0), SMUDGE_BLUR)
    for _ in range(3):
        found = detector(image)
        if len(found) == 0:
            break
        for x1, y1, x2, y2 in found.boxes:
            w, h = x2 - x1, y2 - y1
            ix1, iy1 = max(int(x1 - w / 2), 0), max(int(y1 - h / 2), 0)
            ix2, iy2 = min(int(x2 + w / 2), FRAME_W), min(int(y2 + h / 2), FRAME_H)
            image[iy1:iy2, ix1:ix2] = smudged[iy1:iy2, ix1:ix2]
    return image, f"{what}, blurred (sigma {BACKGROUND_BLUR:g} px), its own faces smudged"


def crossings_for(profile: Profile, seconds: float) -> int:
    """How many walk through in `seconds` so that about `profile.concurrent` are in view at once."""
    return max(2, round(seconds * profile.concurrent / profile.mean_seconds))


def cast(people: Path, listed: int, crossings: int, enroller: Enroller, seed: int) -> Cast:
    """The first `listed` people (sorted) with 2+ photos, enrolled from their first photo; up to half of the
    crossings are theirs (one each, by another photo, in seeded order), the rest are other people's."""
    everyone = list(person_photos(people))
    candidates = [(name, photos) for name, photos in everyone if len(photos) >= 2][:listed]
    if not candidates:
        raise ConfigError(f"{people}: no one with 2 or more photos to put on the list (one sub-folder per person)")
    gallery, _ = gallery_from_photos([(n, p[:1]) for n, p in candidates], enroller)
    enrolled = set(gallery.subject_ids)
    rng = np.random.default_rng(seed)
    on_list = [(n, p) for n, p in candidates if n in enrolled]
    chosen = {n for n, _ in candidates}
    others = [(n, p) for n, p in everyone if n not in chosen]
    rng.shuffle(on_list)  # type: ignore[arg-type]
    rng.shuffle(others)  # type: ignore[arg-type]
    n_listed = min(len(on_list), math.ceil(crossings * LISTED_SHARE))
    walkers = [Walker(n, p[int(rng.integers(1, len(p)))], n) for n, p in on_list[:n_listed]]
    walkers += [Walker(n, p[int(rng.integers(0, len(p)))], None) for n, p in others[:crossings - n_listed]]
    order = rng.permutation(len(walkers))
    return Cast(gallery, [walkers[i] for i in order], sorted(n for n, _ in candidates if n not in enrolled))


def looks_at(track: Track, frame: int, subject_ids: tuple[str, ...]) -> list[Look]:
    """The track's looks (embeddings) taken at `frame`, as the scorer replays them."""
    def named(index: int | None) -> str | None:
        return subject_ids[index] if index is not None else None

    return [Look(track.id, frame, named(ev.subject_index), ev.score, named(ev.pooled_subject), ev.pooled_score)
            for ev in track.evidence if ev.frame == frame]


def run_stream(stack: VisionStack, people: Path, profile: Profile, listed: int, seconds: float, seed: int,
               stride: int, scene_background: tuple[np.ndarray, str], show_progress: bool = True,
               track: TrackConfig | None = None) -> dict[str, Any]:
    """Everything `edge eval stream` reports, from one pass over `seconds` of generated video; `track`: the
    [track] settings (default: the device's)."""
    start = time.perf_counter()
    cast_ = cast(people, listed, crossings_for(profile, seconds), Enroller(stack), seed)
    spec = stack.embedder.spec
    policy = load_policy(MatchConfig(), stack.manifest.folder, spec.name, spec.sha256)
    threshold = policy.for_gallery(cast_.gallery.size)
    track_cfg = track or TrackConfig()
    pipeline = Pipeline(stack, cast_.gallery, threshold, QualityConfig(), track_cfg, stride)
    scene = Scene(cast_.walkers, scene_background[0], profile, seconds, seed)
    subject_ids = cast_.gallery.subject_ids
    sightings: list[Sighting] = []
    looks: list[Look] = []
    alerts: list[Raised] = []
    truth: dict[int, list[tuple[int, tuple[float, ...]]]] = {}
    busy = 0.0
    for i in progress(range(scene.frames), desc=f"stream ({profile.name})", unit="frame", enabled=show_progress):
        image, truths = scene.render(i)
        t0 = time.perf_counter()
        raised = pipeline.process(Frame(image, i, i / profile.fps))
        busy += time.perf_counter() - t0
        alerts += [Raised(a.track_id, i, a.subject_id, a.score) for a in raised]
        if i % stride:
            continue
        truth[i] = [(t.crossing, t.box) for t in truths]
        for track in pipeline.tracker.tracks.values():
            if track.missed == 0:
                sightings.append(Sighting(i, track.id, tuple(float(v) for v in track.box)))  # type: ignore[arg-type]
            looks += looks_at(track, i, subject_ids)
    pipeline.finish()
    crossings = [CrossingTruth(c.id, c.walker.subject_id, c.start) for c in scene.crossings]
    figures = score(crossings, sightings, truth, alerts, profile.fps)
    owner, _ = assign(sightings, truth)
    thresholds = np.union1d(CURVE, [threshold.value])
    return {
        **figures,
        "frames": scene.frames,
        "frames_per_second": round(scene.frames / busy, 2) if busy else None,
        "seconds_taken": round(time.perf_counter() - start, 1),
        "settings": {
            "people": str(people), "profile": profile.model_dump(), "listed": listed, "enrolled": cast_.gallery.size,
            "not_enrolled": cast_.not_enrolled, "seconds": seconds, "seed": seed,
            "frame_size": [FRAME_W, FRAME_H], "background": scene_background[1],
            "embedder": spec.name, "detector_long_side": stack.detector.long_side, "stride": stride,
            "runtimes": stack.runtimes(),
            "threshold": threshold.value, "threshold_mode": threshold.mode, "threshold_policy": threshold.policy,
            "fpir": threshold.fpir, "track": track_cfg.model_dump(), "quality": QualityConfig().model_dump(),
            "machine": f"{platform.machine()} {platform.processor() or platform.system()}, {os.cpu_count()} CPUs",
        },
        "curve": curve(crossings, owner, decision_scores(looks, track_cfg.min_evidence, track_cfg.decision),
                       thresholds),
        "counters": pipeline.counters.as_dict(),
    }

