"""The device's watchlist folder: install a bundle only when every check passes, never lose the last good one.

Files in the folder (0700):
    watchlist.bundle   the installed bundle, byte for byte as HQ signed it (encrypted at rest);
                       verified and decrypted again at each start
    watchlist.bundle.partial
                       a bundle being installed: written once its signature and header pass, then
                       decrypted from here and renamed over watchlist.bundle
    watchlist.previous.bundle
                       the bundle installed before the current one (a second name for the same file until
                       then), to go back to when the current one's embedder cannot be opened
    versions.json      highest version ever installed per watchlist id: survives deletion of the bundle,
                       so an old bundle can never be replayed (rollback)
    timestamps.json    HQ's newest freshness statement per followed list (`freshness`)
    state.json         what is installed and the last refusal, for the status report
    *.partial          a write in progress; removed at start (left by a killed process)

Every write goes to a .partial file, is fsynced, renamed over the target, and the folder is fsynced:
a process killed at any point leaves either the old file or the new one, complete.

A large list (1,000,000 entries: a ~400 MB bundle) is never held twice: a bundle comes as a file (the link
spools MQTT chunks to disk), which is mapped, not read, to check its signature; the payload is then decrypted
from the store's own copy a chunk at a time, in two passes (`decryption`), so the parsed index and the gallery
array are the most it holds (docs/evaluation.md, "Watchlist at scale").

Which lists the device takes is its configuration's `watchlist.follow` (ids, highest precedence first): a
bundle of another id is refused, one of a lower-precedence id while a higher one is installed and unexpired
too, so no list displaces another unless the configuration ranks it higher; versions count per id.

This module keeps the folder and the rollback bookkeeping; the checks a bundle must pass are
`opening.open_bundle` (shared with replay), the records it reports are in `state`, freshness is `freshness`'s.
"""

import errno
import hashlib
import logging
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime, timezone
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from pydantic import Field, ValidationError

from edge.config.base import StrictModel
from edge.config.watchlist import WatchlistConfig
from edge.errors import EdgeError
from edge.fsio import PARTIAL_SUFFIX, commit, link_atomic, partial_path, write_atomic, write_partial
from edge.watchlist.bundle import BundleHeader, BundleRefused, RefusalCode
from edge.watchlist.decryption import file_reader
from edge.watchlist.embedders import DeviceEmbedders
from edge.watchlist.freshness import Freshness
from edge.watchlist.installed import InstalledWatchlist
from edge.watchlist.opening import OpenedBundle, mapped, open_bundle
from edge.watchlist.state import BundleRefusal, InstallResult, StoreState
from edge.watchlist.timestamp import WatchlistTimestamp

log = logging.getLogger(__name__)

BUNDLE_FILE = "watchlist.bundle"
PREVIOUS_FILE = "watchlist.previous.bundle"
VERSIONS_FILE = "versions.json"
STATE_FILE = "state.json"


class _Versions(StrictModel):
    highest: dict[str, int] = Field(default_factory=dict)


