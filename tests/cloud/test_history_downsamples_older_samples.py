"""The database keeps the last hour of health samples as received and older ones as 5-minute buckets (the
loads' mean, the levels' maximum), reads both back as one series, and never grows past its bound
(edgefleet.cloud.persisting, edgefleet.cloud.store; docs/operations.md, "Disk")."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from edgefleet.clock import FakeClock
from edgefleet.cloud.fleet import FleetState, HealthPoint, apply_heartbeat
from edgefleet.cloud.persisting import FULL_RESOLUTION_S, TRIM_INTERVAL_S, Persister
from edgefleet.cloud.store import DOWNSAMPLE_S, Store
from edgefleet.ids import BoxId
from tests.cloud.builders import BOX, BOX_2, T0, heartbeat, inventory

HOUR = 3600.0
assert T0 % DOWNSAMPLE_S == 0, "the figures below count buckets from T0"


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = Store(database_url)
    store.create_schema()
    yield store
    store.close()


def point(at: float, *, cpu: float = 20.0, gpu_c: float = 60.0) -> HealthPoint:
    return HealthPoint(at, cpu, 50.0, 30.0, gpu_c, 40.0)


def persister(store: Store, clock: FakeClock, *, retention_s: float = 24 * HOUR, max_points: int = 720) -> Persister:
    return Persister(
        FleetState.for_inventory(inventory()),
        store,
        clock=clock,
        interval_s=2.0,
        history_retention_s=retention_s,
        history_max_points=max_points,
    )


def test_older_samples_become_buckets_that_keep_the_hottest_gpu(store: Store) -> None:
    # Three hours at 10 s; the CPU cycles 0..90 (a bucket's mean is 45), one GPU reading of 95 C in the 4th bucket.
    points = [point(T0 + 10 * i, cpu=10.0 * (i % 10), gpu_c=95.0 if i == 100 else 60.0) for i in range(1080)]
    store.save([], [(BOX, p) for p in points], [])
    clock = FakeClock(T0 + 3 * HOUR)

    assert persister(store, clock).flush()

    assert store.count_samples(BOX) == 360, "the last hour stays as received"
    assert store.count_rollups(BOX) == 24, "the two hours before it are 5-minute buckets"
    series = store.history(BOX, since=T0)
    assert [p.at for p in series] == [T0 + 300 * b for b in range(24)] + [T0 + 2 * HOUR + 10 * i for i in range(360)]
    buckets = series[:24]
    assert {p.cpu_percent for p in buckets} == {45.0}, "loads keep their mean"
    assert [p.gpu_temperature_max_c for p in buckets].count(95.0) == 1, "the hottest reading is not averaged away"
    assert buckets[3].gpu_temperature_max_c == 95.0
    assert series[24:] == points[720:], "recent samples are returned as received"
    # The newest N across the boundary, and a window that starts inside the bucketed past.
    assert [p.at for p in store.history(BOX, limit=362)] == [T0 + 2 * HOUR - 600, T0 + 2 * HOUR - 300] + [
        p.at for p in points[720:]
    ]
    assert store.history(BOX, since=T0 + HOUR, before=T0 + HOUR + 600) == series[12:14]


def test_a_sample_saved_late_joins_its_bucket(store: Store) -> None:
    store.save([], [(BOX, point(T0 + 10 * i, cpu=10.0)) for i in range(30)], [])
    clock = FakeClock(T0 + 2 * HOUR)
    keeper = persister(store, clock)
    assert keeper.flush()
    # Held by the persister while the database was away, saved after its bucket was made.
    store.save([], [(BOX, point(T0 + 5, cpu=70.0, gpu_c=90.0))], [])
    clock.advance(TRIM_INTERVAL_S)
    assert keeper.flush()

    assert store.count_samples(BOX) == 0
    (bucket,) = store.history(BOX)
    assert bucket.at == T0
    assert bucket.cpu_percent == pytest.approx((30 * 10.0 + 70.0) / 31)
    assert bucket.gpu_temperature_max_c == 90.0


def test_the_history_never_grows_past_its_bound(store: Store) -> None:
    """Six hours with a 3-hour retention, every sample through the live state and the persister: a box at its
    10 s and a box beating every second (its site says 10 s)."""
    retention_s, max_points = 3 * HOUR, 720  # the default: twice an hour at 10 s
    clock = FakeClock(T0)
    keeper = persister(store, clock, retention_s=retention_s, max_points=max_points)
    state = keeper.state
    # Between two trims a box adds a trim interval of samples to its bound.
    normal_bound = (FULL_RESOLUTION_S + DOWNSAMPLE_S + TRIM_INTERVAL_S) / 10
    fast_bound = max_points * 1.1 + TRIM_INTERVAL_S
    bucket_bound = (retention_s - FULL_RESOLUTION_S) / DOWNSAMPLE_S + 1
    seq = {BOX: 0, BOX_2: 0}
    for minute in range(6 * 60):
        for second in range(60):
            clock.advance(1)
            for box in (BOX_2, BOX) if second % 10 == 0 else (BOX_2,):
                seq[box] += 1
                with state.lock:
                    outcome = apply_heartbeat(
                        state.boxes[box], heartbeat(seq[box], box=box, sent_at=clock.now()), received_at=clock.now()
                    )
                assert outcome == "accepted"
        assert keeper.flush()
        if minute % 30 == 29:
            assert store.count_samples(BOX) <= normal_bound
            assert store.count_samples(BOX_2) <= fast_bound
            for box in (BOX, BOX_2):
                assert store.count_rollups(BoxId(box)) <= bucket_bound
    assert store.count_rollups(BOX) >= bucket_bound - 1, "the bound is reached: the run is long enough to say it"
    oldest = store.history(BOX, limit=1_000_000)[0]
    assert oldest.at >= clock.now() - retention_s
