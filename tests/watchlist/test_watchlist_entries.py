"""entries.csv: every refused row is named by its row number and reason."""

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from edge.watchlist.entries import EntriesError, parse_time, read_entries

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
HEADER = "subject_id,label,category,case_reference,legal_basis,approver,expires,photos"


def write(tmp_path: Path, *rows: str, header: str = HEADER) -> Path:
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        (tmp_path / name).write_bytes(b"\xff\xd8")
    path = tmp_path / "entries.csv"
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def test_reads_valid_rows(tmp_path: Path) -> None:
    csv = write(tmp_path, "P-1,Jane Roe,missing,CASE-1,Report 88,Insp. Kaur,2026-06-30,a.jpg; b.jpg",
                '"P-2"," John ""JD"" Doe ",wanted,CASE-2,"Warrant 5/2025, art. 3",Supt. Mills,'
                '2026-04-01T08:00+02:00,c.jpg',
                "", ",,,,,,,",  # blank lines and empty rows are skipped but counted
                'P-3,"Ann\nLee",wanted,CASE-3,Warrant,Kaur,2026-06-30,c.jpg')  # a cell on two lines
    rows = read_entries(csv, tmp_path, NOW)
    assert [r.row for r in rows] == [2, 3, 7]
    assert rows[2].entry.label == "Ann\nLee"
    assert rows[0].photos == (tmp_path / "a.jpg", tmp_path / "b.jpg")
    assert rows[0].entry.expires == datetime(2026, 6, 30, tzinfo=timezone.utc) and rows[0].entry.added == NOW
    assert rows[1].entry.label == 'John "JD" Doe' and rows[1].entry.legal_basis == "Warrant 5/2025, art. 3"
    assert rows[1].entry.expires == datetime(2026, 4, 1, 6, 0, tzinfo=timezone.utc)


def test_optional_added_column(tmp_path: Path) -> None:
    csv = write(tmp_path, "P-1,Jane,missing,C-1,Report,Kaur,2026-06-30,a.jpg,2025-01-02", header=HEADER + ",added")
    assert read_entries(csv, tmp_path, NOW)[0].entry.added == datetime(2025, 1, 2, tzinfo=timezone.utc)


def test_every_bad_row_is_refused_with_its_number(tmp_path: Path) -> None:
    csv = write(
        tmp_path,
        "P-1,Jane,missing,C-1,Report,Kaur,2026-06-30,a.jpg",  # row 2: fine
        "P-2,John,wanted,C-2,,Kaur,2026-06-30,a.jpg",  # row 3: no legal basis
        "P-3,Ann,wanted,C-3,Warrant,  ,2026-06-30,a.jpg",  # row 4: no approver
        "P-4,Bob,wanted,C-4,Warrant,Kaur,2026-02-28,a.jpg",  # row 5: expired
        "P-5,Cy,wanted,C-5,Warrant,Kaur,2026-06-30,",  # row 6: no photo
        "P-6,Di,wanted,C-6,Warrant,Kaur,2026-06-30,missing.jpg",  # row 7: photo not there
        "P-1,Ed,wanted,C-7,Warrant,Kaur,2026-06-30,b.jpg",  # row 8: duplicate id
        "P-8,Fay,Wanted!,C-8,Warrant,Kaur,30/06/2026,c.jpg",  # row 9: bad category and date
    )
    with pytest.raises(EntriesError) as err:
        read_entries(csv, tmp_path, NOW)
    message = str(err.value)
    assert "7 row(s) refused" in message
    for expected in ["row 3 (subject P-2): no legal basis", "row 4 (subject P-3): no approver",
                     "row 5 (subject P-4): expiry 2026-02-28T00:00:00+00:00 is in the past",
                     "row 6 (subject P-5): no photo", "row 7 (subject P-6): photo missing.jpg not found",
                     "row 8: subject P-1 is already on row 2", "row 9 (subject P-8): expires:"]:
        assert expected in message
    assert "category 'Wanted!': use a lowercase word" in message.split("row 9")[1]
    assert "row 2" not in message.replace("already on row 2", "")


def test_header_must_name_the_columns(tmp_path: Path) -> None:
    csv = write(tmp_path, "P-1,Jane,missing,C-1,Report,Kaur,2026-06-30,a.jpg,x",
                header="subject_id,label,category,case_reference,legal_basis,approvr,expires,photos,notes")
    with pytest.raises(EntriesError, match="missing: approver; unknown: approvr, notes"):
        read_entries(csv, tmp_path, NOW)


def test_parse_time_forms() -> None:
    assert parse_time("2026-06-30") == datetime(2026, 6, 30, tzinfo=timezone.utc)
    assert parse_time("2026-06-30T12:00Z") == datetime(2026, 6, 30, 12, tzinfo=timezone.utc)
    assert parse_time("2026-06-30T12:00:00+02:00").utcoffset() == timedelta(hours=2)
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_time("next tuesday")
