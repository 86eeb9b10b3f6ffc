"""Durable files: the one way this project replaces a file, so that a crash or a power cut leaves either the
old file or the new one, never half of one.

The data goes to `<name>.partial` in the same folder, is fsynced, renamed over the target, and the folder is
fsynced so the rename itself survives a power cut. A partial file never outlives an error.
"""

import os
import stat
from pathlib import Path

PARTIAL_SUFFIX = ".partial"


def partial_path(path: Path) -> Path:
    return path.with_name(path.name + PARTIAL_SUFFIX)


def write_atomic(path: Path, data: bytes | memoryview | str, mode: int | None = 0o600,
                 fsync_dir: bool = True) -> None:
    """Replace `path` with `data` (text is written as UTF-8), its permission bits exactly `mode`; `mode=None`
    leaves them to the process's umask, as a plain open() would (for files a deployment's UMask governs)."""
    commit(write_partial(partial_path(path), data, mode), path, fsync_dir)


def write_partial(partial: Path, data: bytes | memoryview | str, mode: int | None = 0o600) -> Path:
    """Write and fsync `partial` with permission bits `mode` (None: the umask's); gone on any error."""
    view = memoryview(data.encode("utf-8") if isinstance(data, str) else data)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666 if mode is None else mode)
    try:
        try:
            if mode is not None and stat.S_ISREG(os.fstat(fd).st_mode):
                os.fchmod(fd, mode)  # exactly `mode`, whatever the umask or a crashed write's partial had
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return partial


def commit(partial: Path, path: Path, fsync_dir: bool = True) -> None:
    """Rename a written partial file over `path`, then fsync the folder; the partial never survives an error."""
    try:
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    if fsync_dir:
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


def link_atomic(source: Path, path: Path) -> None:
    """Make `path` a second name for `source` (a hard link), replacing `path` whole: the kept copy of a file
    that is about to be replaced, without writing its bytes again."""
    partial = partial_path(path)
    partial.unlink(missing_ok=True)
    os.link(source, partial)
    commit(partial, path)