class WatchlistStore:
    """Install, keep and report one device's watchlist.

    `install` may run on one thread (the MQTT callback) while others read `current` (the matcher):
    the installed watchlist is swapped in by a single assignment once it is safely on disk.
    """

    def __init__(self, folder: Path, device_key: X25519PrivateKey, hq_public: Ed25519PublicKey,
                 embedders: DeviceEmbedders, config: WatchlistConfig) -> None:
        self.folder = folder
        self._device_key = device_key
        self._hq_public = hq_public
        self._embedders = embedders
        self._config = config
        self._lock = threading.Lock()
        self._versions = _Versions()
        self._installed_at: datetime | None = None
        self._last_refusal: BundleRefusal | None = None
        self._load_error: str | None = None
        self._expiry_reported = False
        self._freshness = Freshness(folder, hq_public, config)
        self.current: InstalledWatchlist | None = None

    @classmethod
    def open(cls, folder: Path, *, device_key: X25519PrivateKey, hq_public: Ed25519PublicKey,
             embedders: DeviceEmbedders, config: WatchlistConfig | None = None) -> "WatchlistStore":
        """Open (creating it 0700) the folder, clean up an interrupted install, load the installed watchlist."""
        store = cls(folder, device_key, hq_public, embedders, config or WatchlistConfig())
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        for partial in folder.glob("*" + PARTIAL_SUFFIX):
            log.warning("removing %s: an install or state write was interrupted (the previous file is intact)",
                        partial)
            partial.unlink()
        store._versions = store._read_versions()
        store._freshness.load(datetime.now(timezone.utc))
        previous = store._read_state()
        store._last_refusal = previous.last_refusal if previous else None
        store._load_installed()
        return store

    def state(self, now: datetime | None = None) -> StoreState:
        """Current status; says so (once in the log, always in the state) when the watchlist has expired."""
        now = now or datetime.now(timezone.utc)
        wl = self.current
        installed = wl.info(self._installed_at or now) if wl else None
        if wl is None and self._load_error:
            status, message = "unusable", self._load_error
        elif wl is None:
            status, message = "none", "no watchlist installed: nothing can match"
            if not self._config.follow:
                message += '; and none will be: name the ids this device takes in its edge.toml, [watchlist] follow'
        elif wl.expired(now):
            status = "expired"
            message = (f"watchlist {wl.header.watchlist_id} version {wl.header.version} expired at "
                       f"{wl.header.expires.isoformat()}: nothing matches until HQ publishes a newer one")
            if not self._expiry_reported:
                log.warning(message)
                self._expiry_reported = True
        else:
            status = "active"
            message = (f"watchlist {wl.header.watchlist_id} version {wl.header.version}: "
                       f"{wl.header.entry_count} entries until {wl.header.expires.isoformat()}")
            if wl.header.watchlist_id not in self._config.follow:
                message += ("; its id is not in watchlist.follow: kept until a list the device follows is "
                            "installed (add the id to [watchlist] follow to keep taking its updates)")
        fresh = self._freshness.judge(wl.header if wl else None, self._versions.highest, now)
        if status == "active" and fresh is not None and (fresh.stale or fresh.behind):
            status, message = "stale" if fresh.stale else "behind", f"{message}; {fresh.message}"
        return StoreState(status=status, message=message, installed=installed, last_refusal=self._last_refusal,
                          highest=dict(self._versions.highest), freshness=fresh)

    def matching_stopped(self, now: datetime | None = None) -> bool:
        """True while HQ's freshness statements are stale and the configuration says to match nobody then."""
        if not self._config.stale_stops_matching or self.current is None:
            return False
        fresh = self._freshness.judge(self.current.header, self._versions.highest, now or datetime.now(timezone.utc))
        return fresh is not None and fresh.matching_stopped

    def accept_timestamp(self, data: bytes, now: datetime | None = None) -> WatchlistTimestamp | None:
        """Keep HQ's freshness statement (`timestamp`); None when it is the one kept already.

        Raises Refused (malformed, bad_signature, not_yet_valid, replayed, not_followed) and keeps the old one."""
        now = now or datetime.now(timezone.utc)
        with self._lock:
            statement = self._freshness.accept(data, now)
            if statement is not None:
                self._persist(STATE_FILE, self.state(now).model_dump_json().encode())
            return statement

    def install(self, bundle: bytes | Path, now: datetime | None = None) -> InstallResult:
        """Check and install a bundle (its bytes, or a file); on any refusal the installed watchlist stays as it was.

        The signature and header are checked where the bundle lies (a file is mapped, not read); it is then
        written to watchlist.bundle.partial and decrypted from there a chunk at a time, so that neither the
        bundle nor its plaintext is ever held twice. Given bytes, the caller holds them throughout: a large
        bundle is best given as a file.
        """
        now = now or datetime.now(timezone.utc)
        partial = partial_path(self.folder / BUNDLE_FILE)
        with self._lock:
            header: BundleHeader | None = None
            with _bundle_bytes(bundle) as data:
                digest = hashlib.sha256(data).hexdigest()
                if self.current is not None and self.current.sha256 == digest:
                    return InstallResult(outcome="unchanged", state=self.state(now))
                try:
                    in_use = self.current.header.embedder.sha256 if self.current else None
                    opened = open_bundle(data, hq_public=self._hq_public, embedders=self._embedders,
                                         config=self._config, now=now, in_use=in_use)
                    header = opened.header
                    self._admit(header, now)
                    highest = self._versions.highest.get(header.watchlist_id, 0)
                    if header.version <= highest:
                        raise BundleRefused("version_not_newer", f"bundle {header.watchlist_id} version "
                                            f"{header.version} is not newer than version {highest}, the highest "
                                            "ever installed: a replayed or rolled-back watchlist")
                    with _writing(partial):
                        write_partial(partial, data)
                except BundleRefused as exc:
                    return self._refuse(exc, digest, header or exc.header, now)
            try:  # the source's pages have left memory: decrypt the copy on disk
                with _writing(partial):
                    installed = self._decode(partial, opened, digest)
                    if (self.folder / BUNDLE_FILE).is_file():
                        link_atomic(self.folder / BUNDLE_FILE, self.folder / PREVIOUS_FILE)
                    commit(partial, self.folder / BUNDLE_FILE)
            except BundleRefused as exc:
                return self._refuse(exc, digest, header, now)
            finally:
                partial.unlink(missing_ok=True)  # gone already once renamed in
            self.current = installed
            self._installed_at = now
            self._load_error = None
            self._expiry_reported = False
            self._versions.highest[header.watchlist_id] = header.version
            self._persist(VERSIONS_FILE, self._versions.model_dump_json().encode())
            state = self.state(now)
            self._persist(STATE_FILE, state.model_dump_json().encode())
            log.info("installed watchlist %s version %d: %d entries, expires %s", header.watchlist_id,
                     header.version, header.entry_count, header.expires.isoformat())
            return InstallResult(outcome="installed", state=state)

    def fall_back(self, reason: str, now: datetime | None = None) -> InstalledWatchlist | None:
        """The installed list could not be put into use (its embedder would not open): go back to the list
        installed before it, or to none. Its version stays the highest installed, so HQ publishes a newer one
        once the device is mended; the refusal says why. Returns the list now installed."""
        now = now or datetime.now(timezone.utc)
        with self._lock:
            failed, previous = self.current, self.folder / PREVIOUS_FILE
            if failed is None:
                return None
            restored: InstalledWatchlist | None = None
            try:
                if previous.is_file():
                    with mapped(previous) as data:
                        digest = hashlib.sha256(data).hexdigest()
                        opened = open_bundle(data, hq_public=self._hq_public, embedders=self._embedders,
                                             config=self._config, installed=True)
                    restored = self._decode(previous, opened, digest)
                    link_atomic(previous, self.folder / BUNDLE_FILE)
            except (BundleRefused, OSError) as exc:
                log.error("cannot go back to the previous watchlist %s: %s", previous, exc)
                restored = None
            h = failed.header
            kept = f"back on version {restored.header.version}" if restored else "no watchlist to go back to"
            self._last_refusal = BundleRefusal(code="wrong_embedder", message=f"installed, then given up: {reason}; "
                                               f"{kept}", at=now, sha256=failed.sha256, watchlist_id=h.watchlist_id,
                                               version=h.version)
            self.current = restored
            if restored is None:
                self._load_error = f"watchlist {h.watchlist_id} version {h.version} cannot be used: {reason}"
            state = self.state(now)
            self._persist(STATE_FILE, state.model_dump_json().encode())
            log.error("watchlist %s version %d given up (%s); %s", h.watchlist_id, h.version, reason, kept)
            return restored

    def _admit(self, header: BundleHeader, now: datetime) -> None:
        """Refuse a list the device does not follow, one ranked below the installed (unexpired) one, and one
        older than HQ's newest freshness statement names: no list displaces another the configuration ranks
        higher, and a wiped versions.json does not let an old list back in while HQ's statement is known."""
        follow, wid, wl = self._config.follow, header.watchlist_id, self.current
        if wid not in follow:
            hint = (f"this device follows {', '.join(follow)}" if follow else
                    "this device follows no watchlist yet: name the ids it takes in its edge.toml, "
                    f'e.g. [watchlist] follow = ["{wid}"], highest precedence first, and restart it')
            raise BundleRefused("not_followed", f"bundle is watchlist {wid}, which is not in watchlist.follow; "
                                f"{hint}")
        ranked = wl.header.watchlist_id if wl is not None else None
        if ranked is not None and ranked != wid and ranked in follow and not wl.expired(now) and \
                follow.index(ranked) < follow.index(wid):
            raise BundleRefused("lower_precedence", f"bundle is watchlist {wid}, ranked below the installed "
                                f"{ranked} in watchlist.follow; it is taken once {ranked} expires")
        statement = self._freshness.floor(wid)
        if statement is not None and header.version < statement.version:
            raise BundleRefused("superseded", f"bundle is version {header.version} of {wid}, but HQ's freshness "
                                f"statement of {statement.issued_at.isoformat()} names version {statement.version} "
                                "as current: an old bundle replayed")

    def _refuse(self, exc: BundleRefused, digest: str, header: BundleHeader | None, now: datetime) -> InstallResult:
        refusal = BundleRefusal(code=exc.code, message=str(exc), at=now, sha256=digest,
                                watchlist_id=header.watchlist_id if header else None,
                                version=header.version if header else None)
        log.warning("watchlist bundle %s… refused (%s): %s; keeping %s", digest[:16], exc.code, exc,
                    f"version {self.current.header.version}" if self.current else "no watchlist")
        self._last_refusal = refusal
        state = self.state(now)
        self._persist(STATE_FILE, state.model_dump_json().encode())
        return InstallResult(outcome="refused", refusal=refusal, state=state)

    def _load_installed(self) -> None:
        path = self.folder / BUNDLE_FILE
        if not path.is_file():
            return
        try:
            with mapped(path) as data:
                digest = hashlib.sha256(data).hexdigest()
                opened = open_bundle(data, hq_public=self._hq_public, embedders=self._embedders,
                                     config=self._config, installed=True)
            self.current = self._decode(path, opened, digest)
        except (BundleRefused, OSError) as exc:
            why = f"({exc.code}): {exc}" if isinstance(exc, BundleRefused) else \
                f"(unreadable): {exc.strerror}: check the device's storage"
            self._load_error = f"installed watchlist {path} cannot be used {why}"
            log.error(self._load_error)
            return
        header = opened.header
        self._installed_at = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)  # renamed in at install
        if header.version > self._versions.highest.get(header.watchlist_id, 0):  # killed before versions.json
            self._versions.highest[header.watchlist_id] = header.version
            self._persist(VERSIONS_FILE, self._versions.model_dump_json().encode())
        log.info("loaded watchlist %s version %d (%d entries)", header.watchlist_id, header.version,
                 header.entry_count)

    def _decode(self, path: Path, opened: OpenedBundle, digest: str) -> InstalledWatchlist:
        """Decrypt the opened bundle from its copy at `path`, a chunk at a time, into the watchlist."""
        storage = self._config.gallery_storage
        with open(path, "rb") as file:
            content = opened.decrypt(self._device_key, storage, read=file_reader(file, opened.raw))
        return InstalledWatchlist.from_content(opened.header, digest, content, storage)

    def _read_versions(self) -> _Versions:
        path = self.folder / VERSIONS_FILE
        if not path.exists():
            return _Versions()
        try:
            return _Versions.model_validate_json(path.read_bytes())
        except (OSError, ValidationError) as exc:
            log.error("%s is unreadable (%s): rollback protection falls back to the installed version", path, exc)
            return _Versions()

    def _read_state(self) -> StoreState | None:
        path = self.folder / STATE_FILE
        try:
            return StoreState.model_validate_json(path.read_bytes()) if path.exists() else None
        except (OSError, ValidationError) as exc:
            log.warning("%s is unreadable (%s): starting a fresh state report", path, exc)
            return None

    def _persist(self, name: str, data: bytes) -> None:
        """Write a small bookkeeping file; a failure is logged (in-memory state stays right) and retried next time."""
        try:
            write_atomic(self.folder / name, data)
        except OSError as exc:
            log.error("cannot write %s: %s", self.folder / name, exc.strerror)


@contextmanager
def _writing(path: Path) -> Iterator[None]:
    """A storage error while installing the bundle is a refusal; the old file stays."""
    try:
        yield
    except OSError as exc:
        code: RefusalCode = "disk_full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "write_failed"
        raise BundleRefused(code, f"cannot write {path}: {exc.strerror}: "
                            "free space on the device or check its storage") from None


@contextmanager
def _bundle_bytes(bundle: bytes | Path) -> Iterator[memoryview]:
    """The bundle's bytes as a view: of the bytes given, or of the file mapped (not read into memory)."""
    if not isinstance(bundle, Path):
        yield memoryview(bundle)
        return
    with ExitStack() as stack:
        try:
            data = stack.enter_context(mapped(bundle))
        except OSError as exc:
            raise EdgeError(f"cannot read bundle {bundle}: {exc.strerror}") from None
        yield data
