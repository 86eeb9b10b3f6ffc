"""LFW's official protocol: pairs.txt parsing and the 10-fold threshold selection.

pairs.txt (LFW README, section 3c): a header line `<folds> <pairs per class>`, then for each fold that many
matched pairs (`name n1 n2`) followed by as many mismatched pairs (`name1 n1 name2 n2`).
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.errors import EdgeError

# LFW single-image "people" who are in fact people with 2+ images under another spelling, or a mislabelled
# photo of one: as non-mated probes in 1:N they are true matches and would count as false alarms.
KNOWN_LABEL_NOISE = (
    "Sung_Hong_Choi", "Yingfan_Wang", "Hasan_Wirayuda", "Wang_Nan", "Carlos_Ruckauf_0001", "Morgan_Hentzen",
    "Shavon_Earp",
)


@dataclass(frozen=True)
class Pair:
    """Two images of one person (`same`) or of two people, and the fold the pair belongs to."""

    a: Path
    b: Path
    same: bool
    fold: int


def image_path(lfw_dir: Path, name: str, number: str) -> Path:
    return lfw_dir / name / f"{name}_{int(number):04d}.jpg"


def parse_pairs(pairs_file: Path, lfw_dir: Path, per_class: int | None = None) -> list[Pair]:
    """The pairs of `pairs_file` resolved against `lfw_dir`.

    `per_class` keeps only the first that many matched and mismatched pairs of each fold (a quick slice that
    still has both classes in every fold).

    Every referenced image must exist: a missing one means the wrong folder (or an incomplete copy) and
    would silently change the protocol.
    """
    try:
        lines = [ln.split() for ln in pairs_file.read_text().splitlines() if ln.strip()]
    except OSError as exc:
        raise EdgeError(f"cannot read pairs file {pairs_file}: {exc.strerror}; give LFW's pairs.txt") from exc
    if not lines or len(lines[0]) != 2 or not all(v.isdigit() for v in lines[0]):
        raise EdgeError(f"{pairs_file}: first line must be '<folds> <pairs per class>' (LFW pairs.txt format)")
    folds, n = int(lines[0][0]), int(lines[0][1])
    body = lines[1:]
    if len(body) != folds * n * 2:
        raise EdgeError(f"{pairs_file}: header promises {folds} folds x {2 * n} pairs, found {len(body)} pair lines")
    pairs = []
    for i, fields in enumerate(body):
        fold, same = i // (2 * n), (i % (2 * n)) < n
        if per_class is not None and i % n >= per_class:
            continue
        if same and len(fields) == 3:
            a, b = image_path(lfw_dir, fields[0], fields[1]), image_path(lfw_dir, fields[0], fields[2])
        elif not same and len(fields) == 4:
            a, b = image_path(lfw_dir, fields[0], fields[1]), image_path(lfw_dir, fields[2], fields[3])
        else:
            kind = "matched (name n1 n2)" if same else "mismatched (name1 n1 name2 n2)"
            raise EdgeError(f"{pairs_file}: line {i + 2} should be a {kind} pair, got {' '.join(fields)!r}")
        pairs.append(Pair(a, b, same, fold))
    missing = sorted({str(p) for pair in pairs for p in (pair.a, pair.b) if not p.is_file()})
    if missing:
        raise EdgeError(f"{len(missing)} images named in {pairs_file} are not under {lfw_dir} (first: {missing[0]}); "
                        "give the LFW folder holding Name/Name_NNNN.jpg")
    return pairs


@dataclass(frozen=True)
class FoldResult:
    """Per fold: the threshold chosen on the other folds and the accuracy it gives on this one."""

    thresholds: np.ndarray
    accuracies: np.ndarray

    @property
    def mean(self) -> float:
        return float(self.accuracies.mean())

    @property
    def std(self) -> float:
        return float(self.accuracies.std())


def best_threshold(scores: np.ndarray, same: np.ndarray) -> float:
    """The threshold (accept when score >= it) with the best accuracy on these pairs.

    Candidates are midpoints between consecutive distinct scores, plus one below and one above all of them;
    among equally accurate cuts the first (lowest) wins, so the choice is deterministic.
    """
    order = np.argsort(scores, kind="stable")
    s, y = scores[order], same[order].astype(bool)
    distinct = np.r_[np.flatnonzero(np.diff(s) > 0) + 1, len(s)]  # cut positions between distinct values
    cuts = np.r_[0, distinct]
    # accuracy when everything before cut c is rejected and the rest accepted
    neg_below = np.r_[0, np.cumsum(~y)][cuts]
    pos_above = y.sum() - np.r_[0, np.cumsum(y)][cuts]
    c = int(cuts[int(np.argmax(neg_below + pos_above))])
    if c == 0:
        return float(s[0] - 1e-6)
    if c == len(s):
        return float(s[-1] + 1e-6)
    return float((s[c - 1] + s[c]) / 2)


def ten_fold(scores: np.ndarray, same: np.ndarray, folds: np.ndarray) -> FoldResult:
    """LFW's protocol: for each fold, pick the threshold on the others and measure accuracy on it."""
    ids = np.unique(folds)
    if len(ids) < 2:
        raise EdgeError("the 10-fold protocol needs pairs from at least two folds; use more pairs")
    thresholds, accuracies = [], []
    for f in ids:
        test = folds == f
        t = best_threshold(scores[~test], same[~test])
        thresholds.append(t)
        accuracies.append(float(((scores[test] >= t) == same[test]).mean()))
    return FoldResult(np.array(thresholds), np.array(accuracies))
