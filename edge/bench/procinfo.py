"""What a benchmark reports about where it ran: the CPU, and a process's resident and peak resident memory."""

import os
from pathlib import Path


def cpu_model() -> str:
    """The CPU model and how many CPUs the machine has (Linux /proc; the CPU count elsewhere)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        info = ""
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "")
    return f"{model or 'unknown CPU'}, {os.cpu_count()} cpus"


def memory_mb() -> tuple[float, float]:
    """(resident, peak resident) memory of this process in MB of 10^6 bytes (Linux /proc/self/status: VmRSS,
    VmHWM, given in KiB)."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) * 1024 / 1e6, int(fields["VmHWM"].split()[0]) * 1024 / 1e6
