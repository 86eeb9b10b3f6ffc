"""A gallery straight from a folder of photos (replay and evaluation; HQ builds signed bundles instead)."""

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.capture.opencv import IMAGE_SUFFIXES
from edge.errors import SourceError
from edge.runtime.progress import progress as progress_bar
from edge.vision.enroll import Enroller, Enrollment
from edge.watchlist.match import Gallery


@dataclass(frozen=True)
class Rejected:
    path: Path
    reason: str


def person_photos(folder: Path) -> Iterator[tuple[str, list[Path]]]:
    """(person, photos): one sub-folder per person, or files named after the person (`jane-doe.jpg`)."""
    if not folder.is_dir():
        raise SourceError(f"{folder}: not a folder of photos (one sub-folder per person, or files named after them)")
    people: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        if path.is_dir():
            photos = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if photos:
                people.setdefault(path.name, []).extend(photos)
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            people.setdefault(path.stem, []).append(path)
    yield from people.items()


def not_photos(folder: Path) -> list[Path]:
    """Files in `folder` and its person sub-folders that person_photos leaves out: not a format edge reads."""
    found: list[Path] = []
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        for item in sorted(path.iterdir()) if path.is_dir() else [path]:
            if item.is_file() and not item.name.startswith(".") and item.suffix.lower() not in IMAGE_SUFFIXES:
                found.append(item)
    return found


def label_for(person: str) -> str:
    """`lin-manuel-miranda` -> `Lin Manuel Miranda`; names with capitals are kept as written."""
    words = re.split(r"[-_\s]+", person)
    return " ".join(w if any(c.isupper() for c in w) else w.capitalize() for w in words if w)


def gallery_from_photos(folder: Path | list[tuple[str, list[Path]]], enroller: Enroller,
                        progress: bool = True) -> tuple[Gallery, list[Rejected]]:
    """Enroll every usable photo; a person's photos all become their embeddings. Rejects say why."""
    people = list(person_photos(folder)) if isinstance(folder, Path) else folder
    subjects: list[tuple[str, str, np.ndarray]] = []
    # listed with the rest, so a person whose only photo is a .gif or .heic is not left off without a word
    rejected = [Rejected(p, "not a photo format edge reads") for p in not_photos(folder)] \
        if isinstance(folder, Path) else []
    bar = progress_bar(total=sum(len(p) for _, p in people), desc="enrolling", unit="photo", enabled=progress)
    for person, photos in people:
        good: list[Enrollment] = []
        for photo in photos:
            result = enroller.enroll(photo)
            bar.update()
            if result.embedding is None:
                rejected.append(Rejected(photo, result.reason or "unknown"))
            else:
                good.append(result)
        if good:
            subjects.append((person, label_for(person), np.stack([g.embedding for g in good])))
    bar.close()
    return Gallery.from_subjects(subjects), rejected
