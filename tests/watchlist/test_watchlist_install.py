"""Installing real bundles on a device store: every bad bundle is refused, logged, reported, and the old list kept."""

import hashlib
import json
import logging
import struct
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from watchlist_helpers import FOLLOW, OTHER_EMBEDDER, Keys, MakeBundle, OpenStore, make_subjects, unit_rows

from edge.config.watchlist import WatchlistConfig
from edge.errors import EdgeError
from edge.fsio import PARTIAL_SUFFIX
from edge.watchlist.bundle import MAGIC
from edge.watchlist.match import from_bfloat16, match
from edge.watchlist.store import BUNDLE_FILE, WatchlistStore


def installed_v1(open_store: OpenStore, make_bundle: MakeBundle) -> tuple[WatchlistStore, str]:
    store = open_store()
    data = make_bundle(1)
    assert store.install(data).outcome == "installed"
    return store, hashlib.sha256(data).hexdigest()


def assert_kept(store: WatchlistStore, sha: str, code: str, open_store: OpenStore) -> None:
    """The refusal is reported now and after a restart, and the old watchlist still loads and matches."""
    state = store.state()
    assert state.status == "active" and state.installed is not None and state.installed.sha256 == sha
    assert state.last_refusal is not None and state.last_refusal.code == code
    reopened = open_store()
    assert reopened.current is not None and reopened.current.sha256 == sha
    assert reopened.state().last_refusal is not None and reopened.state().last_refusal.code == code
    probe = unit_rows(3, seed=0)  # the v1 subjects' own embeddings
    assert [r.best.subject_id for r in match(reopened.current.gallery, probe, now=0)] == ["S-0-0", "S-0-1", "S-0-2"]


def reframe(data: bytes, header: dict, hq_key) -> bytes:
    """Re-sign a bundle with an edited header, as a buggy or malicious HQ would."""
    (hlen,) = struct.unpack_from(">I", data, 8)
    rest = data[12 + hlen: -64]
    head = json.dumps(header).encode()
    signed = MAGIC + struct.pack(">I", len(head)) + head + rest
    return signed + hq_key.sign(signed)


def header_of(data: bytes) -> dict:
    (hlen,) = struct.unpack_from(">I", data, 8)
    return json.loads(data[12: 12 + hlen])


def test_installs_and_reloads_with_metadata(open_store: OpenStore, make_bundle: MakeBundle) -> None:
    now = datetime.now(timezone.utc)
    subjects = make_subjects(4, seed=3, now=now, rows_per_subject=2, thumbnails=True)
    store = open_store()
    result = store.install(make_bundle(5, subjects=subjects, now=now), now=now)
    assert result.outcome == "installed" and result.state.status == "active"
    assert result.state.installed.version == 5 and result.state.installed.entry_count == 4
    assert result.state.installed.embedding_count == 8
    wl = open_store().current  # a restart verifies and decrypts the stored bundle again
    assert wl is not None and wl.gallery.size == 4 and wl.gallery.embeddings.shape == (8, 192)
    info = wl.subject(2)
    assert (info.subject_id, info.label, info.case_reference, info.legal_basis, info.approver) == (
        "S-3-2", "Person 2", "CASE-2", "Court order 17/2025", "Insp. Kaur")
    assert info.thumbnail == subjects[2].thumbnail
    probes = unit_rows(8, seed=3)[[5, 1]]  # second row of subject 2, first row of subject 0
    results = match(wl.gallery, probes, now=now.timestamp())
    assert [r.best.subject_id for r in results] == ["S-3-2", "S-3-0"]
    assert all(r.best.score > 0.99 for r in results)


def test_identical_bundle_again_is_unchanged_not_refused(open_store: OpenStore, make_bundle: MakeBundle) -> None:
    store = open_store()
    data = make_bundle(1)
    store.install(data)
    again = store.install(data)  # a retained MQTT message is delivered again at every reconnect
    assert again.outcome == "unchanged" and again.state.last_refusal is None


