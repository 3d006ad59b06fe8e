"""The heartbeat schedule: boxes of one interval beat at even gaps, jitter stays within its bounds, and a box
that fell behind skips its missed beats instead of bursting."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator.scheduling import HeartbeatSchedule


def run_until(schedule: HeartbeatSchedule, end: float, tick: float = 0.001) -> list[tuple[float, int]]:
    beats = []
    now = 0.0
    while now <= end:
        beats += [(now, index) for index in schedule.pop_due(now)]
        now += tick
    return beats


def test_boxes_of_one_interval_beat_at_even_gaps() -> None:
    schedule = HeartbeatSchedule([10.0] * 2000, start=0.0)
    beats = run_until(schedule, 9.999)
    assert len(beats) == 2000, "each box once per interval"
    per_second = [sum(1 for at, _ in beats if s <= at < s + 1) for s in range(10)]
    assert per_second == [200] * 10


@pytest.mark.parametrize("jitter", [0.0, 0.2, 0.9])
def test_every_box_beats_once_per_interval_on_average(jitter: float) -> None:
    schedule = HeartbeatSchedule([1.0, 2.0, 0.5], start=0.0, jitter=jitter, rng=random.Random(4))
    beats = run_until(schedule, 200.0, tick=0.01)
    counts = [sum(1 for _, i in beats if i == index) for index in range(3)]
    for count, expected in zip(counts, (200, 100, 400), strict=True):
        assert abs(count - expected) <= expected * 0.1


@given(
    jitter=st.floats(min_value=0, max_value=0.9),
    interval=st.floats(min_value=0.1, max_value=3600),
    seed=st.integers(0, 100),
)
def test_jitter_keeps_each_gap_within_its_bounds(jitter: float, interval: float, seed: int) -> None:
    schedule = HeartbeatSchedule([interval], start=0.0, jitter=jitter, rng=random.Random(seed))
    for _ in range(20):
        gap = schedule.step(0)
        assert interval * (1 - jitter) - 1e-9 <= gap <= interval * (1 + jitter) + 1e-9


def test_a_box_that_fell_behind_skips_missed_beats() -> None:
    schedule = HeartbeatSchedule([1.0], start=0.0)
    assert schedule.pop_due(0.0) == [0]
    assert schedule.pop_due(10.5) == [0], "one beat, not ten"
    assert schedule.next_due() == pytest.approx(11.5)


@pytest.mark.parametrize(("intervals", "jitter", "words"), [([1.0], 1.5, "jitter"), ([0.0], 0.0, "more than 0")])
def test_bad_settings_are_refused(intervals: list[float], jitter: float, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        HeartbeatSchedule(intervals, start=0.0, jitter=jitter)
