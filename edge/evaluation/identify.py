"""1:N identification: a watchlist enrolled from one photo per person, searched by mated and non-mated probes.

A search is decided as the device decides it: `match` returns the best subject; a mated search is a hit
at threshold t when that subject is the probe's own and scores >= t (rank 1 and above threshold); a
non-mated search is a false alarm when the best score is >= t. FNIR and FPIR follow ISO/IEC 19795-1 and
NIST FRVT 1:N with a candidate list of one.
"""

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from edge.errors import EdgeError
from edge.evaluation.embedcache import EmbedCache
from edge.evaluation.lfw import KNOWN_LABEL_NOISE
from edge.evaluation.verify import threshold_at_rate
from edge.watchlist.match import Gallery, match
from edge.watchlist.photos import person_photos

Flip = Literal["none", "enroll", "both"]
FPIRS = (1e-2, 1e-3)
FLIP_NOTES = {"none": "no flip", "enroll": "gallery photos flip-summed (as the Enroller does), probes plain",
              "both": "gallery and probes flip-summed (flip-test)"}
FAILED_POLICY = ("a gallery photo with no face leaves its person unenrolled (their mated searches are then "
                 "misses); a mated probe with no face is a miss; a non-mated probe with no face is left out of "
                 "the non-mated count (it could neither alarm nor be shown not to)")
CHUNK = 2048


@dataclass(frozen=True)
class Probe:
    identity: str
    path: Path


@dataclass(frozen=True)
class Protocol:
    """Who is enrolled (from which photo), which probes are mated and which are not."""

    gallery: list[Probe]
    mated: list[Probe]
    non_mated: list[Probe]
    label_noise: list[Probe] = field(default_factory=list)  # non-mated probes known to be gallery people

    def subset(self, identities: set[str]) -> "Protocol":
        """The same probes against a gallery of only these people: the others' mated probes are dropped."""
        return Protocol([g for g in self.gallery if g.identity in identities],
                        [m for m in self.mated if m.identity in identities], self.non_mated, self.label_noise)


def is_label_noise(probe: Probe) -> bool:
    return probe.identity in KNOWN_LABEL_NOISE or probe.path.stem in KNOWN_LABEL_NOISE


def build_protocol(gallery_dir: Path, probes_dir: Path, min_images: int = 1,
                   exclude_label_noise: bool = False) -> Protocol:
    """Gallery: first photo (sorted) of each person in `gallery_dir` with at least `min_images` photos.

    Probes: every photo in `probes_dir`; a person in the gallery gives mated probes (never the enrolled
    photo itself), anyone else non-mated ones. With both folders LFW and `min_images=2`, the 1,680 people
    with 2+ images are enrolled and the 4,069 single-image people are the non-mated probes.
    """
    enrolled = {person: photos[0] for person, photos in person_photos(gallery_dir) if len(photos) >= min_images}
    if not enrolled:
        raise EdgeError(f"no person in {gallery_dir} has {min_images}+ photos: nobody to enroll; lower --min-images")
    enrolled_files = {p.resolve() for p in enrolled.values()}
    mated, non_mated, noise = [], [], []
    for person, photos in person_photos(probes_dir):
        for photo in photos:
            probe = Probe(person, photo)
            if person in enrolled:
                if photo.resolve() not in enrolled_files:
                    mated.append(probe)
            elif exclude_label_noise and is_label_noise(probe):
                noise.append(probe)
            else:
                non_mated.append(probe)
    gallery = [Probe(person, photo) for person, photo in enrolled.items()]
    return Protocol(gallery, mated, non_mated, noise)


@dataclass(frozen=True)
class Searches:
    """Rank-1 results: for mated probes, whether the best subject is the right one and its score."""

    mated_correct: np.ndarray  # (n_mated,) bool; False for probes with no face
    mated_scores: np.ndarray  # (n_mated,) best score; -inf for probes with no face
    non_mated_scores: np.ndarray  # (n_non_mated_with_face,)
    enrolled: int
    failed: dict[str, str]
    failed_non_mated: int

    def fnir(self, threshold: float) -> float:
        if len(self.mated_correct) == 0:
            return float("nan")
        return float(1.0 - (self.mated_correct & (self.mated_scores >= threshold)).mean())

    def fpir(self, threshold: float) -> float:
        return float((self.non_mated_scores >= threshold).mean()) if len(self.non_mated_scores) else float("nan")


def enroll(cache: EmbedCache, protocol: Protocol, flip: Flip) -> tuple[Gallery, dict[str, str]]:
    emb = cache.embed([g.path for g in protocol.gallery], flip=flip != "none", desc="enrolling")
    subjects = [(g.identity, g.identity, emb.embeddings[i][None]) for i, g in enumerate(protocol.gallery)
                if emb.ok[i]]
    return Gallery.from_subjects(subjects), emb.failed