@pytest.mark.parametrize("case", ["bad_signature", "forged_signer", "unknown_signing_key", "not_yet_valid",
                                  "expired", "wrong_embedder", "not_addressed", "truncated", "truncated_header",
                                  "extra_byte", "over_limit", "garbage", "undecryptable", "future_format"])
def test_refused_bundle_keeps_installed_watchlist(case: str, open_store: OpenStore, make_bundle: MakeBundle,
                                                  keys: Keys, caplog: pytest.LogCaptureFixture) -> None:
    store, sha = installed_v1(open_store, make_bundle)
    now = datetime.now(timezone.utc)
    good = make_bundle(2, seed=9)
    bad, code = {
        "bad_signature": lambda: (good[:-1] + bytes([good[-1] ^ 1]), "bad_signature"),
        "forged_signer": lambda: (good[:-64] + keys.other_hq.sign(good[:-64]), "bad_signature"),
        "unknown_signing_key": lambda: (make_bundle(2, hq=keys.other_hq), "unknown_signing_key"),
        "not_yet_valid": lambda: (make_bundle(2, not_before=now + timedelta(hours=1)), "not_yet_valid"),
        "expired": lambda: (make_bundle(2, now=now - timedelta(days=2), expires=now - timedelta(seconds=1)),
                            "expired"),
        "wrong_embedder": lambda: (make_bundle(2, embedder=OTHER_EMBEDDER), "wrong_embedder"),
        "not_addressed": lambda: (make_bundle(2, recipients=[("cam-02", keys.other_device.public_key())]),
                                  "not_addressed"),
        "truncated": lambda: (good[:-1], "truncated"),
        "truncated_header": lambda: (good[:40], "truncated"),
        "extra_byte": lambda: (good + b"\0", "oversized"),
        "over_limit": lambda: (good, "oversized"),
        "garbage": lambda: (b"PK\x03\x04" + bytes(200), "malformed"),
        "undecryptable": lambda: (reframe(good, {**header_of(good), "recipients": [
            {**header_of(good)["recipients"][0], "wrapped_key": "00" * 48}]}, keys.hq), "undecryptable"),
        "future_format": lambda: (reframe(good, {**header_of(good), "format": 2}, keys.hq), "unsupported_format"),
    }[case]()
    if case == "over_limit":
        store = open_store(config=WatchlistConfig(follow=FOLLOW, max_bundle_mb=len(good) / (1 << 20) * 0.9))
    with caplog.at_level(logging.WARNING, logger="edge.watchlist.store"):
        result = store.install(bad)
    assert result.outcome == "refused" and result.refusal.code == code
    assert store.current is not None and store.current.sha256 == sha
    assert any(code in r.getMessage() and "refused" in r.getMessage() for r in caplog.records)
    assert_kept(store, sha, code, open_store)
    assert open_store().install(good).outcome == "installed"  # the refusal did not spoil the next good bundle


