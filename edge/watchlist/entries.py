"""Watchlist entries: why each person is on the list, and reading them from HQ's entries.csv.

Every problem in the CSV is reported with its row number (its line in the file: the header is row 1,
as a spreadsheet shows it) so that the person who keeps the list can fix all of them in one go.
"""

import csv
import io
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated

from pydantic import AwareDatetime, ConfigDict, Field, StringConstraints, ValidationError

from edge.config.base import StrictModel
from edge.errors import EdgeError

SUBJECT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
CATEGORY_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"
REQUIRED_COLUMNS = ("subject_id", "label", "category", "case_reference", "legal_basis", "approver", "expires",
                    "photos")
OPTIONAL_COLUMNS = ("added",)
PHOTO_SEPARATOR = ";"
FORMAT_HINTS = {
    "subject_id": "use up to 64 letters, digits, '.', '_', ':' or '-', starting with a letter or digit",
    "category": "use a lowercase word such as wanted, missing or suspect",
}


SubjectId = Annotated[str, StringConstraints(strip_whitespace=True, pattern=SUBJECT_ID_PATTERN)]
Category = Annotated[str, StringConstraints(strip_whitespace=True, pattern=CATEGORY_PATTERN)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
LongText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class WatchlistEntry(StrictModel):
    """One person on the list, with the accountability fields every entry must carry."""

    model_config = ConfigDict(frozen=True)

    subject_id: SubjectId = Field(description="HQ's id of the person")
    label: ShortText = Field(description="what the officer sees")
    category: Category = Field(description="wanted, missing, suspect, …")
    case_reference: ShortText
    legal_basis: LongText
    approver: ShortText
    added: AwareDatetime
    expires: AwareDatetime


@dataclass(frozen=True)
class EntryRow:
    """A validated CSV row: the entry and the photo files to enroll it from."""

    row: int
    entry: WatchlistEntry
    photos: tuple[Path, ...]


class EntriesError(EdgeError):
    """entries.csv has rows that cannot go on a watchlist; the message lists every one."""


def parse_time(text: str) -> datetime:
    """ISO 8601 date or date-time; no zone means UTC; a date alone means 00:00 UTC that day."""
    text = text.strip()
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        example = "e.g. 2026-06-30 or 2026-06-30T12:00Z"
        raise ValueError(f"{text!r} is not an ISO 8601 date or time ({example})") from None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def read_entries(csv_path: Path, photos_dir: Path, now: datetime) -> list[EntryRow]:
    """Every row, validated; raises EntriesError listing each refused row and why."""
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise EntriesError(f"cannot read {csv_path}: {exc.strerror}") from exc
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = [c.strip() for c in reader.fieldnames or ()]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    unknown = [c for c in columns if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    if missing or unknown:
        raise EntriesError(
            f"{csv_path}: header row must name the columns {', '.join(REQUIRED_COLUMNS)} (optional: "
            f"{', '.join(OPTIONAL_COLUMNS)}); missing: {', '.join(missing) or 'none'}; "
            f"unknown: {', '.join(unknown) or 'none'}"
        )
    rows: list[EntryRow] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for raw in reader:
        number = reader.line_num  # the row a spreadsheet shows (header = 1) unless a cell spans lines
        cells = {k.strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        if not any(cells.values()):
            continue
        try:
            row = _row(number, cells, photos_dir, now)
        except ValueError as exc:
            problems.append(f"row {number} (subject {cells.get('subject_id') or '?'}): {exc}")
            continue
        if row.entry.subject_id in seen:
            problems.append(f"row {number}: subject {row.entry.subject_id} is already on row "
                            f"{seen[row.entry.subject_id]}: one row per person")
            continue
        seen[row.entry.subject_id] = number
        rows.append(row)
    if problems:
        raise EntriesError(f"{csv_path}: {len(problems)} row(s) refused, fix them and build again:\n  "
                           + "\n  ".join(problems))
    if not rows:
        raise EntriesError(f"{csv_path} has no entries: add one row per person under the header")
    return rows


def _row(number: int, cells: dict[str, str], photos_dir: Path, now: datetime) -> EntryRow:
    reasons: list[str] = []
    times: dict[str, datetime] = {"added": now}
    for column in ("expires", "added"):
        if cells.get(column):
            try:
                times[column] = parse_time(cells[column])
            except ValueError as exc:
                reasons.append(f"{column}: {exc}")
        elif column == "expires":
            reasons.append("no expiry (column expires is empty)")
    if "expires" in times and times["expires"] <= now:
        reasons.append(f"expiry {times['expires'].isoformat()} is in the past")
    fields = {c: cells.get(c, "") for c in REQUIRED_COLUMNS if c not in ("expires", "photos")}
    entry = None
    try:
        entry = WatchlistEntry(**fields, added=times["added"], expires=times.get("expires", now))
    except ValidationError as exc:
        for err in exc.errors():
            column = str(err["loc"][0])
            if not str(err.get("input", "")).strip():
                reasons.append(f"no {column.replace('_', ' ')} (column {column} is empty)")
            else:
                hint = FORMAT_HINTS.get(column, err["msg"])
                reasons.append(f"{column} {err.get('input')!r}: {hint}")
    names = [p.strip() for p in cells.get("photos", "").split(PHOTO_SEPARATOR) if p.strip()]
    if not names:
        reasons.append("no photo (column photos is empty)")
    photos = tuple(photos_dir / n for n in names)
    reasons += [f"photo {n} not found in {photos_dir}" for n, p in zip(names, photos, strict=True)
                if not p.is_file()]
    if reasons or entry is None:
        raise ValueError("; ".join(reasons))
    return EntryRow(number, entry, photos)
