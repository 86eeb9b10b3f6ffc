"""Disk space held back for the alerts being written when the disk fills.

A match event must reach the outbox, and its record the audit log, even if something else filled the disk a
moment before. The device therefore holds a file of `link.outbox_reserve_mb` beside its outbox (allocated,
not sparse); when a write fails for want of space the file is deleted, its blocks are free again, and the
write is retried at once. The device says so (CRITICAL) and holds the reserve again once there is room.

Why a reserve file and not a preallocated queue: the outbox is SQLite in WAL mode and the audit log an
append-only file, and both grow in ways the device does not control (WAL frames, page splits, checkpoints,
the shm index). Preallocating inside either would mean a second storage format with its own crash cases;
a reserve file frees real blocks of the same file system whatever writer needs them, and costs one file.
"""

import errno
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

log = logging.getLogger(__name__)

RESERVE_FILE = "disk.reserve"
T = TypeVar("T")


class DiskReserve:
    """A file of `size` bytes at `path`; thread-safe. Release it when the disk is full, hold it again later."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.size = size
        self._lock = threading.Lock()
        self._warned = False  # "cannot hold" is said once until the reserve is held again

    @property
    def held(self) -> bool:
        try:
            return self.path.stat().st_size >= self.size
        except FileNotFoundError:
            return False

    def hold(self) -> bool:
        """Allocate the reserve if it is not held (at start, and again once space was freed). True if held."""
        if self.size <= 0:
            return False
        with self._lock:
            if self.held:
                return True
            try:
                room = os.statvfs(self.path.parent)
                if room.f_bavail * room.f_frsize < 2 * self.size:  # never take the last of the disk for it
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
                try:
                    os.posix_fallocate(fd, 0, self.size)
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                self.path.unlink(missing_ok=True)
                if self._warned:
                    return False
                self._warned = True
                log.warning("cannot hold %d MiB of disk in reserve at %s (%s): a full disk may now lose alerts; "
                            "free space there", self.size >> 20, self.path, exc.strerror)
                return False
            self._warned = False
            log.info("holding %d MiB of disk in reserve at %s for alerts written when the disk fills",
                     self.size >> 20, self.path)
            return True

    def release(self) -> bool:
        """Free the reserve's blocks. True if there was a reserve to free (a retry may now succeed)."""
        with self._lock:
            if not self.path.exists():
                return False
            self.path.unlink()
        log.critical("the disk is full: released the %d MiB reserve at %s so alerts and audit records are still "
                     "kept; free space on that disk now", self.size >> 20, self.path)
        return True

    def retry_when_full(self, write: Callable[[], T]) -> T:
        """`write()`; if it fails for want of space (an error with `disk_full` set) and the reserve was held,
        release it and try once more. Any other error, or a second failure, is raised."""
        try:
            return write()
        except Exception as exc:
            if not getattr(exc, "disk_full", False) or not self.release():
                raise
        return write()