def test_every_altered_byte_is_refused(open_store: OpenStore, make_bundle: MakeBundle) -> None:
    store, sha = installed_v1(open_store, make_bundle)
    good = make_bundle(2, n=2, seed=4)
    (hlen,) = struct.unpack_from(">I", good, 8)
    payload_at = 20 + hlen
    regions = {"magic": range(0, 8), "header_len": range(8, 12), "header": range(12, 12 + hlen),
               "payload_len": range(12 + hlen, payload_at), "payload": range(payload_at, len(good) - 64),
               "signature": range(len(good) - 64, len(good))}
    allowed = {"magic": {"malformed"}, "header_len": {"truncated", "oversized", "malformed"},
               "header": {"bad_signature", "unknown_signing_key"},  # a flip inside "signer" names another key
               "payload_len": {"truncated", "oversized"}, "payload": {"bad_signature"},
               "signature": {"bad_signature"}}
    for region, positions in regions.items():
        step = max(1, len(positions) // 24)
        for pos in [*positions[::step], positions[-1]]:
            altered = bytearray(good)
            altered[pos] ^= 0x01
            result = store.install(bytes(altered))
            assert result.outcome == "refused", (region, pos)
            assert result.refusal.code in allowed[region], (region, pos, result.refusal.code)
    assert store.current.sha256 == sha and open_store().current.sha256 == sha


def test_rollback_and_replay_refused_even_after_bundle_deleted(open_store: OpenStore, make_bundle: MakeBundle) -> None:
    store = open_store()
    v1, v2 = make_bundle(1, seed=1), make_bundle(2, seed=2)
    assert store.install(v2).outcome == "installed"
    assert store.install(v1).refusal.code == "version_not_newer"  # rollback
    assert store.install(make_bundle(2, seed=5)).refusal.code == "version_not_newer"  # same version, other content
    (store.folder / BUNDLE_FILE).unlink()  # the highest version is remembered without the file
    reopened = open_store()
    assert reopened.current is None and reopened.state().status == "none"
    assert reopened.install(v1).refusal.code == "version_not_newer"
    assert reopened.install(v2).refusal.code == "version_not_newer"
    assert reopened.current is None
    assert reopened.install(make_bundle(3, seed=3)).outcome == "installed"
    assert open_store().install(make_bundle(3, seed=6)).refusal.code == "version_not_newer"


def test_clock_skew_tolerated_for_not_before(open_store: OpenStore, make_bundle: MakeBundle) -> None:
    now = datetime.now(timezone.utc)
    store = open_store(config=WatchlistConfig(follow=FOLLOW, clock_skew_s=120))
    assert store.install(make_bundle(1, now=now, not_before=now + timedelta(seconds=100)), now=now).outcome == \
        "installed"
    late = store.install(make_bundle(2, now=now, not_before=now + timedelta(seconds=140)), now=now)
    assert late.refusal.code == "not_yet_valid"


def test_watchlist_stops_matching_at_its_expiry_and_says_so(open_store: OpenStore, make_bundle: MakeBundle,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    now = datetime.now(timezone.utc)
    store = open_store()
    store.install(make_bundle(1, now=now, expires=now + timedelta(seconds=10)), now=now)
    gallery = store.current.gallery
    probes = unit_rows(3, seed=0)
    assert all(r.best is not None for r in match(gallery, probes, now=(now + timedelta(seconds=9)).timestamp()))
    later = now + timedelta(seconds=11)
    assert all(r.best is None for r in match(gallery, probes, now=later.timestamp()))
    with caplog.at_level(logging.WARNING, logger="edge.watchlist.store"):
        state = store.state(later)
        store.state(later)
    assert state.status == "expired" and "expired" in state.message and "nothing matches" in state.message
    assert sum("expired" in r.getMessage() for r in caplog.records) == 1  # logged once, reported always
    assert open_store().state(later).status == "expired"


def test_expired_entry_never_matches_again(open_store: OpenStore, make_bundle: MakeBundle) -> None:
    now = datetime.now(timezone.utc)
    expiries = [now + timedelta(seconds=5), now + timedelta(days=1), now + timedelta(days=1)]
    store = open_store()
    store.install(make_bundle(1, subjects=make_subjects(3, now=now, entry_expires=expiries), now=now), now=now)
    wl = store.current
    probes = unit_rows(3, seed=0)
    before = match(wl.gallery, probes, now=now.timestamp(), k=3)
    after = match(wl.gallery, probes, now=(now + timedelta(seconds=6)).timestamp(), k=3)
    assert before[0].best.subject_id == "S-0-0"
    assert all(c.subject_id != "S-0-0" for r in after for c in r.candidates)  # not even as runner-up
    assert [r.best.subject_id for r in after[1:]] == ["S-0-1", "S-0-2"]
    assert wl.subject(0).expires == expiries[0]


def test_installed_bundle_damaged_on_disk_is_reported_unusable(open_store: OpenStore,
                                                              make_bundle: MakeBundle) -> None:
    store, _ = installed_v1(open_store, make_bundle)
    path = store.folder / BUNDLE_FILE
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    reopened = open_store()
    state = reopened.state()
    assert reopened.current is None and state.status == "unusable" and "bad_signature" in state.message
    assert reopened.install(make_bundle(1, seed=7)).refusal.code == "version_not_newer"  # v1 stays consumed
    assert reopened.install(make_bundle(2, seed=7)).outcome == "installed"


def test_payload_altered_and_re_signed_is_refused_undecryptable(open_store: OpenStore, make_bundle: MakeBundle,
                                                               keys: Keys) -> None:
    """A payload byte changed and the bundle re-signed (a broken HQ) fails the GCM tag wherever the byte lies:
    the index length, the index, an embedding row, the tag. What was decrypted before the tag failed is dropped."""
    store, sha = installed_v1(open_store, make_bundle)
    good = make_bundle(2, n=1500, seed=4)  # 1500 rows: several decryption chunks
    (hlen,) = struct.unpack_from(">I", good, 8)
    start, end = 20 + hlen, len(good) - 64
    for pos in (start, start + 2, start + 40, (start + end) // 2, end - 17, end - 1):
        altered = bytearray(good[:-64])
        altered[pos] ^= 0x80
        header = {**header_of(good), "payload_sha256": hashlib.sha256(altered[start:]).hexdigest()}
        result = store.install(reframe(bytes(altered) + bytes(64), header, keys.hq))
        assert result.outcome == "refused" and result.refusal.code == "undecryptable", pos
        assert not list(store.folder.glob("*" + PARTIAL_SUFFIX))
    assert_kept(store, sha, "undecryptable", open_store)
    assert store.install(good).outcome == "installed"


@pytest.mark.parametrize("dtype", ["float16", "float32"])
@pytest.mark.parametrize("storage", ["bfloat16", "float32"])
def test_gallery_rows_are_the_enrolled_rows_across_decryption_chunks(dtype: str, storage: str, open_store: OpenStore,
                                                                     make_bundle: MakeBundle) -> None:
    n = 1500  # 288 KB of float16 rows, 576 KB of float32: decrypted in several chunks, rows split across them
    store = open_store(config=WatchlistConfig(follow=FOLLOW, gallery_storage=storage))
    assert store.install(make_bundle(1, n=n, seed=2, dtype=dtype)).outcome == "installed"
    for wl in (store.current, open_store(config=WatchlistConfig(follow=FOLLOW, gallery_storage=storage)).current):
        rows = wl.gallery.embeddings
        assert rows.shape == (n, 192) and rows.dtype == (np.uint16 if storage == "bfloat16" else np.float32)
        got = from_bfloat16(rows) if storage == "bfloat16" else rows
        tolerance = 1e-2 if storage == "bfloat16" else 1e-3 if dtype == "float16" else 1e-6
        np.testing.assert_allclose(got, unit_rows(n, seed=2), atol=tolerance)
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=tolerance)


def test_installs_from_a_file(open_store: OpenStore, make_bundle: MakeBundle, tmp_path: Path) -> None:
    data = make_bundle(1)
    path = tmp_path / "incoming.bundle"
    path.write_bytes(data)
    store = open_store()
    assert store.install(path).outcome == "installed"
    assert (store.folder / BUNDLE_FILE).read_bytes() == data  # the store's own copy, byte for byte
    assert store.install(path).outcome == "unchanged"
    assert store.install(data).outcome == "unchanged"
    path.unlink()
    assert open_store().current.sha256 == hashlib.sha256(data).hexdigest()
    with pytest.raises(EdgeError, match=r"cannot read bundle .*incoming.bundle: No such file"):
        store.install(path)
    bad = tmp_path / "bad.bundle"
    bad.write_bytes(data[:-1])
    assert store.install(bad).refusal.code == "truncated"
    empty = tmp_path / "empty.bundle"
    empty.touch()
    assert store.install(empty).refusal.code == "truncated"
    assert store.current.sha256 == hashlib.sha256(data).hexdigest()