def best_matches(gallery: Gallery, embeddings: np.ndarray) -> tuple[list[str | None], np.ndarray]:
    """Best subject id and score per probe, through the device's `match` (chunked to bound memory)."""
    ids: list[str | None] = []
    scores = np.full(len(embeddings), -np.inf)
    for start in range(0, len(embeddings), CHUNK):
        for i, res in enumerate(match(gallery, embeddings[start:start + CHUNK], now=0.0, k=2), start):
            if res.best is not None:
                ids.append(res.best.subject_id)
                scores[i] = res.best.score
            else:
                ids.append(None)
    return ids, scores


def search(cache: EmbedCache, protocol: Protocol, flip: Flip = "enroll") -> tuple[Searches, Gallery]:
    """Enroll the gallery, then search every probe against it."""
    gallery, failed = enroll(cache, protocol, flip)
    if gallery.size == 0:
        raise EdgeError("no gallery photo had a usable face: nobody could be enrolled")
    probe_flip = flip == "both"
    mated = cache.embed([p.path for p in protocol.mated], flip=probe_flip, desc="mated probes")
    ids, scores = best_matches(gallery, mated.embeddings)
    truth = [p.identity for p in protocol.mated]
    correct = np.array([ok and i == t for ok, i, t in zip(mated.ok, ids, truth, strict=True)], bool)
    mated_scores = np.where(mated.ok, scores, -np.inf)
    non = cache.embed([p.path for p in protocol.non_mated], flip=probe_flip, desc="non-mated probes")
    _, non_scores = best_matches(gallery, non.embeddings[non.ok])
    failed.update(mated.failed)
    failed.update(non.failed)
    return Searches(correct, mated_scores, non_scores, gallery.size, failed, int((~non.ok).sum())), gallery


def det_curve(s: Searches) -> tuple[np.ndarray, np.ndarray]:
    """(FPIR, FNIR) as the threshold sweeps the non-mated scores from strict to lax."""
    thresholds = np.unique(np.r_[s.non_mated_scores, s.mated_scores[np.isfinite(s.mated_scores)]])[::-1]
    hits = np.sort(s.mated_scores[s.mated_correct])
    non = np.sort(s.non_mated_scores)
    fnir = 1.0 - (len(hits) - np.searchsorted(hits, thresholds, side="left")) / max(len(s.mated_scores), 1)
    fpir = (len(non) - np.searchsorted(non, thresholds, side="left")) / max(len(non), 1)
    return fpir, fnir


def _rate_key(prefix: str, rate: float) -> str:
    return f"{prefix}_{rate:.0e}".replace("e-0", "e-")


def operating_points(s: Searches, fpirs: tuple[float, ...] = FPIRS) -> dict[str, Any]:
    """rank1, and FNIR with its threshold at each FPIR (null where too few non-mated probes measure it)."""
    out: dict[str, Any] = {
        "rank1": round(float(s.mated_correct.mean()), 5) if len(s.mated_correct) else None,
    }
    for fpir in fpirs:
        t = threshold_at_rate(s.non_mated_scores, fpir)
        out[_rate_key("fnir_at_fpir", fpir)] = None if t is None else round(s.fnir(t), 5)
        out[_rate_key("threshold_at_fpir", fpir)] = None if t is None else round(t, 4)
    return out


def identify_report(cache: EmbedCache, protocol: Protocol, flip: Flip = "enroll",
                    gallery_note: str = "") -> tuple[dict[str, Any], Searches]:
    start = time.perf_counter()
    s, gallery = search(cache, protocol, flip)
    report: dict[str, Any] = {
        "protocol": "1:N, rank 1 and threshold: a mated search is a hit when its own person is the best candidate "
                    "at or above the threshold; a non-mated search is a false alarm when any candidate is",
        "gallery": gallery_note,
        "embedder": cache.embedder,
        "embedder_sha256": cache.stack.embedder_sha256,
        "detector_long_side": cache.stack.detector.long_side or "full",
        "flip": FLIP_NOTES[flip],
        "gallery_size": s.enrolled,
        "mated": len(protocol.mated),
        "non_mated": len(s.non_mated_scores),
        **operating_points(s),
    }
    if protocol.label_noise:
        noisy = cache.embed([p.path for p in protocol.label_noise], flip=flip == "both", desc="label noise")
        _, noise_scores = best_matches(gallery, noisy.embeddings[noisy.ok])
        with_noise = Searches(s.mated_correct, s.mated_scores, np.r_[s.non_mated_scores, noise_scores],
                              s.enrolled, s.failed, s.failed_non_mated)
        report["known_label_noise"] = {
            "excluded_from_non_mated": [p.path.name for p in protocol.label_noise],
            "why": "single-image LFW people who are gallery people under another spelling or a mislabelled photo",
            "with_them_included": {"non_mated": len(with_noise.non_mated_scores), **operating_points(with_noise)},
        }
    report["failed_images"] = {
        "count": len(s.failed),
        "non_mated_left_out": s.failed_non_mated,
        "images": dict(sorted(s.failed.items())),
        "counted_as": FAILED_POLICY,
    }
    report["seconds"] = round(time.perf_counter() - start, 1)
    return report, s
