"""A device's watchlist entries in columns, parsed from the payload index one column at a time.

Why not the `PayloadIndex` model: a 1,000,000-entry index is about 150 MB of JSON, and as a pydantic model it
takes three times that (a str object for every value, a datetime for every time) on top of the parser's own
lists. Here each column of the parsed JSON is checked against `PayloadIndex`'s own field types (HQ's writer and
the device's reader share one definition), turned into a compact form and dropped before the next: times
become float seconds, counts and thumbnail references arrays, text one UTF-8 blob with a span per row. In a
column whose values repeat, each distinct value is checked, converted and stored once: a legal basis or a date
a million entries share costs one check and a few bytes. Subject ids and labels stay tuples of str: the
gallery hands them to the matcher and to every alert.
"""

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, overload

import numpy as np
import pydantic_core
from pydantic import TypeAdapter, ValidationError

from edge.watchlist.bundle import PayloadIndex
from edge.watchlist.entries import WatchlistEntry

SLICE = 65536  # values checked at a time: bounds the copies pydantic makes on the way

_COLUMNS = tuple(PayloadIndex.model_fields)
_ADAPTERS = {name: TypeAdapter(field.annotation) for name, field in PayloadIndex.model_fields.items()}


class TextColumn(Sequence[str]):
    """Strings as one UTF-8 blob and a (start, end) span per row: about a quarter of a tuple of str objects."""

    __slots__ = ("_blob", "_spans")

    def __init__(self, blob: bytes, spans: np.ndarray) -> None:
        self._blob = blob
        self._spans = spans

    @classmethod
    def build(cls, values: list[str], codes: np.ndarray | None = None) -> "TextColumn":
        """Row i holds values[codes[i]] (values[i] without codes); each of `values` is stored once."""
        text = "".join(values)
        if text.isascii():  # one byte a character: no bytes object per value
            blob, lengths = text.encode(), np.fromiter(map(len, values), np.int64, len(values))
        else:
            encoded = [value.encode() for value in values]
            blob, lengths = b"".join(encoded), np.fromiter(map(len, encoded), np.int64, len(encoded))
        del text
        ends = np.cumsum(lengths)
        spans = np.stack([ends - lengths, ends], axis=1).astype(np.uint32)  # an index is under 4 GiB (u32 length)
        return cls(blob, spans if codes is None else spans[codes])

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
    subject_ids = tuple(_rows(columns, "subject_id"))
    if len(set(subject_ids)) != n:
        raise ValueError("a subject id appears twice")
    labels = tuple(_rows(columns, "label"))
    case_references = TextColumn.build(_rows(columns, "case_reference"))
    categories, legal_bases, approvers = (_text(columns, name) for name in ("category", "legal_basis", "approver"))
    added, expires = (_seconds(columns, name) for name in ("added", "expires"))
    counts = _coded(columns, "embeddings")
    refs = _rows(columns, "thumbnail")
    return EntryColumns(subject_ids=subject_ids, labels=labels, categories=categories,
                        case_references=case_references, legal_bases=legal_bases, approvers=approvers, added=added,
                        expires=expires, embeddings=_int64("embeddings", counts.values)[counts.codes],
                        thumbnails=_int64("thumbnail", [ref or (-1, 0) for ref in refs]).reshape(n, 2))


def _int64(name: str, values: list[Any]) -> np.ndarray:
    try:
        return np.array(values, np.int64)
    except OverflowError:
        raise ValueError(f"{name}: a number is larger than any payload holds") from None


def _rows(columns: dict[str, list[Any]], name: str) -> list[Any]:
    """Take a column whose values are mostly unique (ids, labels, case references, thumbnail references) out of
    `columns`, checked row by row."""
    return _checked(name, columns.pop(name), lambda at: at)


def _text(columns: dict[str, list[Any]], name: str) -> TextColumn:
    coded = _coded(columns, name)
    return TextColumn.build(coded.values, coded.codes)


def _seconds(columns: dict[str, list[Any]], name: str) -> np.ndarray:
    coded = _coded(columns, name)
    return np.array([t.timestamp() for t in coded.values], np.float64)[coded.codes]


@dataclass(frozen=True)
class _Coded:
    """A column as its distinct values (checked) and, per row, the position of the row's value among them."""

    values: list[Any]
    codes: np.ndarray


def _coded(columns: dict[str, list[Any]], name: str) -> _Coded:
    """Take a column whose values repeat (a legal basis, a date) out of `columns` and check its distinct values:
    a value a million rows share is checked and converted once."""
    raw = columns.pop(name)
    try:
        index = dict(zip(dict.fromkeys(raw), itertools.count()))
    except TypeError:  # a list or an object where a scalar belongs: the row-by-row check names it
        _checked(name, raw, lambda at: at)
        raise ValueError(f"{name}: a value is neither text nor a number") from None
    distinct = list(index)
    checked = _checked(name, distinct, lambda at: raw.index(distinct[at]))
    return _Coded(checked, np.fromiter(map(index.__getitem__, raw), np.intp, len(raw)))


def _checked(name: str, values: list[Any], row_of: Callable[[int], int]) -> list[Any]:
    """`values` checked against PayloadIndex's type for column `name`, a slice at a time; ValueError names the row
    (`row_of` a position in `values`) and the problem."""
    adapter, out = _ADAPTERS[name], []
    for at in range(0, len(values), SLICE):
        try:
            out += adapter.validate_python(values[at: at + SLICE])
        except ValidationError as exc:
            error = exc.errors()[0]
            loc = error["loc"]
            where = "".join(f"[{p}]" for p in ((row_of(at + int(loc[0])), *loc[1:]) if loc else ()))
            raise ValueError(f"{name}{where}: {error['msg']}") from None
    return out


def _time(seconds: float) -> datetime:
    return datetime.fromtimestamp(float(seconds), timezone.utc)
