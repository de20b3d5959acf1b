"""The machine, and CPU time and resident memory of a process and its descendants, from /proc (Linux)."""

from __future__ import annotations

import datetime
import os
import platform
from dataclasses import dataclass
from typing import Any

_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Usage:
    cpu_s: float  # user + system time so far, all processes together
    rss_mib: float  # resident memory now, summed
    peak_rss_mib: float  # each process's high-water mark, summed


def _stat(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name (which may hold spaces)."""
    with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
        return handle.read().rpartition(")")[2].split()


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    parents: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                parents.setdefault(int(_stat(int(name))[1]), []).append(int(name))
            except OSError:
                continue  # gone meanwhile
    found, queue = [], [pid]
    while queue:
        found.append(current := queue.pop())
        queue.extend(parents.get(current, ()))
    return found


def _memory_kib(pid: int) -> tuple[int, int]:
    fields: dict[str, str] = {}
    with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            fields[key] = value
    return int(fields.get("VmRSS", "0 kB").split()[0]), int(fields.get("VmHWM", "0 kB").split()[0])


def usage(pid: int) -> Usage:
    """CPU and memory of ``pid`` and its descendants (processes that exit meanwhile are left out)."""
    cpu_ticks = rss = peak = 0
    for member in descendants(pid):
        try:
            fields = _stat(member)
            now, high = _memory_kib(member)
        except OSError:
            continue
        cpu_ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
        rss, peak = rss + now, peak + high
    return Usage(cpu_ticks / _TICKS, rss / 1024, peak / 1024)


def machine() -> dict[str, Any]:
    """What a benchmark report says it ran on: the date, the CPU model and count, Python, the platform."""
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            models = [line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")]
        model = models[0] if models else ""
    except OSError:
        pass
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": model or platform.processor(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
