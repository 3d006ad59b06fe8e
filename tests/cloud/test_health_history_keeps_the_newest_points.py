"""A box's in-memory health history keeps the newest points, exactly as they were taken, in a small fraction of
the memory a HealthPoint object a point took (edgefleet.cloud.fleet.HealthHistory)."""

from __future__ import annotations

import gc
import tracemalloc
from collections import deque

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgefleet.cloud.fleet import (
    HISTORY_POINTS,
    BoxLive,
    HealthHistory,
    HealthPoint,
    apply_heartbeat,
    health_point,
)
from edgefleet.messages import GpuReport, Heartbeat, HostSample
from tests.cloud.builders import BOX, SITE, T0, gpus, heartbeat

# A row is six float64 (48 B); the array's header over 360 rows adds a fraction of a byte. The HealthPoint
# objects the history held before took ~225 B a point (docs/performance.md), so this bound fails on that layout.
MAX_BYTES_PER_POINT = 50.0

# Any float but NaN: NaN is how a missing reading is stored, and no heartbeat can carry one (JSON has none).
readings = st.one_of(st.none(), st.floats(allow_nan=False))
points = st.builds(
    HealthPoint,
    at=st.floats(min_value=0.0, max_value=4e9, allow_nan=False),
    cpu_percent=readings,
    memory_used_percent=readings,
    disk_used_percent=readings,
    gpu_temperature_max_c=readings,
    gpu_utilization_avg_percent=readings,
)


@settings(max_examples=200, deadline=None)
@given(maxlen=st.integers(min_value=1, max_value=6), appended=st.lists(points, max_size=20))
def test_history_reads_like_a_bounded_deque(maxlen: int, appended: list[HealthPoint]) -> None:
    history = HealthHistory(maxlen)
    model: deque[HealthPoint] = deque(maxlen=maxlen)
    for point in appended:
        history.append(point)
        model.append(point)
        assert len(history) == len(model)
        assert list(history) == list(model)
    expected = list(model)
    for i in range(-len(expected), len(expected)):
        assert history[i] == expected[i]
    for start, stop in [(None, None), (1, None), (None, -1), (-2, None), (len(expected) + 3, None)]:
        assert history[start:stop] == expected[start:stop]
    for outside in (len(expected), -len(expected) - 1):
        with pytest.raises(IndexError, match="out of range"):
            history[outside]


def test_values_come_back_bit_for_bit_and_missing_readings_as_none() -> None:
    history = HealthHistory(3)
    odd = HealthPoint(T0 + 0.123456789, 0.1 + 0.2, 1e-300, 99.99999999999999, None, -0.5)
    history.append(odd)
    history.append(HealthPoint(T0 + 10, None, None, None, None, None))
    assert list(history) == [odd, HealthPoint(T0 + 10, None, None, None, None, None)]
    assert history[0].cpu_percent == 0.30000000000000004  # float64 throughout: nothing rounded on the way


def test_histories_compare_by_their_points() -> None:
    a, b = HealthHistory(3), HealthHistory(5)
    assert a == b  # both empty, like deques whatever their maxlen
    a.append(HealthPoint(T0, 1.0, None, None, None, None))
    assert a != b
    b.append(HealthPoint(T0, 1.0, None, None, None, None))
    assert a == b
    assert BoxLive(BOX, SITE) == BoxLive(BOX, SITE)  # the store's round-trip tests compare whole boxes
    a.clear()
    assert (len(a), list(a)) == (0, [])


def test_a_history_holds_at_least_one_point() -> None:
    with pytest.raises(ValueError, match="at least 1 point"):
        HealthHistory(0)


@pytest.mark.parametrize(
    "beat",
    [
        heartbeat(1),
        msgspec.structs.replace(heartbeat(1), gpu=gpus((None, 40.0), (55.0, None))),
        msgspec.structs.replace(heartbeat(1), gpu=GpuReport(available=False, reason="no NVIDIA driver")),
        msgspec.structs.replace(heartbeat(1), host=HostSample(cpu_percent=None, memory_total_bytes=0)),
    ],
    ids=["two-gpus", "partial-gpu-readings", "no-gpu", "no-host-totals"],
)
def test_the_ingest_records_what_health_point_computes(beat: Heartbeat) -> None:
    box = BoxLive(BOX, SITE)
    assert apply_heartbeat(box, beat, received_at=T0 + 3) == "accepted"
    assert list(box.history) == [health_point(beat, at=T0 + 3)]


def test_the_ingest_keeps_only_the_newest_hour() -> None:
    box = BoxLive(BOX, SITE)
    for seq in range(1, HISTORY_POINTS + 6):
        apply_heartbeat(box, heartbeat(seq, cpu=float(seq)), received_at=T0 + 10 * seq)
    assert len(box.history) == HISTORY_POINTS
    assert [p.cpu_percent for p in box.history] == [float(s) for s in range(6, HISTORY_POINTS + 6)]
    # The persister reads the newest ``unsaved_points`` by index; after the ring wrapped they are still the last.
    newest = [box.history[i].at for i in range(len(box.history) - 3, len(box.history))]
    assert newest == [T0 + 10 * s for s in range(HISTORY_POINTS + 3, HISTORY_POINTS + 6)]


def test_a_full_history_costs_under_fifty_bytes_a_point() -> None:
    boxes = 100
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        unseen = [BoxLive(BOX, SITE).history for _ in range(boxes)]
        empty_bytes = tracemalloc.get_traced_memory()[0] - before
        histories = [HealthHistory() for _ in range(boxes)]
        for n, history in enumerate(histories):
            for k in range(HISTORY_POINTS):
                # Distinct values, as heartbeats give them (the old layout kept a float object for each).
                history.record(T0 + k * 10.0, k / 7, n / 3, 50.0 + k / 11, 60.0 + k / 13, None)
        gc.collect()
        full_bytes = tracemalloc.get_traced_memory()[0] - before - empty_bytes
    finally:
        tracemalloc.stop()
    assert len(unseen) == boxes
    assert empty_bytes / boxes < 100  # a box that never sent a heartbeat holds no rows
    assert full_bytes / (boxes * HISTORY_POINTS) < MAX_BYTES_PER_POINT
