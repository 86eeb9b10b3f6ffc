"""A verified, decrypted watchlist in memory, as the matcher and the alerts use it.

Its own module because a replay of footage (`offline.load_bundle`) builds one too, without a store.
"""

from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
from pydantic import Field

from edge.watchlist.bundle import BundleHeader
from edge.watchlist.decryption import GALLERY_DTYPES, Content, GalleryStorage
from edge.watchlist.entries import WatchlistEntry
from edge.watchlist.match import Gallery
from edge.watchlist.state import InstalledInfo


class SubjectInfo(WatchlistEntry):
    """An enrolled person's metadata for an alert: why they are listed, and their reference thumbnail."""

    thumbnail: bytes | None = Field(None, description="small JPEG of the enrolled face, for the handheld")


@dataclass(frozen=True)
class InstalledWatchlist:
    """A verified, decrypted watchlist in memory: the gallery to match against and who each subject is.

    Metadata is kept in columns (one tuple or array per field) rather than one object per subject,
    so a large list costs little more than its strings.
    """

    header: BundleHeader
    sha256: str
    gallery: Gallery
    categories: tuple[str, ...]
    case_references: tuple[str, ...]
    legal_bases: tuple[str, ...]
    approvers: tuple[str, ...]
    added: np.ndarray
    entry_expires: np.ndarray
    thumbnail_refs: np.ndarray
    thumbnails: memoryview

    @classmethod
    def from_content(cls, header: BundleHeader, sha256: str, content: Content,
                     storage: GalleryStorage) -> "InstalledWatchlist":
        """Take over the decrypted content (its gallery rows as they are: decrypt them with this `storage`)."""
        if content.embeddings.dtype != GALLERY_DTYPES[storage]:
            raise ValueError(f"content holds {content.embeddings.dtype} rows, not {storage}: pass storage to decrypt")
        index = content.index
        pool: dict[str, str] = {}  # one string object per distinct value: categories, approvers repeat a lot

        def column(values: list[str]) -> tuple[str, ...]:
            return tuple(pool.setdefault(v, v) for v in values)

        def seconds(times: list[datetime]) -> np.ndarray:
            return np.fromiter((t.timestamp() for t in times), np.float64, len(times))

        entry_expires = seconds(index.expires)
        gallery = Gallery(
            embeddings=content.embeddings,
            owner=np.repeat(np.arange(len(index), dtype=np.int32), index.embeddings),
            subject_ids=tuple(index.subject_id),
            expires=np.minimum(entry_expires, header.expires.timestamp()),
            labels=tuple(index.label),
        )
        refs = np.array([ref or (-1, 0) for ref in index.thumbnail], np.int64).reshape(-1, 2)
        return cls(header, sha256, gallery, column(index.category), column(index.case_reference),
                   column(index.legal_basis), column(index.approver), seconds(index.added), entry_expires, refs,
                   content.thumbnails)

    def subject(self, index: int) -> SubjectInfo:
        """Metadata of the subject at `index` (Candidate.subject_index)."""
        offset, length = (int(v) for v in self.thumbnail_refs[index])
        return SubjectInfo(
            subject_id=self.gallery.subject_ids[index], label=self.gallery.labels[index],
            category=self.categories[index], case_reference=self.case_references[index],
            legal_basis=self.legal_bases[index], approver=self.approvers[index],
            added=datetime.fromtimestamp(self.added[index], timezone.utc),
            expires=datetime.fromtimestamp(self.entry_expires[index], timezone.utc),
            thumbnail=bytes(self.thumbnails[offset: offset + length]) if offset >= 0 else None,
        )

    def expired(self, now: datetime) -> bool:
        return self.header.expires <= now

    def info(self, installed_at: datetime) -> InstalledInfo:
        h = self.header
        return InstalledInfo(watchlist_id=h.watchlist_id, version=h.version, sha256=self.sha256,
                             entry_count=h.entry_count, embedding_count=h.embedding_count, scope=h.scope,
                             issued=h.issued, not_before=h.not_before, expires=h.expires, embedder=h.embedder,
                             installed_at=installed_at)
