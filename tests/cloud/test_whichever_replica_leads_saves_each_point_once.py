"""Two replicas hear one fleet; only the leader saves. Whichever replica leads after a database outage saves every
health point the fleet sent meanwhile, each once: a standby's persister follows the leader (keeps what the database
lacks, forgets what the leader saved) and a new leader saves what the old one had not, never its whole memory
again (edgefleet.cloud.persisting: ``stand_by``, ``follow``, ``take_over``, ``not_saved_by_leader``)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator

import pytest

from edgefleet.clock import FakeClock
from edgefleet.cloud.fleet import HISTORY_POINTS, BoxLive, FleetState, HealthPoint, apply_heartbeat
from edgefleet.cloud.persisting import (
    SAME_HEARTBEAT_FRACTION,
    Persister,
    box_saved_by_leader,
    not_saved_by_leader,
)
from edgefleet.cloud.store import Store
from tests.cloud.builders import BOX, BOX_2, T0, heartbeat, inventory
from tests.cloud.test_persister_saves_in_batches import FlakyStore, make

INTERVAL_S = 10.0  # the builders' inventory
# The standby hears each heartbeat this long after the leader (one broker, two subscriptions).
LATER_S = 0.004


def point(at: float) -> HealthPoint:
    return HealthPoint(at, 1.0, 2.0, 3.0, None, None)


@pytest.mark.parametrize(
    ("at", "kept"),
    [
        (T0 - 10, False),  # before the leader's last saved point: saved
        (T0, False),  # the last saved point itself
        (T0 + LATER_S, False),  # the same heartbeat, heard here a few ms later
        (T0 + SAME_HEARTBEAT_FRACTION * INTERVAL_S, False),
        (T0 + SAME_HEARTBEAT_FRACTION * INTERVAL_S + 0.001, True),
        (T0 + INTERVAL_S, True),  # the next heartbeat: not saved
    ],
)
def test_a_point_is_saved_when_the_leader_saved_its_heartbeat(at: float, kept: bool) -> None:
    samples = [(BOX, point(at))]
    assert bool(not_saved_by_leader(samples, {BOX: T0}, {BOX: INTERVAL_S})) is kept


def test_a_box_the_leader_never_saved_keeps_every_point() -> None:
    samples = [(BOX_2, point(T0 - 100)), (BOX_2, point(T0))]
    assert not_saved_by_leader(samples, {BOX: T0}, {BOX: INTERVAL_S, BOX_2: INTERVAL_S}) == samples


@pytest.mark.parametrize(
    ("last_seen", "status_taken_at", "saved", "forgotten"),
    [
        (T0, None, T0, True),  # the leader saved this heartbeat
        (T0 + LATER_S, None, T0, True),  # the same heartbeat, heard here a few ms later
        (T0 + INTERVAL_S, None, T0, False),  # a heartbeat the leader has not saved
        (T0, T0 + 3.0, T0, False),  # a status (a Last Will) heard after the saved heartbeat
        (T0, T0 - 3.0, T0, True),
        (T0, None, None, False),  # the leader has no row of the box
    ],
)
def test_a_box_state_is_forgotten_only_when_the_leader_saved_all_it_says(
    last_seen: float, status_taken_at: float | None, saved: float | None, forgotten: bool
) -> None:
    copy = BoxLive(BOX, inventory().boxes[BOX].site, last_seen=last_seen, status_taken_at=status_taken_at)
    assert box_saved_by_leader(copy, saved, INTERVAL_S) is forgotten


class Replica:
    """One replica's fleet state and persister on the shared database."""

    def __init__(self, sink: FlakyStore, clock: FakeClock) -> None:
        self.state = FleetState.for_inventory(inventory(interval_s=INTERVAL_S))
        self.persister: Persister = make(self.state, sink, clock, interval_s=3600.0, history_max_points=10_000)

    def hear(self, seq: int, *, at: float) -> None:
        message = heartbeat(seq, box=BOX, sent_at=at)
        with self.state.lock:
            assert apply_heartbeat(self.state.boxes[BOX], message, received_at=at) == "accepted"


def saved_times(store: Store) -> list[float]:
    return [p.at for p in store.history(BOX)]


