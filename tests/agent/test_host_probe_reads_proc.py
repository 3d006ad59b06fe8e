"""The host probe reads CPU, load, memory and uptime from a proc directory, and reports what it cannot read as None."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgefleet.agent.probes import (
    MIN_CPU_TICKS,
    ProcHostProbe,
    cpu_percent_between,
    read_cpu_times,
    read_uptime_s,
)

MEMINFO = """MemTotal:       16384000 kB
MemFree:         1000000 kB
MemAvailable:    8192000 kB
Buffers:          100000 kB
"""


def write_stat(proc: Path, user: int, system: int, idle: int, iowait: int = 0, steal: int = 0) -> None:
    # user nice system idle iowait irq softirq steal guest guest_nice
    (proc / "stat").write_text(
        f"cpu  {user} 0 {system} {idle} {iowait} 0 0 {steal} 50 0\ncpu0 {user} 0 {system} {idle} {iowait} 0 0 0 0 0\n"
        "intr 12345\nctxt 999\n"
    )


@pytest.fixture
def proc(tmp_path: Path) -> Path:
    root = tmp_path / "proc"
    root.mkdir()
    write_stat(root, user=1000, system=500, idle=8000, iowait=500)
    (root / "loadavg").write_text("0.52 1.25 2.00 3/456 7890\n")
    (root / "meminfo").write_text(MEMINFO)
    (root / "uptime").write_text("12345.67 23456.78\n")
    return root


def test_first_sample_has_no_cpu_figure_then_the_busy_share_between_samples(proc: Path) -> None:
    probe = ProcHostProbe(proc_root=proc, disk_path=str(proc))
    assert probe.sample().cpu_percent is None  # no tick between the baseline and the first sample

    # 300 busy ticks (200 user + 100 system) out of 1000: 30%; iowait counts as idle.
    write_stat(proc, user=1200, system=600, idle=8600, iowait=600)
    assert probe.sample().cpu_percent == pytest.approx(30.0)

    # The next sample measures from the previous one, not from the start.
    write_stat(proc, user=1200, system=600, idle=9600, iowait=600)
    assert probe.sample().cpu_percent == pytest.approx(0.0)

    # A window of a few ticks gives no figure, and the next sample measures from the same start.
    write_stat(proc, user=1204, system=600, idle=9600, iowait=600)
    assert probe.sample().cpu_percent is None
    write_stat(proc, user=1250, system=600, idle=9650, iowait=600)
    assert probe.sample().cpu_percent == pytest.approx(50.0)


def test_load_memory_uptime_and_disk(proc: Path) -> None:
    sample = ProcHostProbe(proc_root=proc, disk_path=str(proc)).sample()
    assert (sample.load1, sample.load5, sample.load15) == (0.52, 1.25, 2.0)
    assert sample.memory_total_bytes == 16384000 * 1024
    assert sample.memory_available_bytes == 8192000 * 1024
    assert sample.uptime_s == pytest.approx(12345.67)
    st_ = os.statvfs(proc)
    assert sample.disk_path == str(proc)
    assert sample.disk_total_bytes == st_.f_blocks * st_.f_frsize
    assert sample.disk_free_bytes is not None
    assert 0 < sample.disk_free_bytes <= sample.disk_total_bytes


def test_unreadable_values_are_none_and_logged_once(proc: Path, caplog: pytest.LogCaptureFixture) -> None:
    (proc / "loadavg").unlink()
    (proc / "meminfo").write_text("MemTotal: lots kB\n")
    (proc / "uptime").write_text("")
    probe = ProcHostProbe(proc_root=proc, disk_path=str(proc / "no-such-disk"))
    for _ in range(3):
        sample = probe.sample()
        assert sample.load1 is None
        assert sample.load5 is None
        assert sample.load15 is None
        assert sample.memory_total_bytes is None
        assert sample.memory_available_bytes is None
        assert sample.disk_total_bytes is None
        assert sample.disk_free_bytes is None
        assert sample.uptime_s is None
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert sorted(r.value for r in warnings) == ["disk", "load average", "memory"]  # type: ignore[attr-defined]


def test_a_stat_file_without_the_cpu_line_gives_no_cpu_figure(proc: Path) -> None:
    (proc / "stat").write_text("intr 1\n")
    with pytest.raises(ValueError, match="aggregate 'cpu' line"):
        read_cpu_times(proc)
    assert ProcHostProbe(proc_root=proc).sample().cpu_percent is None


def test_real_proc_gives_every_value() -> None:
    sample = ProcHostProbe().sample()
    assert sample.memory_total_bytes
    assert sample.memory_available_bytes is not None
    assert sample.load1 is not None
    assert sample.disk_total_bytes
    assert read_uptime_s() is not None


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        ((100, 1000), (100, 1000), None),  # no tick passed
        ((100, 1000), (105, 1009), None),  # too few ticks to mean anything
        ((100, 1000), (105, 1010), 50.0),
        ((100, 1000), (600, 2000), 50.0),
        ((100, 1000), (100, 2000), 0.0),
        ((100, 1000), (1100, 2000), 100.0),
        ((500, 5000), (100, 1000), None),  # counters went back: another boot
    ],
)
def test_cpu_percent_between_readings(before: tuple[int, int], after: tuple[int, int], expected: float | None) -> None:
    assert cpu_percent_between(before, after) == expected


@given(
    busy=st.integers(0, 10**12),
    idle=st.integers(0, 10**12),
    more_busy=st.integers(0, 10**9),
    more_idle=st.integers(0, 10**9),
)
def test_cpu_percent_is_a_percentage_whenever_ticks_passed(
    busy: int, idle: int, more_busy: int, more_idle: int
) -> None:
    result = cpu_percent_between((busy, busy + idle), (busy + more_busy, busy + idle + more_busy + more_idle))
    if more_busy + more_idle < MIN_CPU_TICKS:
        assert result is None
    else:
        assert result is not None
        assert 0.0 <= result <= 100.0
        assert result == pytest.approx(100.0 * more_busy / (more_busy + more_idle))
