"""A device's watchlist entries in columns, parsed from the payload index one column at a time.

Why not the `PayloadIndex` model: a 1,000,000-entry index is about 150 MB of JSON, and as a pydantic model it
takes three times that (a str object for every value, a datetime for every time) on top of the parser's own
lists. Here each column of the parsed JSON is checked against `PayloadIndex`'s own field types (HQ's writer and
the device's reader share one definition), turned into a compact form and dropped before the next: times
become float seconds, counts and thumbnail references arrays, text one UTF-8 blob with a span per row (a value
repeated nearby, such as a legal basis, stored once). Subject ids and labels stay tuples of str: the gallery
hands them to the matcher and to every alert.
"""

from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, overload

import numpy as np
import pydantic_core
from pydantic import TypeAdapter, ValidationError

from edge.watchlist.bundle import PayloadIndex
from edge.watchlist.entries import WatchlistEntry

SLICE = 65536  # values checked at a time: bounds the checked copies a column makes on its way in
_RECENT = 4096  # distinct values a text column remembers to store a repeat once

_COLUMNS = tuple(PayloadIndex.model_fields)
_ADAPTERS = {name: TypeAdapter(field.annotation) for name, field in PayloadIndex.model_fields.items()}


class TextColumn(Sequence[str]):
    """Strings as one UTF-8 blob and a (start, end) span per row: about a quarter of a tuple of str objects."""

    __slots__ = ("_blob", "_spans")

    def __init__(self, blob: bytes, spans: np.ndarray) -> None:
        self._blob = blob
        self._spans = spans

    @classmethod
    def build(cls, values: Iterable[str]) -> "TextColumn":
        blob, starts, ends = bytearray(), array("I"), array("I")  # an index is under 4 GiB: its length is a u32
        recent: dict[str, tuple[int, int]] = {}
        for value in values:
            span = recent.get(value)
            if span is None:
                if len(recent) >= _RECENT:
                    recent.clear()
                data = value.encode()
                span = recent[value] = (len(blob), len(blob) + len(data))
                blob += data
            starts.append(span[0])
            ends.append(span[1])
        return cls(bytes(blob), np.stack([np.frombuffer(starts, np.uintc), np.frombuffer(ends, np.uintc)], axis=1))

    @property
    def nbytes(self) -> int:
        return len(self._blob) + self._spans.nbytes

    def __len__(self) -> int:
        return len(self._spans)

    @overload
    def __getitem__(self, i: int) -> str: ...

    @overload
    def __getitem__(self, i: slice) -> list[str]: ...

    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        start, end = self._spans[i]
        return self._blob[start:end].decode()


@dataclass(frozen=True)
class EntryColumns:
    """Every entry of a list, column by column (element i of each describes entry i), checked as PayloadIndex.

    `added`, `expires`: POSIX seconds; `embeddings`: rows of each entry; `thumbnails` (n, 2): offset and length
    in the thumbnail area, offset -1 where there is none.
    """

    subject_ids: tuple[str, ...]
    labels: tuple[str, ...]
    categories: TextColumn
    case_references: TextColumn
    legal_bases: TextColumn
    approvers: TextColumn
    added: np.ndarray
    expires: np.ndarray
    embeddings: np.ndarray
    thumbnails: np.ndarray

    def __len__(self) -> int:
        return len(self.subject_ids)

    def entry(self, i: int) -> WatchlistEntry:
        return WatchlistEntry(subject_id=self.subject_ids[i], label=self.labels[i], category=self.categories[i],
                              case_reference=self.case_references[i], legal_basis=self.legal_bases[i],
                              approver=self.approvers[i], added=_time(self.added[i]), expires=_time(self.expires[i]))

    def thumbnail(self, i: int) -> tuple[int, int] | None:
        offset, length = (int(v) for v in self.thumbnails[i])
        return (offset, length) if offset >= 0 else None


def parse_index(text: bytearray) -> EntryColumns:
    """Parse an authenticated index (JSON of columns) into EntryColumns; ValueError says what is wrong.

    Empties `text` as it starts: its bytes are moved into a bytes object (the parser copies a bytearray, not a
    bytes), which goes once parsed, so the text and the parsed lists are the most held at once.
    """
    data = bytes(text)
    del text[:]
    columns = pydantic_core.from_json(data, cache_strings=True)  # a value seen before becomes one str object
    del data
    if not isinstance(columns, dict) or set(columns) != set(_COLUMNS):
        got = sorted(columns) if isinstance(columns, dict) else type(columns).__name__
        raise ValueError(f"index has columns {got}, expected {sorted(_COLUMNS)}")
    lengths = {name: len(value) if isinstance(value, list) else -1 for name, value in columns.items()}
    if len(set(lengths.values())) != 1 or -1 in lengths.values():
        raise ValueError(f"columns are not lists of one length: {lengths}")
    n = lengths["subject_id"]
    subject_ids = tuple(_checked(columns, "subject_id"))
    if len(set(subject_ids)) != n:
        raise ValueError("a subject id appears twice")
    return EntryColumns(
        subject_ids=subject_ids, labels=tuple(_checked(columns, "label")),
        categories=TextColumn.build(_checked(columns, "category")),
        case_references=TextColumn.build(_checked(columns, "case_reference")),
        legal_bases=TextColumn.build(_checked(columns, "legal_basis")),
        approvers=TextColumn.build(_checked(columns, "approver")),
        added=np.fromiter((t.timestamp() for t in _checked(columns, "added")), np.float64, n),
        expires=np.fromiter((t.timestamp() for t in _checked(columns, "expires")), np.float64, n),
        embeddings=np.fromiter(_checked(columns, "embeddings"), np.int64, n),
        thumbnails=np.fromiter((v for ref in _checked(columns, "thumbnail") for v in (ref or (-1, 0))), np.int64,
                               2 * n).reshape(n, 2))


def _checked(columns: dict[str, list[Any]], name: str) -> Iterator[Any]:
    """The values of one column, checked against PayloadIndex's type for it, a slice at a time; the raw
    column leaves `columns` at once, so its values go as soon as the caller has converted them."""
    raw = columns.pop(name)
    adapter = _ADAPTERS[name]
    for at in range(0, len(raw), SLICE):
        try:
            checked = adapter.validate_python(raw[at: at + SLICE])
        except ValidationError as exc:
            error = exc.errors()[0]
            loc = error["loc"]
            where = "".join(f"[{p}]" for p in ((at + int(loc[0]), *loc[1:]) if loc else ()))
            raise ValueError(f"{name}{where}: {error['msg']}") from None
        yield from checked
    raw.clear()


def _time(seconds: float) -> datetime:
    return datetime.fromtimestamp(float(seconds), timezone.utc)
