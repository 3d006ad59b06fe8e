"""The box's own health read from the kernel: CPU from /proc/stat, load from /proc/loadavg, memory from
/proc/meminfo, uptime from /proc/uptime, disk from statvfs.

``ProcHostProbe`` is the agent's ``HostProbe`` (``edgefleet.agent.sources``); ``running`` calls ``sample()`` once per
heartbeat, and ``cli sample`` once. The /proc root is a parameter so tests read a fake proc directory.

CPU busy is a rate, so it needs two readings of /proc/stat. The probe takes the first one when it is built, and
each ``sample()`` reports the busy share since the previous figure. When too few clock ticks have passed for a
figure (the agent samples right after start) it says None rather than guessing: a since-boot average would look
like a current value but mean nothing, and a short blocking measurement would delay the first heartbeat of every
start. So the first heartbeat of a boot has no CPU figure; the second has the average over its interval.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Final

from edgefleet.messages import HostSample

log = logging.getLogger(__name__)

# /proc/stat "cpu" line: user nice system idle iowait irq softirq steal (guest and guest_nice are already counted in
# user and nice, so they are left out of the total). Idle time is idle + iowait: a CPU waiting for the disk is free.
_STAT_FIELDS_IN_TOTAL: Final = 8
_IDLE_FIELDS: Final = (3, 4)
# Fewer ticks than this (all CPUs together; the kernel counts 100 a second per CPU) make no figure: over one tick
# a CPU is either 0% or 100% busy, which is noise, not a measurement. The window then grows to the next sample.
MIN_CPU_TICKS: Final = 10
_KIB: Final = 1024


def read_uptime_s(proc_root: Path = Path("/proc")) -> float | None:
    """Seconds since the box booted (first field of /proc/uptime), or None when it cannot be read."""
    try:
        return max(0.0, float((proc_root / "uptime").read_text().split()[0]))
    except (OSError, ValueError, IndexError) as exc:
        log.debug("Could not read box uptime", extra={"path": str(proc_root / "uptime"), "error": str(exc)})
        return None


def read_cpu_times(proc_root: Path = Path("/proc")) -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs together since boot; raises OSError or ValueError."""
    with (proc_root / "stat").open() as f:
        first = f.readline().split()
    if not first or first[0] != "cpu" or len(first) < 1 + _IDLE_FIELDS[-1] + 1:
        raise ValueError(f"{proc_root / 'stat'}: first line is not the aggregate 'cpu' line")
    ticks = [int(v) for v in first[1 : 1 + _STAT_FIELDS_IN_TOTAL]]
    total = sum(ticks)
    idle = sum(ticks[i] for i in _IDLE_FIELDS)
    return total - idle, total


def cpu_percent_between(before: tuple[int, int], after: tuple[int, int]) -> float | None:
    """Busy share of the CPU ticks between two readings, 0-100; None when fewer than ``MIN_CPU_TICKS`` passed (or
    the counters went back, which happens only when the readings come from different boots)."""
    busy = after[0] - before[0]
    total = after[1] - before[1]
    if total < MIN_CPU_TICKS or busy < 0:
        return None
    return min(100.0, max(0.0, 100.0 * busy / total))


class ProcHostProbe:
    """CPU, load, memory, disk and uptime of this box. Never raises: a reading that fails is None, and each kind of
    failure is logged once (a box without /proc/loadavg would otherwise log it every 10 s)."""

    def __init__(self, proc_root: Path = Path("/proc"), disk_path: str = "/") -> None:
        self.proc_root = proc_root
        self.disk_path = disk_path
        self._logged: set[str] = set()
        self._cpu_before = self._read_cpu()

    def sample(self) -> HostSample:
        cpu_now = self._read_cpu()
        cpu_percent = None
        if cpu_now is not None:
            if self._cpu_before is None or cpu_now[1] < self._cpu_before[1]:
                self._cpu_before = cpu_now  # the first reading that worked, or counters of another boot
            else:
                cpu_percent = cpu_percent_between(self._cpu_before, cpu_now)
                if cpu_percent is not None:
                    self._cpu_before = cpu_now  # else the window is too short yet: measure from the same start
        load = self._read_load()
        memory_total, memory_available = self._read_memory()
        disk_total, disk_free = self._read_disk()
        return HostSample(
            cpu_percent=cpu_percent,
            load1=load[0],
            load5=load[1],
            load15=load[2],
            memory_total_bytes=memory_total,
            memory_available_bytes=memory_available,
            disk_path=self.disk_path[:256],
            disk_total_bytes=disk_total,
            disk_free_bytes=disk_free,
            uptime_s=read_uptime_s(self.proc_root),
        )

    def _failed(self, what: str, where: str, exc: Exception) -> None:
        if what not in self._logged:
            self._logged.add(what)
            log.warning(
                "Failed to read box health value; reporting it as unknown",
                extra={"value": what, "path": where, "error": str(exc)},
            )

    def _read_cpu(self) -> tuple[int, int] | None:
        try:
            return read_cpu_times(self.proc_root)
        except (OSError, ValueError) as exc:
            self._failed("CPU times", str(self.proc_root / "stat"), exc)
            return None

    def _read_load(self) -> tuple[float | None, float | None, float | None]:
        path = self.proc_root / "loadavg"
        try:
            fields = path.read_text().split()
            load1, load5, load15 = (max(0.0, float(v)) for v in fields[:3])
        except (OSError, ValueError) as exc:
            self._failed("load average", str(path), exc)
            return None, None, None
        return load1, load5, load15

    def _read_memory(self) -> tuple[int | None, int | None]:
        path = self.proc_root / "meminfo"
        values: dict[str, int] = {}
        try:
            with path.open() as f:
                for line in f:
                    key, _, rest = line.partition(":")
                    if key in ("MemTotal", "MemAvailable"):
                        # Lines read "MemTotal:       24684096 kB"; the kernel's "kB" is KiB.
                        values[key] = int(rest.split()[0]) * _KIB
                        if len(values) == 2:
                            break
        except (OSError, ValueError, IndexError) as exc:
            self._failed("memory", str(path), exc)
            return None, None
        if len(values) < 2:
            self._failed("memory", str(path), ValueError("MemTotal or MemAvailable missing (kernel older than 3.14?)"))
        return values.get("MemTotal"), values.get("MemAvailable")

    def _read_disk(self) -> tuple[int | None, int | None]:
        try:
            st = os.statvfs(self.disk_path)
        except OSError as exc:
            self._failed("disk", self.disk_path, exc)
            return None, None
        # f_bavail, not f_bfree: the blocks reserved for root are no room for the apps.
        return st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize
