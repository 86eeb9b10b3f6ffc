"""`edge eval quality`: error-versus-reject curves of each factor of the quality gate, through the device's path.

The probes are `edge eval resolution`'s (LFW 1:N, gallery enrolled as the device enrolls, a seeded sample of mated
and non-mated photos), but each is shown once under its own seeded camera condition so that the factors vary
together as they do in the street: eye distance log-uniform from `SIZE_RANGE` (never above the photo's own),
Gaussian blur (none for 40 %, else sigma uniform up to `MAX_BLUR` frame pixels), and a dark frame for 60 % (the
whole 1280x720 frame times a gain uniform in `GAIN_RANGE`, rounded to 8 bits as a sensor would); LFW's own pose
spread gives yaw and pitch. Every face the detector finds (at its configured input size) is assessed with the
device's `assess` and embedded whatever the gate says, then matched. A face not found has no quality to judge and
is counted apart (`sample.found`).
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.capture.opencv import read_image
from edge.config.quality import QualityConfig
from edge.errors import EdgeError
from edge.evaluation import edc as edc_module
from edge.evaluation.edc import MAX_REJECT, choose, edc, ideal, kept_by
from edge.evaluation.embedcache import EmbedCache
from edge.evaluation.identify import Protocol, best_matches
from edge.evaluation.resolution import (
    FRAME_H,
    FRAME_W,
    Condition,
    Sample,
    camera_setup,
    draw,
    eye_distance,
    find,
    rate_key,
    render,
)
from edge.runtime.progress import progress
from edge.vision.quality import Quality, assess, face_size
from edge.vision.stack import VisionStack

SIZE_RANGE = (14.0, 48.0)  # eye distance in the frame, pixels (log-uniform)
MIN_PHOTO_EYE = 30.0  # photos whose face is smaller are not sampled (LFW: 99 % are larger)
MAX_BLUR = 1.5
GAIN_RANGE = (0.12, 1.0)
PER_CLASS = 1000
RULE_AT = rate_key(1e-3)  # the device's default threshold: the one whose FNIR the limits are chosen on


@dataclass(frozen=True)
class Factor:
    """One measure the gate limits: how to read it from a `Quality`, which way is better, its `QualityConfig`
    key (None: not gated), and the candidate limits tabled."""

    name: str
    unit: str
    read: Callable[[Quality, np.ndarray], float]
    higher_is_better: bool
    key: str | None
    candidates: tuple[float, ...]


FACTORS = (
    Factor("size", "px between the eyes (or eye-to-mouth scaled)", lambda q, lm: face_size(lm), True,
           "min_eye_distance", (12, 14, 16, 18, 20, 22, 24, 28, 32)),
    Factor("sharpness", "Laplacian variance, aligned 112 px crop", lambda q, lm: q.sharpness, True, "min_sharpness",
           (5, 10, 15, 20, 25, 30, 40, 60)),
    Factor("yaw", "nose offset / eye distance", lambda q, lm: q.yaw, False, "max_yaw",
           (0.6, 0.45, 0.35, 0.3, 0.25, 0.2, 0.15)),
    Factor("pitch", "nose height off the frontal", lambda q, lm: q.pitch, False, "max_pitch",
           (0.6, 0.45, 0.35, 0.3, 0.25, 0.2, 0.15)),
    Factor("brightness", "mean grey of the aligned crop", lambda q, lm: q.brightness, True, "min_brightness",
           (10, 20, 30, 40, 50, 60, 80)),
    Factor("detection", "detector confidence", lambda q, lm: q.detection, True, "min_score",
           (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)),
    Factor("score", "combined quality score (not gated; weighs a track's looks)", lambda q, lm: q.score, True, None,
           (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)),
)


@dataclass(frozen=True)
class Shot:
    """How one probe is shown to the camera."""

    cond: Condition
    gain: float


def shots(sample_eyes: np.ndarray, seed: int) -> list[Shot]:
    """One seeded condition per probe (a separate stream from the sample's, so the sample never depends on it)."""
    rng = np.random.default_rng([seed, 1])
    out = []
    for photo_eye in sample_eyes:
        size = float(np.exp(rng.uniform(*np.log(SIZE_RANGE))))
        blur = 0.0 if rng.random() < 0.4 else float(rng.uniform(0, MAX_BLUR))
        gain = 1.0 if rng.random() < 0.4 else float(rng.uniform(*GAIN_RANGE))
        out.append(Shot(Condition(round(min(size, photo_eye), 2), round(blur, 3)), round(gain, 3)))
    return out


def darken(frame: np.ndarray, gain: float) -> np.ndarray:
    """A dim scene: every pixel times the gain, back to 8 bits (the detail a dark exposure loses is lost here too)."""
    return frame if gain == 1 else np.clip(np.round(frame.astype(np.float32) * gain), 0, 255).astype(np.uint8)


@dataclass
class Seen:
    """Per probe: found or not; each factor's value (nan where not found); whether its gate passed it."""

    found: np.ndarray
    values: dict[str, np.ndarray]
    passed: np.ndarray
    crops: list[np.ndarray]


def show(stack: VisionStack, sample: Sample, plan: list[Shot], quality: QualityConfig, bar: Any = None) -> Seen:
    """Each probe in its own frame through the detector and `assess`, as `Pipeline` does; every face found is
    kept for the embedder whatever the gate says (the curves need the faces the gate would refuse)."""
    n = len(sample)
    found, passed = np.zeros(n, bool), np.zeros(n, bool)
    values = {f.name: np.full(n, np.nan) for f in FACTORS}
    crops = []
    for i, probe in enumerate(sample.probes):
        frame, expected = render(read_image(probe.path), sample.landmarks[i], plan[i].cond, sample.centres[i])
        frame = darken(frame, plan[i].gain)
        det = stack.detector(frame)
        j = find(det, expected, plan[i].cond.eye_distance)
        if bar is not None:
            bar.update()
        if j is None:
            continue
        lm = det.landmarks[j]
        crop = stack.embedder.crops(frame, lm[None])[0]
        q = assess(crop, lm, float(det.scores[j]), quality)
        found[i], passed[i] = True, q.ok
        for f in FACTORS:
            values[f.name][i] = f.read(q, lm)
        crops.append(crop)
    return Seen(found, values, passed, crops)


def factor_report(f: Factor, v: np.ndarray, miss: dict[str, np.ndarray], alarm: dict[str, np.ndarray],
                  v_non: np.ndarray, current: float | None) -> dict[str, Any]:
    """One factor: its curve at each threshold, its table of candidate limits, and the limit the rule picks."""
    rule = choose(v, miss[RULE_AT], f.higher_is_better)
    table = []
    for limit in sorted(set(f.candidates) | ({current} if current is not None else set()),
                        reverse=not f.higher_is_better):
        kept, kept_non = kept_by(v, limit, f.higher_is_better), kept_by(v_non, limit, f.higher_is_better)
        table.append({"limit": limit, "rejected": _ratio(~kept),
                      **{k: {"fnir": _ratio(e[kept]), "fpir": _ratio(alarm[k][kept_non])} for k, e in miss.items()}})
    curves = {}
    for k, e in miss.items():
        points = edc(v, e, f.higher_is_better)
        curves[k] = [{"limit": round(p.limit, 4), "rejected": round(p.rejected, 4), "fnir": _round(p.fnir),
                      "fpir": _ratio(alarm[k][kept_by(v_non, p.limit, f.higher_is_better)])} for p in points]
    return {
        "unit": f.unit,
        "better": "higher" if f.higher_is_better else "lower",
        "config_key": f.key,
        "current_limit": current,
        "median": _round(float(np.median(v))) if len(v) else None,
        "curves": curves,
        "table": table,
        "rule": {"limit": _round(rule.limit), "rejected": round(rule.rejected, 4), "fnir_kept": _round(rule.fnir_kept),
                 "predicts_error": rule.predicts_error, "gain": rule.gain},
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _ratio(values: np.ndarray) -> float | None:
    return round(float(values.mean()), 4) if len(values) else None


def quality_report(cache: EmbedCache, protocol: Protocol, per_class: int = PER_CLASS, seed: int = 0,
                   quality: QualityConfig | None = None, gallery_note: str = "") -> dict[str, Any]:
    start = time.perf_counter()
    stack = cache.stack
    setup = camera_setup(cache, protocol, quality)
    quality, gallery, failed, thresholds, about = (setup.quality, setup.gallery, setup.failed, setup.thresholds,
                                                   setup.about)
    sample = draw(cache, protocol, per_class, seed, MIN_PHOTO_EYE)
    plan = shots(np.array([eye_distance(lm) for lm in sample.landmarks]), seed)
    with progress(total=len(sample), desc=f"frames ({cache.embedder})", unit="frame", enabled=cache.progress) as bar:
        seen = show(stack, sample, plan, quality, bar)
    scores, correct = np.full(len(sample), -np.inf), np.zeros(len(sample), bool)
    if seen.crops:
        where = np.flatnonzero(seen.found)
        ids, best = best_matches(gallery, stack.embedder.embed(np.stack(seen.crops)))
        scores[where] = best
        correct[where] = [sample.mated[i] and ids[k] == sample.probes[i].identity for k, i in enumerate(where)]
    mated, non = seen.found & sample.mated, seen.found & ~sample.mated
    if not mated.any():
        raise EdgeError("the detector found none of the mated probes: no curve to draw")
    miss = {k: ~(correct & (scores >= t))[mated] for k, t in thresholds.items()}
    alarm = {k: (scores >= t)[non] for k, t in thresholds.items()}
    gate = {"rejected": _ratio(~seen.passed[mated]),
            **{k: {"fnir": _ratio(miss[k][seen.passed[mated]]), "fpir": _ratio(alarm[k][seen.passed[non]])}
               for k in thresholds}}
    factors = {f.name: factor_report(f, seen.values[f.name][mated], miss, alarm, seen.values[f.name][non],
                                     getattr(quality, f.key) if f.key else None) for f in FACTORS}
    return {
        "protocol": " ".join((__doc__ or "").split("\n\n")[1].split()),
        "rule": _rule_text(),
        "gallery": gallery_note,
        "embedder": cache.embedder,
        "embedder_sha256": stack.embedder_sha256,
        "detector_long_side": stack.detector.long_side or "full",
        "detector_sha256": stack.detector_sha256,
        "frame": f"{FRAME_W}x{FRAME_H}",
        "conditions": {"eye_distance": SIZE_RANGE, "max_blur_sigma": MAX_BLUR, "gain": GAIN_RANGE,
                       "min_photo_eye_distance": MIN_PHOTO_EYE},
        "quality_config": quality.model_dump(),
        "gallery_size": gallery.size,
        "gallery_failed": dict(sorted(failed.items())),
        "thresholds": about,
        "rule_at": RULE_AT,
        "sample": {"seed": seed, "mated": int(sample.mated.sum()), "non_mated": int((~sample.mated).sum()),
                   "found_mated": int(mated.sum()), "found_non_mated": int(non.sum())},
        "all_found": {k: {"fnir": _ratio(miss[k]), "fpir": _ratio(alarm[k]),
                          "ideal_at_max_reject": round(ideal(float(miss[k].mean()), MAX_REJECT), 4)}
                      for k in thresholds},
        "gate_as_configured": gate,
        "factors": factors,
        "seconds": round(time.perf_counter() - start, 1),
    }


def _rule_text() -> str:
    """The rule the limits follow, as `edc.py` states it, for the report."""
    return " ".join((edc_module.__doc__ or "").split("\n\n")[2].split())


def markdown(report: dict[str, Any]) -> str:
    """Each factor's candidate limits: fraction of the mated faces found that each rejects, FNIR and FPIR of the
    faces kept at each threshold (in %); the configured limit in bold, the rule's pick after the table."""
    keys = [k for k in report["thresholds"] if k.startswith("fpir_")]
    head = "| factor | limit | rejected | " + " | ".join(f"FNIR / FPIR kept, {k}" for k in keys) + " |"
    lines = [head, "|" + "---|" * (3 + len(keys))]
    for name, f in report["factors"].items():
        for row in f["table"]:
            limit = f"**{row['limit']:g}**" if row["limit"] == f["current_limit"] else f"{row['limit']:g}"
            cells = " | ".join(f"{_pct(row[k]['fnir'])} / {_pct(row[k]['fpir'])}" for k in keys)
            lines.append(f"| {name} | {limit} | {_pct(row['rejected'])} | {cells} |")
    lines.append("")
    for name, f in report["factors"].items():
        r = f["rule"]
        pick = (f"{r['limit']:g} (rejects {_pct(r['rejected'])} %, FNIR kept {_pct(r['fnir_kept'])} %, "
                f"gain {r['gain']:.3f})"
                if r["predicts_error"] else "none: rejecting by this factor never gains 1 % in faces kept per FNIR "
                                            "(does not predict error here)")
        lines.append(f"- {name}: rule's limit {pick}")
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"

