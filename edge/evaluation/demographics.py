"""Error rates per demographic group (NIST IR 8280's question), measured on the device's own path.

False alarms: UTKFace adults (no identities, so passers-by only) searched against a non-celebrity watchlist,
the 102 people of the Face Research Lab London Set enrolled from their neutral photo as the device enrolls
(flip-summed). A celebrity list would be wrong here: UTKFace holds celebrity photos, and their "false" alarms
against LFW are true matches. Misses: the London people's smiling photo searched against that list, and LFW
people with a race label searched against LFW's 1,680-person gallery (as `edge eval identify`).

The sources label race differently; each label is mapped onto UTKFace's five groups (RACE_MAP), so that one
group name means one thing across the report and the calibration table.
"""

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from edge.errors import EdgeError
from edge.evaluation.embedcache import EmbedCache
from edge.evaluation.identify import best_matches, build_protocol
from edge.watchlist.demographics import GENDERS, RACES, Demographics, GroupCurve, GroupRate
from edge.watchlist.match import Gallery

GRID = tuple(round(0.20 + 0.01 * i, 2) for i in range(61))  # 0.20 .. 0.80
MIN_CELL = 50  # race x gender cells with fewer searches are left out (their intervals say nothing)
RACE_MAP = {
    "white": "White", "caucasian": "White",
    "black": "Black", "african": "Black",
    "asian": "Asian", "east_asian": "Asian", "eastasian": "Asian",
    "indian": "Indian", "asianindian": "Indian",
    "others": "Others", "west_asian": "Others", "mixed": "Others", "latino": "Others", "pacificislander": "Others",
    "other": "Others",
}
RACE_MAP_NOTE = ("race labels mapped onto UTKFace's five groups: London white, LFW caucasian -> White; black, african "
                 "-> Black; east_asian, eastasian -> Asian; asianindian -> Indian; west_asian, mixed, latino, "
                 "pacificislander, other and mixed labels (east_asian/white) -> Others")


@dataclass(frozen=True)
class Labelled:
    """A photo with its person (None for UTKFace: unknown) and the labels its source gives."""

    path: Path
    identity: str | None
    race: str
    gender: str | None


@dataclass(frozen=True)
class Searched:
    """Best score per search, whether the best candidate was the right person (mated only), and who searched."""

    data: str
    people: list[Labelled]
    scores: np.ndarray  # -inf where no face was found
    correct: np.ndarray | None  # mated searches only
    no_face: int


def _race(label: str, where: str) -> str:
    label = label.strip().lower()
    race = "Others" if "/" in label else RACE_MAP.get(label)  # a mixed label such as east_asian/white
    if race is None:
        raise EdgeError(f"{where}: race label {label!r} is not one this evaluation knows "
                        f"({', '.join(sorted(RACE_MAP))})")
    return race


def _gender(label: str, where: str) -> str:
    if label not in GENDERS:
        raise EdgeError(f"{where}: gender label {label!r} is not one this evaluation knows ({', '.join(GENDERS)})")
    return label


