"""A verified, decrypted watchlist in memory, as the matcher and the alerts use it.

Its own module because a replay of footage (`offline.load_bundle`) builds one too, without a store.
"""

from dataclasses import dataclass
from datetime import datetime

import numpy as np
from pydantic import Field

from edge.watchlist.bundle import BundleHeader
from edge.watchlist.columns import EntryColumns
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

    Metadata stays in the compact columns decryption parsed it into (`columns.EntryColumns`): a large list
    costs little more than its text.
    """

    header: BundleHeader
    sha256: str
    gallery: Gallery
    entries: EntryColumns
    thumbnails: memoryview

    @classmethod
    def from_content(cls, header: BundleHeader, sha256: str, content: Content,
                     storage: GalleryStorage) -> "InstalledWatchlist":
        """Take over the decrypted content (its gallery rows as they are: decrypt them with this `storage`)."""
        if content.embeddings.dtype != GALLERY_DTYPES[storage]:
            raise ValueError(f"content holds {content.embeddings.dtype} rows, not {storage}: pass storage to decrypt")
        entries = content.entries
        gallery = Gallery(
            embeddings=content.embeddings,
            owner=np.repeat(np.arange(len(entries), dtype=np.int32), entries.embeddings),
            subject_ids=entries.subject_ids,
            expires=np.minimum(entries.expires, header.expires.timestamp()),
            labels=entries.labels,
        )
        return cls(header, sha256, gallery, entries, content.thumbnails)

    def subject(self, index: int) -> SubjectInfo:
        """Metadata of the subject at `index` (Candidate.subject_index)."""
        ref = self.entries.thumbnail(index)
        thumbnail = bytes(self.thumbnails[ref[0]: ref[0] + ref[1]]) if ref else None
        return SubjectInfo(**self.entries.entry(index).model_dump(), thumbnail=thumbnail)

    def expired(self, now: datetime) -> bool:
        return self.header.expires <= now

    def info(self, installed_at: datetime) -> InstalledInfo:
        h = self.header
        return InstalledInfo(watchlist_id=h.watchlist_id, version=h.version, sha256=self.sha256,
                             entry_count=h.entry_count, embedding_count=h.embedding_count, scope=h.scope,
                             issued=h.issued, not_before=h.not_before, expires=h.expires, embedder=h.embedder,
                             installed_at=installed_at)
