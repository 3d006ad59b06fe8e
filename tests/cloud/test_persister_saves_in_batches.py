"""The persister saves what changed in batches, keeps everything across failed saves, logs once per streak of
failures, trims the history and makes a last flush on stop (edgefleet.cloud.persisting)."""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator, Sequence

import pytest

from edgefleet.clock import FakeClock
from edgefleet.cloud.fleet import BoxLive, FleetState, UnknownBox, apply_heartbeat, apply_status, note_unknown_box
from edgefleet.cloud.persisting import Persister
from edgefleet.cloud.store import Sample, Store, StoreError
from edgefleet.ids import BoxId
from tests.cloud.builders import BOX, BOX_2, OTHER_BOX, T0, heartbeat, inventory, status
from tests.support.peers import wait_for


class FlakyStore:
    """The real store behind our own seam, refusing the next ``failures`` saves as a database away would."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.failures = 0
        self.read_failures = 0
        self.saves: list[tuple[int, int, int]] = []

    def save(self, boxes: Sequence[BoxLive], samples: Sequence[Sample], unknown: Sequence[UnknownBox]) -> None:
        if self.failures:
            self.failures -= 1
            raise StoreError("database sqlite:///x: failed to save the fleet state: disk I/O error")
        self.store.save(boxes, samples, unknown)
        self.saves.append((len(boxes), len(samples), len(unknown)))

    def saved_last_seen(self) -> dict[BoxId, float]:
        if self.read_failures:
            self.read_failures -= 1
            raise StoreError("database sqlite:///x: failed to read what the leader saved: disk I/O error")
        return self.store.saved_last_seen()

    def trim_history(
        self,
        *,
        older_than: float,
        boxes: Collection[BoxId] = (),
        keep: int | None = None,
        downsample_before: float | None = None,
    ) -> int:
        return self.store.trim_history(
            older_than=older_than, boxes=boxes, keep=keep, downsample_before=downsample_before
        )


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = Store(database_url)
    store.create_schema()
    yield store
    store.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


def beat(state: FleetState, box: BoxId, seq: int, clock: FakeClock) -> None:
    """Heartbeat ``seq`` of ``box``, sent and received now (a box whose clock is right)."""
    message = heartbeat(seq, box=box, sent_at=clock.now())
    with state.lock:
        assert apply_heartbeat(state.boxes[box], message, received_at=clock.now()) == "accepted"


def make(state: FleetState, sink: FlakyStore | Store, clock: FakeClock, **kwargs: float) -> Persister:
    options: dict[str, float] = {"interval_s": 60.0, "history_retention_s": 3600.0, "history_max_points": 100}
    options.update(kwargs)
    return Persister(
        state,
        sink,
        clock=clock,
        interval_s=options["interval_s"],
        history_retention_s=options["history_retention_s"],
        history_max_points=int(options["history_max_points"]),
    )


def test_flush_saves_only_what_changed(store: Store, clock: FakeClock) -> None:
    state = FleetState.for_inventory(inventory())
    sink = FlakyStore(store)
    persister = make(state, sink, clock)
    for seq in (1, 2, 3):
        beat(state, BOX, seq, clock)
        clock.advance(10)
    with state.lock:
        apply_status(state.boxes[BOX_2], status("online", box=BOX_2), received_at=clock.now())
        note_unknown_box(state, "stray-01", None, received_at=clock.now())
    assert persister.flush()
    assert sink.saves == [(2, 3, 1)]
    assert [p.at for p in store.history(BOX)] == [T0, T0 + 10, T0 + 20]
    assert not any(live.dirty for live in state.boxes.values())
    assert persister.flush()  # nothing new: no save at all
    assert sink.saves == [(2, 3, 1)]
    beat(state, BOX, 4, clock)
    assert persister.flush()
    assert sink.saves[-1] == (1, 1, 0)
    boxes, unknown = store.load()
    assert {b.box: b.seq for b in boxes} == {BOX: 4, BOX_2: 0}
    assert [u.box for u in unknown] == ["stray-01"]


def test_failed_saves_keep_everything_for_the_next_flush(
    store: Store, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edgefleet.cloud.persisting")
    state = FleetState.for_inventory(inventory())
    sink = FlakyStore(store)
    persister = make(state, sink, clock)
    sink.failures = 3
    for seq in range(1, 6):
        beat(state, BOX, seq, clock)
        beat(state, OTHER_BOX, seq, clock)
        clock.advance(10)
        assert persister.flush() == (seq > 3)  # the database is away for the first three flushes
        if seq <= 3:
            assert persister.stats.pending_boxes == 2
            assert persister.stats.pending_samples == 2 * seq
    assert persister.stats.failed_flushes == 3
    assert persister.stats.failure_streak == 0
    assert (persister.stats.pending_boxes, persister.stats.pending_samples) == (0, 0)
    # Every point accepted during the outage reached the database, and the latest state of each box.
    assert [p.at for p in store.history(BOX)] == [T0 + 10 * i for i in range(5)]
    assert {b.box: b.seq for b in store.load()[0]} == {BOX: 5, OTHER_BOX: 5}
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "Failed to save fleet state; keeping it for the next flush",
        "Saved fleet state again after failed flushes",
    ]


def test_flush_never_raises(store: Store, clock: FakeClock) -> None:
    class Broken(FlakyStore):
        def save(self, boxes: Sequence[BoxLive], samples: Sequence[Sample], unknown: Sequence[UnknownBox]) -> None:
            raise RuntimeError("a bug in the driver")

    state = FleetState.for_inventory(inventory())
    beat(state, BOX, 1, clock)
    persister = make(state, Broken(store), clock)
    assert not persister.flush()
    assert persister.stats.last_error == "a bug in the driver"
    assert persister.stats.pending_boxes == 1


def test_history_is_trimmed_by_age_and_per_box(store: Store, clock: FakeClock) -> None:
    state = FleetState.for_inventory(inventory())
    persister = make(state, store, clock, history_retention_s=1000.0, history_max_points=20)
    for seq in range(1, 51):
        beat(state, BOX, seq, clock)
        clock.advance(1)
    assert persister.flush()  # first flush trims too: 50 points > 20 + a tenth of 20
    assert store.count_samples(BOX) == 20
    clock.advance(10)
    beat(state, BOX, 51, clock)
    assert persister.flush()  # 10 s after the last trim: not due yet
    assert store.count_samples(BOX) == 21
    clock.advance(2000)
    beat(state, BOX, 52, clock)
    assert persister.flush()
    assert [p.at for p in store.history(BOX)] == [clock.now()]  # the rest is older than the retention


def test_scheduled_flushes_and_a_last_one_on_stop(store: Store, clock: FakeClock) -> None:
    state = FleetState.for_inventory(inventory())
    persister = make(state, store, clock, interval_s=0.05)
    persister.start()
    try:
        beat(state, BOX, 1, clock)
        wait_for(lambda: store.count_samples(BOX) == 1, what="a scheduled flush")
        beat(state, BOX, 2, clock)
    finally:
        persister.stop()
    assert store.count_samples(BOX) == 2
    assert {b.box: b.seq for b in store.load()[0]}[BOX] == 2


def test_stepping_down_and_leading_again_loses_nothing(store: Store, clock: FakeClock) -> None:
    """A lone leader that loses its database steps down (its last flush refused by the fence) and leads again
    when the database answers: the points it held, and those heard while it stood by, all reach the database."""
    state = FleetState.for_inventory(inventory())
    sink = FlakyStore(store)
    persister = make(state, sink, clock, interval_s=3600.0)
    beat(state, BOX, 1, clock)
    assert persister.flush()
    sink.failures = 2
    for seq in (2, 3):  # the database away: the flush fails and keeps them
        clock.advance(10)
        beat(state, BOX, seq, clock)
    assert not persister.flush()
    persister.start()
    persister.stop()  # stepping down: the last flush is refused too
    assert persister.stats.pending_samples == 2
    for seq in (4, 5):  # heard while standing by: the persister does not run
        clock.advance(10)
        beat(state, BOX, seq, clock)
    persister.start()  # leading again
    persister.stop()
    assert [p.at for p in store.history(BOX)] == [T0 + 10 * i for i in range(5)]
    assert {b.box: b.seq for b in store.load()[0]}[BOX] == 5
