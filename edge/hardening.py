"""What a process that holds faces (`edge run`, `edge handheld`) does first: no core dumps.

A core dump would write the process's memory, frames, face crops and decrypted watchlist embeddings
included, to disk (or hand it to a crash reporter), outside the state directory and its retention. Both
limits are set, since either alone can be undone by configuration: RLIMIT_CORE 0 (no core file, inherited by
children) and, on Linux, PR_SET_DUMPABLE 0 (no core even through a core_pattern pipe, and no ptrace or
/proc/<pid>/mem access by other processes of the same user). The systemd units set LimitCORE=0 as well.
"""

import ctypes
import logging
import os
import resource
import sys

log = logging.getLogger(__name__)

PR_SET_DUMPABLE = 4  # <linux/prctl.h>


def forbid_core_dumps() -> None:
    """Make this process never dump core. Raises OSError if Linux refuses."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if not sys.platform.startswith("linux"):
        log.warning("not on Linux: core dumps are limited to 0 bytes, but the process stays dumpable")
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_DUMPABLE, 0) failed: {os.strerror(err)}")
