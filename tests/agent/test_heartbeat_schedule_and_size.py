"""Heartbeats are due on a fixed grid of monotonic time (no drift, no burst after a stall), and a heartbeat is
always small enough for the controller to take, whatever its sources returned."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgefleet.agent.reporting import BoxReporter
from edgefleet.agent.running import fit_heartbeat, make_heartbeat, next_beat_at
from edgefleet.clock import FakeClock
from edgefleet.messages import (
    MAX_MESSAGE_BYTES,
    AppReport,
    AppState,
    GpuReport,
    GpuSample,
    HostSample,
    decode_heartbeat,
    encode,
)


@pytest.mark.parametrize(
    ("scheduled", "now", "interval", "expected"),
    [
        (100.0, 100.2, 10.0, 110.0),  # sampling took 0.2 s: the next one is still due on the grid
        (100.0, 109.9, 10.0, 110.0),
        (100.0, 110.0, 10.0, 110.0),  # due right now
        (100.0, 110.5, 10.0, 120.0),  # one slot missed: skipped, not sent late
        (100.0, 1000.0, 10.0, 1000.0),
        (100.0, 1000.1, 10.0, 1010.0),  # a box suspended for 15 minutes: one heartbeat, then on the grid
        (0.0, 0.05, 0.2, 0.2),
    ],
)
def test_next_beat_is_on_the_grid(scheduled: float, now: float, interval: float, expected: float) -> None:
    assert next_beat_at(scheduled, now, interval) == pytest.approx(expected)


@given(
    scheduled=st.floats(0, 1e6),
    late=st.floats(0, 1e5),
    interval=st.floats(0.01, 3600),
)
def test_next_beat_is_the_first_grid_point_not_past(scheduled: float, late: float, interval: float) -> None:
    now = scheduled + late
    due = next_beat_at(scheduled, now, interval)
    eps = 1e-6 * max(1.0, now)
    assert due > scheduled
    assert due >= now - eps  # never in the past: no burst of catch-up heartbeats
    assert due - now <= interval + eps  # never more than one interval away
    steps = (due - scheduled) / interval
    assert abs(steps - round(steps)) < 1e-6 * max(1.0, steps)  # on the grid: no drift


def test_many_beats_do_not_drift() -> None:
    scheduled = 0.0
    for _ in range(10_000):
        # every beat takes 30 ms of work; the schedule does not move with it
        scheduled = next_beat_at(scheduled, scheduled + 0.03, 0.5)
    assert scheduled == pytest.approx(5000.0)


class _Host:
    def sample(self) -> HostSample:
        return HostSample(cpu_percent=12.5)


class _Gpus:
    def __init__(self, count: int) -> None:
        self.count = count

    def sample(self) -> GpuReport:
        gpus = [
            GpuSample(index=i, name="N" * 256, uuid="U" * 256, throttle_reasons=["R" * 256] * 9)
            for i in range(self.count)
        ]
        return GpuReport(available=True, gpus=gpus)


class _Apps:
    def __init__(self, count: int) -> None:
        self.count = count

    def read(self) -> AppReport:
        apps = [
            AppState(name="n" * 256, version="v" * 256, state="running", detail="d" * 256) for _ in range(self.count)
        ]
        return AppReport(source="file:/etc/edgefleet/apps.json", apps=apps)

    def states(self) -> AppReport:
        return self.read()


class _Broken:
    def sample(self) -> GpuReport:
        raise RuntimeError("boom")

    def read(self) -> AppReport:
        raise RuntimeError("boom")

    def states(self) -> AppReport:
        raise RuntimeError("boom")


def reporter() -> BoxReporter:
    return BoxReporter("sh-qingpu-gpu-01", "sh-qingpu", interval_s=10, clock=FakeClock())


def test_a_normal_heartbeat_is_left_as_it_is() -> None:
    heartbeat = make_heartbeat(reporter(), _Host(), _Gpus(2), _Apps(3))
    assert len(heartbeat.apps.apps) == 3
    assert len(heartbeat.gpu.gpus) == 2
    assert fit_heartbeat(heartbeat) is heartbeat


def test_an_oversized_apps_list_is_left_out_with_a_note() -> None:
    heartbeat = make_heartbeat(reporter(), _Host(), _Gpus(2), _Apps(200))
    assert heartbeat.apps.apps == []
    assert heartbeat.apps.error is not None
    assert "left out" in heartbeat.apps.error
    assert len(heartbeat.gpu.gpus) == 2
    assert heartbeat.seq == 1  # cutting does not use up a sequence number
    assert decode_heartbeat(encode(heartbeat)) == heartbeat


def test_oversized_gpus_are_left_out_too() -> None:
    heartbeat = make_heartbeat(reporter(), _Host(), _Gpus(60), _Apps(200))
    assert len(encode(heartbeat)) <= MAX_MESSAGE_BYTES
    assert heartbeat.gpu.gpus == []
    assert heartbeat.gpu.available
    assert decode_heartbeat(encode(heartbeat)) == heartbeat


def test_a_probe_that_raises_costs_its_section_not_the_heartbeat() -> None:
    heartbeat = make_heartbeat(reporter(), _Host(), _Broken(), _Broken())
    assert heartbeat.host.cpu_percent == 12.5
    assert not heartbeat.gpu.available
    assert heartbeat.gpu.reason == "GPU probe failed: boom"
    assert heartbeat.apps.error == "apps probe failed: boom"
    assert decode_heartbeat(encode(heartbeat)) == heartbeat


def test_interval_grid_survives_tiny_intervals() -> None:
    assert math.isclose(next_beat_at(1.0, 1.0001, 0.01), 1.01)
