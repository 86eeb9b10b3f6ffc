"""HQ side: enroll each row's photos with the devices' own models and seal the result into a bundle.

Enrollment runs the same detector, aligner and embedder as the devices (edge.vision.enroll), so a
probe on the device and its enrolled photo land in the same embedding space.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from edge.runtime.progress import progress as progress_bar
from edge.watchlist.entries import EntryRow
from edge.watchlist.sealing import Subject


class Enrollment(Protocol):
    """What edge.vision.enroll.Enroller.enroll returns for one photo."""

    embedding: np.ndarray | None
    reason: str | None
    thumbnail: bytes | None
    quality: float


class PhotoEnroller(Protocol):
    model_sha256: str

    def enroll(self, path: Path) -> Enrollment: ...


@dataclass(frozen=True)
class RejectedPhoto:
    row: int
    subject_id: str
    photo: Path
    reason: str

    def __str__(self) -> str:
        return f"row {self.row} (subject {self.subject_id}): photo {self.photo.name} rejected: {self.reason}"


@dataclass(frozen=True)
class EnrollmentReport:
    """Subjects ready for a bundle, the photos that could not be used, and rows left with no usable photo."""

    subjects: list[Subject]
    rejected: list[RejectedPhoto]
    refused_rows: list[str]


def enroll(rows: Sequence[EntryRow], enroller: PhotoEnroller, thumbnails: bool = True,
          progress: bool = True) -> EnrollmentReport:
    """Embed every photo of every row; a row keeps all its usable photos, and the best one's thumbnail."""
    subjects: list[Subject] = []
    rejected: list[RejectedPhoto] = []
    refused: list[str] = []
    with progress_bar(total=sum(len(r.photos) for r in rows), desc="enrolling", unit="photo", enabled=progress) as bar:
        for row in rows:
            usable = []
            for photo in row.photos:
                result = enroller.enroll(photo)
                bar.update()
                if result.embedding is None:
                    rejected.append(RejectedPhoto(row.row, row.entry.subject_id, photo, result.reason or "unusable"))
                else:
                    usable.append(result)
            if not usable:
                refused.append(f"row {row.row} (subject {row.entry.subject_id}): no usable photo "
                               f"({len(row.photos)} rejected): add a clear, frontal photo of one face")
                continue
            best = max(usable, key=lambda r: r.quality)
            subjects.append(Subject(row.entry, np.stack([r.embedding for r in usable]),
                                    best.thumbnail if thumbnails else None))
    return EnrollmentReport(subjects, rejected, refused)