def _rows(path: Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    """The rows of a labels file that has these columns and at least one row."""
    if not path.is_file():
        raise EdgeError(f"{path} is missing: point --demographics at the demographics folder of the shared data "
                        "(see ../shared/data/demographics/README.md)")
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise EdgeError(f"{path} is not a UTF-8 CSV file ({exc}): save it as UTF-8 CSV") from exc
    missing = [c for c in columns if c not in (reader.fieldnames or ())]
    if missing or not rows:
        raise EdgeError(f"{path}: expected a header with {', '.join(columns)} and one row per photo"
                        + (f"; missing column(s) {', '.join(missing)}" if missing else "; it has no rows"))
    short = next((n for n, r in enumerate(rows, 2) if any(r.get(c) is None for c in columns)), None)
    if short is not None:
        raise EdgeError(f"{path}, line {short}: fewer values than the header has columns")
    return rows


def _photo(folder: Path, name: str, labels: Path) -> Path:
    """A photo a labels file lists; one that is not there is an error, never a face silently not found."""
    path = folder / name
    if not path.is_file():
        raise EdgeError(f"{labels} lists {name}, which is not in {folder}: restore the photo or remove its row")
    return path


def utkface(root: Path) -> list[Labelled]:
    labels = root / "utkface" / "labels.csv"
    return [Labelled(_photo(root / "utkface" / "images", r["file"], labels), None, _race(r["race"], str(labels)),
                     _gender(r["gender"], str(labels)))
            for r in _rows(labels, ("file", "gender", "race"))]


def london(root: Path) -> tuple[list[Labelled], list[Labelled]]:
    """(neutral photos, smiling photos), one each per person, in the same order."""
    by_expr: dict[str, dict[str, Labelled]] = {"neutral": {}, "smiling": {}}
    labels = root / "london" / "labels.csv"
    for r in _rows(labels, ("identity", "file", "expression", "gender", "ethnicity")):
        if r["expression"] in by_expr:
            by_expr[r["expression"]][r["identity"]] = Labelled(
                _photo(root / "london" / "images", r["file"], labels), r["identity"],
                _race(r["ethnicity"], str(labels)), _gender(r["gender"], str(labels)))
    people = sorted(set(by_expr["neutral"]) & set(by_expr["smiling"]))
    if not people:
        raise EdgeError(f"{root / 'london'}: no person with both a neutral and a smiling photo")
    return [by_expr["neutral"][p] for p in people], [by_expr["smiling"][p] for p in people]


def lfw_races(path: Path) -> dict[str, str]:
    """LFW identity -> race, where the source gives a single label."""
    return {r["name"]: _race(r["single_label"], str(path)) for r in _rows(path, ("name", "single_label"))
            if r["single_label"]}


def _gallery(cache: EmbedCache, people: list[Labelled], flip: bool) -> Gallery:
    emb = cache.embed([p.path for p in people], flip=flip, desc="enrolling")
    return Gallery.from_subjects([(str(p.identity), str(p.identity), emb.embeddings[i][None])
                                  for i, p in enumerate(people) if emb.ok[i]])


def _search(cache: EmbedCache, gallery: Gallery, data: str, people: list[Labelled], mated: bool,
            desc: str) -> Searched:
    emb = cache.embed([p.path for p in people], desc=desc)
    ids, scores = best_matches(gallery, emb.embeddings)
    scores = np.where(emb.ok, scores, -np.inf)
    correct = np.array([ok and i == p.identity for ok, i, p in zip(emb.ok, ids, people, strict=True)]) \
        if mated else None
    return Searched(data, people, scores, correct, int((~emb.ok).sum()))


def search_all(cache: EmbedCache, data_dir: Path, lfw_dir: Path | None,
               enroll_flip: bool = True) -> tuple[Searched, list[Searched], int]:
    """(passers-by against the London list, mated searches per source, list size)."""
    neutral, smiling = london(data_dir)
    gallery = _gallery(cache, neutral, enroll_flip)
    if gallery.size == 0:
        raise EdgeError("no London photo had a usable face: nobody could be enrolled")
    passers = _search(cache, gallery, "utkface", utkface(data_dir), False, "passers-by")
    mated = [_search(cache, gallery, "london", smiling, True, "london smiling")]
    if lfw_dir is not None:
        races = lfw_races(data_dir / "lfw_race_labels.csv")
        try:
            protocol = build_protocol(lfw_dir, lfw_dir, 2, True)
        except EdgeError as exc:
            raise EdgeError(f"--lfw {lfw_dir}: no person there has 2 or more photos to enroll one and search with "
                            "another: give LFW's folder, or --lfw none") from exc
        lfw_gallery = _gallery(cache, [Labelled(g.path, g.identity, "", None) for g in protocol.gallery], enroll_flip)
        probes = [Labelled(m.path, m.identity, races[m.identity], None) for m in protocol.mated if m.identity in races]
        mated.append(_search(cache, lfw_gallery, "lfw", probes, True, "lfw mated"))
    return passers, mated, gallery.size


def groups(people: list[Labelled]) -> Iterable[tuple[str, str, np.ndarray]]:
    """(attribute, group, mask): everyone, each race, each gender, and race x gender cells large enough."""
    race = np.array([p.race for p in people])
    gender = np.array([p.gender or "" for p in people])
    yield "all", "all", np.ones(len(people), bool)
    for r in RACES:
        if (race == r).any():
            yield "race", r, race == r
    for g in GENDERS:
        if (gender == g).any():
            yield "gender", g, gender == g
    for r in RACES:
        for g in GENDERS:
            cell = (race == r) & (gender == g)
            if cell.sum() >= MIN_CELL:
                yield "race_gender", f"{r} {g}", cell


def errors_at(s: Searched, mask: np.ndarray, thresholds: Iterable[float]) -> tuple[list[int], int]:
    """Errors at each threshold among the searches in `mask` that found a face, and how many those are.

    A passer-by errs when the best candidate scores at or above the threshold; a mated search when its own
    person is not the best candidate, or scores below it. As in `edge eval identify`, a mated probe with no face
    is a miss and a passer-by with no face is left out."""
    scores = s.scores[mask]
    if s.correct is None:
        scores = scores[np.isfinite(scores)]
        return [int((scores >= t).sum()) for t in thresholds], len(scores)
    correct = s.correct[mask]
    return [int((~(correct & (scores >= t))).sum()) for t in thresholds], len(scores)


def curves(s: Searched, thresholds: tuple[float, ...] = GRID) -> list[GroupCurve]:
    out = []
    for attribute, group, mask in groups(s.people):
        errors, trials = errors_at(s, mask, thresholds)
        if trials:
            out.append(GroupCurve(data=s.data, attribute=attribute, group=group, trials=trials, errors=errors))
    return out


def rates_at(s: Searched, threshold: float) -> list[GroupRate]:
    """Exact counts at one threshold (not the grid's)."""
    return [GroupRate(c.data, c.attribute, c.group, c.errors[0], c.trials, threshold) for c in curves(s, (threshold,))]


def measured(passers: Searched, mated: list[Searched], list_size: int, dataset: str, command: str,
             embedder_sha256: str) -> Demographics:
    """The curves as the calibration table keeps them; a data set that leaves out a protected group (or whose
    passers-by all lack a face in one) cannot stand for it, and is refused with the reason."""
    try:
        return Demographics(embedder_sha256=embedder_sha256, dataset=dataset, command=command,
                            watchlist_size=list_size, thresholds=list(GRID), false_alarms=curves(passers),
                            misses=[c for m in mated for c in curves(m)])
    except ValidationError as exc:
        reasons = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
        raise EdgeError(f"these passers-by cannot measure every group the policy protects: {reasons}") from exc


def worst_to_best(rates: list[GroupRate], attribute: str) -> dict[str, object]:
    """The highest and the lowest rate among one attribute's groups and their ratio (None when the lowest is 0:
    a ratio to zero is not a number; both counts are given)."""
    rows = [r for r in rates if r.attribute == attribute]
    if len(rows) < 2:
        return {}
    worst, best = max(rows, key=lambda r: r.rate), min(rows, key=lambda r: r.rate)
    if worst.errors == 0:
        return {"worst": None, "best": None, "ratio": None, "note": "no errors in any group"}
    return {"worst": worst.group, "worst_rate": round(worst.rate, 5), "best": best.group,
            "best_rate": round(best.rate, 5), "ratio": round(worst.rate / best.rate, 2) if best.rate else None}
