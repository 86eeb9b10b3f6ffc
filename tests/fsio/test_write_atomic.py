"""edge.fsio.write_atomic, the one way every durable file here is replaced: old or new, never half, and with the
permission bits the caller asked for (or the umask's, where a deployment's UMask should decide)."""

import os
import resource
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.fsio import PARTIAL_SUFFIX, write_atomic


@pytest.fixture
def umask() -> Iterator[None]:
    old = os.umask(0o027)
    yield
    os.umask(old)


def test_replaces_the_file_and_leaves_no_partial(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_text("old")
    write_atomic(target, "new ünïcode")
    assert target.read_text(encoding="utf-8") == "new ünïcode"
    assert list(tmp_path.iterdir()) == [target]


@pytest.mark.usefixtures("umask")
def test_mode_is_exact_or_the_umask_s(tmp_path: Path) -> None:
    write_atomic(tmp_path / "private.key", b"k")
    write_atomic(tmp_path / "acl", b"a", mode=0o644)
    write_atomic(tmp_path / "pairing.json", b"p", mode=None)
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert modes == {"private.key": 0o600, "acl": 0o644, "pairing.json": 0o640}


def test_a_partial_left_by_a_crash_does_not_lend_its_bits(tmp_path: Path) -> None:
    target = tmp_path / "hq_signing.key"
    stale = tmp_path / (target.name + PARTIAL_SUFFIX)
    stale.write_bytes(b"half of an old write")
    stale.chmod(0o666)
    write_atomic(target, b"secret")
    assert target.stat().st_mode & 0o777 == 0o600
    assert not stale.exists()


def test_a_failed_replace_keeps_the_old_file_and_removes_the_partial(tmp_path: Path) -> None:
    target = tmp_path / "occupied"
    target.mkdir()  # a folder where the file should go: the rename fails
    (target / "inside").write_text("kept")
    with pytest.raises(OSError):
        write_atomic(target, b"new")
    assert (target / "inside").read_text() == "kept"
    assert not (tmp_path / ("occupied" + PARTIAL_SUFFIX)).exists()


def test_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    """A write that fails part-way (here: over the file size limit, as a full disk would) changes nothing."""
    target = tmp_path / "watchlist.bundle"
    target.write_bytes(b"old list")
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of the signal
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))
    try:
        with pytest.raises(OSError):
            write_atomic(target, b"new list" * 1000)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert target.read_bytes() == b"old list"
    assert list(tmp_path.iterdir()) == [target]


def test_only_a_regular_partial_file_gets_its_bits_set(tmp_path: Path) -> None:
    """A partial path that is no regular file (here a link to /dev/full) is written through, never chmod-ed."""
    device = Path("/dev/full")
    if not device.exists():
        pytest.skip("no /dev/full on this machine")
    before = device.stat().st_mode
    target = tmp_path / "watchlist.bundle"
    target.write_bytes(b"old list")
    (tmp_path / ("watchlist.bundle" + PARTIAL_SUFFIX)).symlink_to(device)
    with pytest.raises(OSError):
        write_atomic(target, b"new list")
    assert device.stat().st_mode == before
    assert target.read_bytes() == b"old list"
