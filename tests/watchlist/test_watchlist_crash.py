"""A device killed mid-install, or whose disk fills during install, keeps its last good watchlist."""

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from watchlist_helpers import Keys, MakeBundle, OpenStore

from edge.fsio import PARTIAL_SUFFIX
from edge.keys import save_private, save_public
from edge.watchlist.bundle import MAGIC
from edge.watchlist.store import BUNDLE_FILE, VERSIONS_FILE

REPO = Path(__file__).resolve().parents[2]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_old_intact(open_store: OpenStore, folder: Path, old_sha: str) -> None:
    assert sha(folder / BUNDLE_FILE) == old_sha
    reopened = open_store(folder)  # "restart": the old watchlist loads, the unfinished write is gone
    assert reopened.current is not None and reopened.current.sha256 == old_sha
    assert not list(folder.glob("*" + PARTIAL_SUFFIX))


def test_sigkill_mid_install_keeps_old_watchlist(tmp_path: Path, keys: Keys, make_bundle: MakeBundle,
                                                 open_store: OpenStore) -> None:
    folder = tmp_path / "watchlist"
    old = make_bundle(1)
    open_store(folder).install(old)
    save_private(keys.device, tmp_path / "device_encryption.key")
    save_public(keys.hq.public_key(), tmp_path / "hq_signing.pub")
    new = make_bundle(2, n=2000, seed=1)  # ~800 KB: far more than a pipe holds, so the writer blocks mid-file
    # The real CLI in a real process. Its input is a FIFO: once the CLI opens it, the store is open (stale
    # partial files already cleaned), so a FIFO put at the partial path now is where it will write the new
    # bundle once verified (it decrypts from there), and it blocks there, mid-write, until we read; we read a
    # little, then SIGKILL it.
    incoming = tmp_path / "incoming.bundle"
    os.mkfifo(incoming)
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge", "watchlist", "install", str(incoming), "--encryption-key",
         str(tmp_path / "device_encryption.key"), "--hq-pub", str(tmp_path / "hq_signing.pub"),
         "--state-dir", str(folder), "--follow", "wl"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        with open(incoming, "wb") as feed:  # returns once the child has opened it for reading
            partial = folder / (BUNDLE_FILE + PARTIAL_SUFFIX)
            os.mkfifo(partial)
            reader = os.open(partial, os.O_RDONLY | os.O_NONBLOCK)
            feed.write(new)
        written = b""
        deadline = time.monotonic() + 60
        while len(written) < 65536:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the install never started writing"
            try:
                chunk = os.read(reader, 65536)
            except BlockingIOError:
                chunk = b""
            written += chunk
            if not chunk:
                time.sleep(0.01)
        assert written.startswith(MAGIC)  # it verified the new bundle and was writing it
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        os.close(reader)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert_old_intact(open_store, folder, hashlib.sha256(old).hexdigest())
    assert open_store(folder).install(new).outcome == "installed"  # the interrupted version was not consumed


def test_killed_after_rename_before_versions_file(open_store: OpenStore, make_bundle: MakeBundle) -> None:
    store = open_store()
    store.install(make_bundle(1))
    store.install(make_bundle(2, seed=1))
    (store.folder / VERSIONS_FILE).unlink()  # the bundle is renamed in before versions.json is written
    reopened = open_store()
    assert reopened.current.header.version == 2
    assert reopened.install(make_bundle(2, seed=2)).refusal.code == "version_not_newer"
    assert (store.folder / VERSIONS_FILE).exists()


def test_disk_fills_during_install_on_a_small_tmpfs(tmp_path: Path, make_bundle: MakeBundle,
                                                    open_store: OpenStore) -> None:
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", str(mount_point)],
                                 capture_output=True, text=True)
    except FileNotFoundError:
        pytest.skip("no mount command: the /dev/full test below covers ENOSPC")
    if mounted.returncode != 0:
        pytest.skip(f"mounting a tmpfs needs root with CAP_SYS_ADMIN ({mounted.stderr.strip()}): "
                    "the /dev/full test covers ENOSPC")
    try:
        folder = mount_point / "watchlist"
        old = make_bundle(1)
        store = open_store(folder)
        store.install(old)
        result = store.install(make_bundle(2, n=1000, seed=1))  # ~400 KB onto 256 KiB
        assert result.outcome == "refused" and result.refusal.code == "disk_full"
        assert store.current.sha256 == hashlib.sha256(old).hexdigest()
        assert_old_intact(open_store, folder, hashlib.sha256(old).hexdigest())
        assert open_store(folder).state().last_refusal.code == "disk_full"  # persisted once space was freed
        assert open_store(folder).install(make_bundle(2, n=3, seed=2)).outcome == "installed"  # v2 not consumed
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


def test_enospc_writing_the_partial_file(open_store: OpenStore, make_bundle: MakeBundle) -> None:
    """Runs without root: the partial file is a link to /dev/full, whose writes fail with ENOSPC."""
    store = open_store()
    old = make_bundle(1)
    store.install(old)
    partial = store.folder / (BUNDLE_FILE + PARTIAL_SUFFIX)
    partial.symlink_to("/dev/full")
    result = store.install(make_bundle(2, seed=1))
    assert result.outcome == "refused" and result.refusal.code == "disk_full"
    assert "No space left" in result.refusal.message
    assert not os.path.lexists(partial)
    assert_old_intact(open_store, store.folder, hashlib.sha256(old).hexdigest())