def test_the_standby_that_leads_after_an_outage_saves_what_the_old_leader_could_not_each_point_once(
    store: Store, clock: FakeClock
) -> None:
    sink = FlakyStore(store)
    leader, standby = Replica(sink, clock), Replica(sink, clock)
    at = T0
    for seq in range(1, 4):  # both hear; the leader saves; the standby follows
        leader.hear(seq, at=at)
        standby.hear(seq, at=at + LATER_S)
        at += INTERVAL_S
    assert leader.persister.flush()
    assert standby.persister.follow()
    assert standby.persister.stats.pending_samples == 0, "it forgot what the leader saved"
    assert standby.persister.stats.pending_boxes == 0

    sink.failures = sink.read_failures = 100  # the database away for both
    for seq in range(4, 8):
        leader.hear(seq, at=at)
        standby.hear(seq, at=at + LATER_S)
        at += INTERVAL_S
    assert not leader.persister.flush()  # the old leader holds seq 4-7, and stands by
    assert not standby.persister.follow()  # it cannot tell what was saved: it keeps everything
    assert standby.persister.stats.pending_samples == 4

    sink.failures = sink.read_failures = 0  # the database back; the standby wins the lease
    standby.hear(8, at=at + LATER_S)
    assert standby.persister.take_over()
    standby.persister.start()
    standby.persister.stop()
    saved = saved_times(store)
    assert len(saved) == 8, f"each heartbeat once: {saved}"
    assert saved[:3] == [T0, T0 + 10, T0 + 20]  # the old leader's, not saved again
    assert saved[3:] == [T0 + 10 * i + LATER_S for i in range(3, 8)]  # the outage's, as the new leader heard them
    assert {b.box: b.seq for b in store.load()[0]}[BOX] == 8


def test_the_old_leader_that_leads_again_saves_what_it_held_and_nothing_the_other_saved(
    store: Store, clock: FakeClock
) -> None:
    sink = FlakyStore(store)
    first, second = Replica(sink, clock), Replica(sink, clock)
    at = T0
    first.hear(1, at=at)
    second.hear(1, at=at + LATER_S)
    assert first.persister.flush()
    sink.failures = 1
    at += INTERVAL_S
    first.hear(2, at=at)
    second.hear(2, at=at + LATER_S)
    assert not first.persister.flush()  # deposed holding seq 2
    first.persister.stand_by()
    # The second leads for a while and saves seq 2 and 3; the first follows, and forgets them.
    assert second.persister.take_over()
    at += INTERVAL_S
    first.hear(3, at=at)
    second.hear(3, at=at + LATER_S)
    assert second.persister.flush()
    assert first.persister.follow()
    assert first.persister.stats.pending_samples == 0
    first.persister.stop_standing_by()
    # Then the first leads again: seq 4 only.
    at += INTERVAL_S
    first.hear(4, at=at)
    assert first.persister.take_over()
    assert first.persister.flush()
    saved = saved_times(store)
    assert saved == [T0, T0 + 10 + LATER_S, T0 + 20 + LATER_S, T0 + 30], saved


def test_a_standby_keeps_an_outage_longer_than_its_memory(store: Store, clock: FakeClock) -> None:
    """Memory holds the newest HISTORY_POINTS points a box; the standby's persister holds what the database
    lacks, however long the outage (within the persister's own bound), as the leader's does."""
    sink = FlakyStore(store)
    standby = Replica(sink, clock)
    sink.read_failures = 1_000
    beats = HISTORY_POINTS + 40
    for seq in range(1, beats + 1):
        standby.hear(seq, at=T0 + seq * INTERVAL_S)
        if seq % 50 == 0:
            assert not standby.persister.follow()
    sink.read_failures = 0
    assert standby.persister.take_over()
    assert standby.persister.flush()
    saved = Counter(saved_times(store))
    assert len(saved) == beats
    assert set(saved.values()) == {1}
    assert len(standby.state.boxes[BOX].history) == HISTORY_POINTS  # memory alone would have lost 40


def test_a_standby_that_cannot_read_the_database_says_so_once(
    store: Store, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edgefleet.cloud.persisting")
    sink = FlakyStore(store)
    standby = Replica(sink, clock)
    sink.read_failures = 3
    for seq in (1, 2, 3):
        standby.hear(seq, at=T0 + seq)
        assert not standby.persister.follow()
    assert standby.persister.follow()
    said = [r.getMessage() for r in caplog.records if "what the leader saved" in r.getMessage()]
    assert said == [
        "Failed to read what the leader saved; keeping every health point heard",
        "Read what the leader saved again",
    ]


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = Store(database_url)
    store.create_schema()
    yield store
    store.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)
