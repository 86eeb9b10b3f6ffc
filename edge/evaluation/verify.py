"""1:1 verification on LFW pairs: 10-fold accuracy, TAR at fixed FAR, AUC.

Each pair is scored as the device scores a probe against a one-person watchlist: `Gallery` of the first
image, `match` of the second.
"""

import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edge.config.match import MatchConfig
from edge.errors import ConfigError
from edge.evaluation.embedcache import EmbedCache
from edge.evaluation.lfw import Pair, ten_fold
from edge.watchlist.calibration import load_policy
from edge.watchlist.match import Gallery, match

FAILED_SCORE = -1.0
FAILED_POLICY = ("a pair with an image where no face was found scores -1 (the lowest cosine): it is rejected at "
                 "every threshold, so a matched pair counts as an error and a mismatched pair as correct")
FARS = (1e-2, 1e-3)


@dataclass(frozen=True)
class PairScores:
    scores: np.ndarray
    same: np.ndarray
    folds: np.ndarray
    failed: dict[str, str]


def score_pairs(cache: EmbedCache, pairs: list[Pair], flip: bool = False) -> PairScores:
    """Cosine of every pair through Gallery/match; pairs with a failed image get FAILED_SCORE."""
    images = list(dict.fromkeys(p for pair in pairs for p in (pair.a, pair.b)))
    emb = cache.embed(images, flip=flip, desc="verify")
    row = {str(p): i for i, p in enumerate(images)}
    scores = np.full(len(pairs), FAILED_SCORE)
    for n, pair in enumerate(pairs):
        a, b = row[str(pair.a)], row[str(pair.b)]
        if emb.ok[a] and emb.ok[b]:
            gallery = Gallery.from_subjects([("a", "a", emb.embeddings[a][None])])
            best = match(gallery, emb.embeddings[b][None], now=0.0, k=1)[0].best
            assert best is not None  # a one-subject gallery with no expiry always answers
            scores[n] = best.score
    return PairScores(scores, np.array([p.same for p in pairs]), np.array([p.fold for p in pairs]), emb.failed)


def threshold_at_rate(negatives: np.ndarray, rate: float) -> float | None:
    """Lowest threshold (accept when score >= it) at which at most `rate` of these negatives are accepted.

    None when there are too few negatives to measure that rate (fewer than 1 / rate).
    """
    n = len(negatives)
    if n == 0 or n * rate < 1:
        return None
    allowed = math.floor(n * rate + 1e-9)
    s = np.sort(negatives)[::-1]
    return float(np.nextafter(s[allowed], np.inf))


@dataclass(frozen=True)
class OperatingPoint:
    """A threshold the device uses, and where it falls on this ROC: the share of these pairs it accepts."""

    label: str
    threshold: float
    far: float
    tar: float


def operating_points(cache: EmbedCache, ps: PairScores) -> list[OperatingPoint]:
    """The device's thresholds for this embedder with the default [match] settings (its calibration table):
    the floor, the fixed default, and the constant-FPIR threshold at each calibrated list size. ConfigError
    when the embedder has no usable table."""
    policy = load_policy(MatchConfig(), cache.stack.manifest.folder, cache.embedder, cache.stack.embedder_sha256)
    thresholds = [("floor", policy.floor), ("fixed default", policy.threshold)]
    sizes = sorted({p.gallery_size for p in policy.calibration.points})
    thresholds += [(f"FPIR {policy.cfg.target_fpir:g} at {n} people", policy.for_gallery(n).value) for n in sizes]
    negatives, positives = ps.scores[~ps.same], ps.scores[ps.same]
    return [OperatingPoint(label, round(t, 4), float((negatives >= t).mean()), float((positives >= t).mean()))
            for label, t in thresholds]


def roc_curve(scores: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(FAR, TAR) at every distinct threshold, from accept-nothing to accept-everything."""
    order = np.argsort(-scores, kind="stable")
    y = same[order]
    tar = np.r_[0, np.cumsum(y)] / max(y.sum(), 1)
    far = np.r_[0, np.cumsum(~y)] / max((~y).sum(), 1)
    return far, tar


def auc(scores: np.ndarray, same: np.ndarray) -> float:
    """Probability that a matched pair outscores a mismatched one (ties count half): the ROC's area."""
    pos, neg = scores[same], scores[~same]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    ranks = _ranks(np.r_[pos, neg])
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def _ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks with ties averaged."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(1, len(x) + 1)
    _, inverse = np.unique(x, return_inverse=True)
    sums = np.bincount(inverse, weights=ranks)
    counts = np.bincount(inverse)
    return (sums / counts)[inverse]


def verify_report(cache: EmbedCache, pairs: list[Pair], flip: bool = False) -> tuple[dict[str, Any], PairScores]:
    """The JSON report of a verification run and the raw scores (for the ROC plot)."""
    start = time.perf_counter()
    ps = score_pairs(cache, pairs, flip)
    folds = ten_fold(ps.scores, ps.same, ps.folds)
    report: dict[str, Any] = {
        "protocol": f"LFW pairs, {len(np.unique(ps.folds))}-fold: threshold chosen on the other folds, "
                    "accuracy on the held-out fold",
        "embedder": cache.embedder,
        "embedder_sha256": cache.stack.embedder_sha256,
        "detector_long_side": cache.stack.detector.long_side or "full",
        "flip": "both" if flip else "none",
        "pairs": len(pairs),
        "matched_pairs": int(ps.same.sum()),
        "mismatched_pairs": int((~ps.same).sum()),
        "accuracy_mean": round(folds.mean, 5),
        "accuracy_std": round(folds.std, 5),
        "threshold": round(float(folds.thresholds.mean()), 4),
        "fold_thresholds": [round(float(t), 4) for t in folds.thresholds],
        "fold_accuracies": [round(float(a), 4) for a in folds.accuracies],
        "auc": round(auc(ps.scores, ps.same), 6),
    }
    negatives, positives = ps.scores[~ps.same], ps.scores[ps.same]
    for far in FARS:
        t = threshold_at_rate(negatives, far)
        report[f"tar_at_far_{far:.0e}".replace("e-0", "e-")] = None if t is None else round(
            float((positives >= t).mean()), 5)
        report[f"threshold_at_far_{far:.0e}".replace("e-0", "e-")] = None if t is None else round(t, 4)
    failed_pairs = sum(1 for p in pairs if str(p.a) in ps.failed or str(p.b) in ps.failed)
    report["failed_images"] = {
        "count": len(ps.failed),
        "pairs_affected": failed_pairs,
        "images": {k: v for k, v in sorted(ps.failed.items())},
        "counted_as": FAILED_POLICY,
    }
    try:
        report["operating_points"] = [asdict(p) for p in operating_points(cache, ps)]
    except ConfigError as exc:
        report["operating_points"] = None
        report["operating_points_missing"] = str(exc)
    report["seconds"] = round(time.perf_counter() - start, 1)
    return report, ps
