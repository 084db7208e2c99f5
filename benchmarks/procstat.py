"""What the benchmarks read of a running process from /proc: CPU seconds, memory, threads, open files.

One place for these, so every benchmark measures a daemon the same way.
"""

from __future__ import annotations

import os
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User plus system CPU seconds the process has used so far (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def status_field(pid: int, name: str) -> int:
    """An integer field of /proc/PID/status (``VmRSS``, ``VmHWM`` in kB, ``Threads``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    raise KeyError(f"/proc/{pid}/status has no {name}")


def rss_mb(pid: int) -> float:
    """Resident memory now, MB."""
    return status_field(pid, "VmRSS") / 1024


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory so far (the high-water mark), MB."""
    return status_field(pid, "VmHWM") / 1024


def open_files(pid: int) -> int:
    """File descriptors open (sockets and pipes included): a leak shows as growth."""
    return len(os.listdir(f"/proc/{pid}/fd"))
