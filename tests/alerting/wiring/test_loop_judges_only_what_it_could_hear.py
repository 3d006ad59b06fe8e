"""The alert loop judges the fleet only once the controller hears the broker and every box has had a whole
heartbeat timeout to be heard: a restarted controller (its saved receive times are old) or one that lost the
broker must not call the whole fleet lost."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from edgefleet.clock import FakeClock
from edgefleet.cloud.alerting.looping import AlertLoop
from edgefleet.cloud.fleet import FleetState
from edgefleet.cloud.store import Store
from tests.alerting.builders import beat, make_inventory

INTERVAL_S = 0.2


@pytest.fixture
def store() -> Iterator[Store]:
    store = Store("sqlite:///:memory:")
    yield store
    store.close()


def test_nothing_is_judged_until_the_broker_is_heard_for_a_whole_timeout(store: Store) -> None:
    fleet = FleetState.for_inventory(make_inventory({"alpha": 4}, interval_s=INTERVAL_S, missed_beats=1))
    clock = FakeClock()
    for live in fleet.boxes.values():  # what a controller restored after an hour's outage holds
        beat(live, clock.now() - 3600)
    hearing = [False]
    loop = AlertLoop(fleet, store, clock=clock, config=None, listening=lambda: hearing[0])

    assert loop.tick() is None
    hearing[0] = True
    assert loop.tick() is None, "the warm-up has just begun"
    assert not loop.evaluating
    # The boxes are alive: within the warm-up each beats again.
    clock.advance(INTERVAL_S / 2)
    with fleet.lock:
        for live in fleet.boxes.values():
            beat(live, clock.now())
    assert loop.tick() is None, "the warm-up lasts one whole heartbeat timeout"
    clock.advance(INTERVAL_S / 2)
    report = loop.tick()
    assert report is not None, "the first pass comes once the warm-up is over"
    assert loop.evaluating
    assert report.fired == 0
    assert loop.alerts.find() == []

    hearing[0] = False
    clock.advance(60)
    assert loop.tick() is None
    assert not loop.evaluating, "a controller that hears nothing judges nothing"
    hearing[0] = True
    assert loop.tick() is None, "after hearing again, the warm-up starts over"


def test_a_box_silent_through_the_warm_up_is_lost(store: Store) -> None:
    fleet = FleetState.for_inventory(make_inventory({"alpha": 4}, interval_s=INTERVAL_S, missed_beats=1))
    clock = FakeClock()
    for live in fleet.boxes.values():
        beat(live, clock.now() - 3600)
    loop = AlertLoop(fleet, store, clock=clock, config=None)
    assert loop.tick() is None
    clock.advance(INTERVAL_S)
    with fleet.lock:
        for box in list(fleet.boxes)[1:]:
            beat(fleet.boxes[box], clock.now())
    report = loop.tick()

    assert report is not None
    assert report.fired == 1
    (lost,) = loop.alerts.find(state="firing")
    assert (str(lost.key.kind), lost.key.box) == ("box-lost", next(iter(fleet.boxes)))
