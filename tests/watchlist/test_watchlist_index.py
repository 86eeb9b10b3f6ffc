"""How a device reads a payload: twice (the index, then the rows), the index one column at a time into compact
columns. The same list whichever way the bundle came; the same refusals as the PayloadIndex model; nothing kept
from a payload that fails either pass."""

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from watchlist_helpers import Keys, MakeBundle, OpenStore, make_subjects

from edge.watchlist.bundle import TAG_SIZE, BundleRefused, split
from edge.watchlist.columns import parse_index
from edge.watchlist.decryption import decrypt
from edge.watchlist.entries import WatchlistEntry
from edge.watchlist.opening import verify
from edge.watchlist.sealing import Subject


def test_bytes_and_file_install_the_same_list(open_store: OpenStore, make_bundle: MakeBundle, tmp_path: Path) -> None:
    now = datetime.now(timezone.utc)
    subjects = make_subjects(300, seed=5, now=now, rows_per_subject=2, thumbnails=True)
    data = make_bundle(1, subjects=subjects, now=now)
    path = tmp_path / "list.bundle"
    path.write_bytes(data)
    from_bytes, from_file = open_store(tmp_path / "a"), open_store(tmp_path / "b")
    assert from_bytes.install(data).outcome == from_file.install(path).outcome == "installed"
    a, b = from_bytes.current, from_file.current
    assert a.gallery.embeddings.tobytes() == b.gallery.embeddings.tobytes()
    assert np.array_equal(a.gallery.owner, b.gallery.owner) and np.array_equal(a.gallery.expires, b.gallery.expires)
    assert a.gallery.subject_ids == b.gallery.subject_ids == tuple(s.entry.subject_id for s in subjects)
    for i in (0, 1, 299):
        assert a.subject(i) == b.subject(i)
        got = a.subject(i)
        assert WatchlistEntry(**got.model_dump(exclude={"thumbnail"})) == subjects[i].entry
        assert got.thumbnail == subjects[i].thumbnail


@pytest.mark.parametrize(("field", "value", "named"), [
    ("subject_id", "has spaces", "subject_id[1]: String should match pattern"),
    ("label", "", "label[1]: String should have at least 1 character"),
    ("category", "Wanted", "category[1]: String should match pattern"),
    ("legal_basis", "x" * 501, "legal_basis[1]: String should have at most 500 characters"),
    ("added", datetime(2026, 1, 1), "added[1]: Input should have timezone info"),
])
def test_index_value_the_model_would_refuse_is_refused_malformed(
        field: str, value: object, named: str, open_store: OpenStore, make_bundle: MakeBundle) -> None:
    """A buggy HQ seals an entry its own model would refuse: the device names the column and the row."""
    subjects = make_subjects(3, seed=1)
    bad = WatchlistEntry.model_construct(**{**dict(subjects[1].entry), field: value})
    subjects[1] = Subject(bad, subjects[1].embeddings)
    store = open_store()
    result = store.install(make_bundle(1, subjects=subjects))
    assert result.outcome == "refused" and result.refusal.code == "malformed"
    assert f"bundle payload is inconsistent: index: {named}" in result.refusal.message
    assert store.current is None and not list(store.folder.glob("*.bundle*"))


def test_payload_changed_between_the_two_passes_is_refused(keys: Keys, make_bundle: MakeBundle) -> None:
    """The index is taken from the first pass, the rows from the second; each pass checks the tag, so storage that
    changes in between (here: one ciphertext byte of an embedding row) cannot slip rows past it."""
    data = make_bundle(1, n=1500, seed=2)
    raw = split(data)
    header = verify(raw, keys.hq.public_key())
    payload = bytearray(raw.payload)
    tag_reads = 0

    def read(at: int, n: int) -> bytes:  # the payload as a changing disk would serve it
        nonlocal tag_reads
        if at == len(payload) - TAG_SIZE:
            tag_reads += 1
            if tag_reads == 2:  # the second pass starts: the stored bytes have changed since the first
                payload[len(payload) // 2] ^= 0x01
        return bytes(payload[at: at + n])

    with pytest.raises(BundleRefused, match="failed its check when read again") as refused:
        decrypt(raw, header, keys.device, read=read)
    assert refused.value.code == "undecryptable" and tag_reads == 2
    payload[len(payload) // 2] ^= 0x01  # as it was: both passes agree
    assert len(decrypt(raw, header, keys.device, read=read).entries) == 1500


def test_large_list_keeps_its_text_columns_compact(open_store: OpenStore, make_bundle: MakeBundle) -> None:
    """Text that repeats (legal basis, approver, category) is stored once however many entries carry it."""
    now = datetime.now(timezone.utc)
    subjects = make_subjects(5000, seed=3, now=now, entry_expires=[now + timedelta(days=1 + i % 9)
                                                                     for i in range(5000)])
    store = open_store()
    assert store.install(make_bundle(1, subjects=subjects, now=now), now=now).outcome == "installed"
    entries = store.current.entries
    assert len(entries.legal_bases) == 5000 and entries.legal_bases.nbytes < 5000 * 8 + 100
    assert list(entries.case_references[:3]) == ["CASE-0", "CASE-1", "CASE-2"]
    assert entries.case_references[-1] == "CASE-4999" and entries.approvers[4321] == "Insp. Kaur"
    assert entries.entry(17).expires == subjects[17].entry.expires


def index_json(**columns: list) -> bytearray:
    one = {"subject_id": ["P-1"], "label": ["Jane Roe"], "category": ["missing"], "case_reference": ["CASE-1"],
           "legal_basis": ["Report 88"], "approver": ["Insp. Kaur"], "added": ["2026-01-05T09:00:00Z"],
           "expires": ["2026-06-30T00:00:00Z"], "embeddings": [1], "thumbnail": [None]}
    return bytearray(json.dumps({**one, **columns}).encode())


@pytest.mark.parametrize(("columns", "problem"), [
    ({"embeddings": [2**70]}, "embeddings: a number is larger than any payload holds"),
    ({"thumbnail": [[2**70, 1]]}, "thumbnail: a number is larger than any payload holds"),
    ({"label": [["a list"]]}, "label[0]: Input should be a valid string"),
    ({"added": ["yesterday"]}, "added[0]: Input should be a valid datetime"),
    ({"embeddings": [0]}, "embeddings[0]: Input should be greater than or equal to 1"),
    ({"extra": [1]}, "index has columns"),
    ({"label": []}, "columns are not lists of one length"),
])
def test_index_parser_refuses_what_the_model_refuses_with_a_value_error(columns: dict, problem: str) -> None:
    """What an authenticated but broken index can hold (a buggy HQ) is a ValueError naming it, never a crash."""
    assert parse_index(index_json()).entry(0).label == "Jane Roe"
    with pytest.raises(ValueError, match=re.escape(problem)):
        parse_index(index_json(**columns))
