"""The alert loop judges box silence only while the controller hears the fleet: a broker outage, a flood it
cannot keep up with, or a restart raise at most one fleet-level alert and no box-lost, site-unreachable or
flapping alert for silence the controller caused itself; a box that really died is still told, after a whole
timeout of silence the controller could have heard. On a fake clock (``clocked.ClockedAlerting``), with the
ingest's measurements played by the test."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgefleet.cloud.fleet import heartbeat_timeout
from edgefleet.cloud.hearing import AGENT_RECONNECT_MAX_S, FLEET_ALERT_AFTER_S, IngestStats
from tests.alerting.builders import make_inventory, site_boxes
from tests.alerting.wiring.clocked import ClockedAlerting, write_notifications

INTERVAL_S = 10.0
TIMEOUT_S = heartbeat_timeout(INTERVAL_S, 3)
INVENTORY = make_inventory({"alpha": 6, "beta": 6, "gamma": 6}, interval_s=INTERVAL_S, missed_beats=3)
BOXES = [str(b) for site in ("alpha", "beta", "gamma") for b in site_boxes(site, 6)]
HEARING = IngestStats(subscribed=True, since_last_message_s=0.1, lag_s=0.0, busy=0.05)
DEAF = dataclasses.replace(HEARING, subscribed=False, since_last_message_s=None)
FLOODED = dataclasses.replace(HEARING, busy=1.0)
LOST_CONTACT = ("box-lost", "site-unreachable", "box-flapping")


@pytest.fixture
def notifications(tmp_path: Path) -> Path:
    return write_notifications(tmp_path / "notifications.yaml")


@pytest.fixture
def alerting(tmp_path: Path, notifications: Path) -> Iterator[ClockedAlerting]:
    running = ClockedAlerting(INVENTORY, f"sqlite:///{tmp_path / 'edgefleet.db'}", notifications)
    running.ingest = HEARING
    running.run(INTERVAL_S)
    assert running.loop.evaluating
    yield running
    running.close()


def lost_contact_notices(alerting: ClockedAlerting) -> list[tuple[str, str, str | None]]:
    return [n for n in alerting.notices() if n[1] in LOST_CONTACT]


def reconnecting(alerting: ClockedAlerting, boxes: list[str], *, over_s: float) -> None:
    """The agents come back one by one over ``over_s`` (their backoff), each beating from then on."""
    step = over_s / len(boxes)
    for box in boxes:
        alerting.run(step, dt=step)
        alerting.restore([box])


def test_a_60_s_broker_outage_tells_one_fleet_alert_and_no_box(alerting: ClockedAlerting) -> None:
    alerting.ingest = DEAF
    alerting.stop(BOXES)  # nothing reaches the controller
    alerting.run(60.0)
    assert not alerting.loop.evaluating
    assert alerting.notices() == [("firing", "controller-deaf", None)]

    alerting.ingest = HEARING
    reconnecting(alerting, BOXES, over_s=AGENT_RECONNECT_MAX_S)  # the last agent's retry comes a minute later
    alerting.run(2 * TIMEOUT_S)

    assert lost_contact_notices(alerting) == []
    assert alerting.notices() == [("firing", "controller-deaf", None), ("resolved", "controller-deaf", None)]
    assert alerting.loop.evaluating


def test_a_20_s_flood_tells_one_fleet_alert_and_no_box(alerting: ClockedAlerting) -> None:
    alerting.ingest = FLOODED
    alerting.stop(BOXES)  # the broker drops what the controller cannot take
    alerting.run(20.0)
    assert alerting.loop.hearing.state == "behind"
    alerting.ingest = HEARING
    alerting.restore(BOXES)
    alerting.run(2 * TIMEOUT_S)

    assert lost_contact_notices(alerting) == []
    told = [n for n in alerting.notices() if n[1] == "controller-deaf"]
    assert told == [("firing", "controller-deaf", None), ("resolved", "controller-deaf", None)]


def test_a_short_blip_is_no_alert(alerting: ClockedAlerting) -> None:
    alerting.ingest = DEAF
    alerting.run(FLEET_ALERT_AFTER_S - 2.0)
    alerting.ingest = HEARING
    alerting.run(2 * TIMEOUT_S)
    assert alerting.notices() == []


def test_a_box_that_died_in_the_outage_is_lost_after_a_whole_heard_timeout(alerting: ClockedAlerting) -> None:
    dead, *alive = BOXES
    alerting.ingest = DEAF
    alerting.stop(BOXES)
    alerting.run(30.0)
    alerting.ingest = HEARING
    reconnecting(alerting, alive, over_s=20.0)
    recovered = alerting.clock.monotonic()
    while not alerting.loop.evaluating:
        assert alerting.notices(box=dead) == [], "still recovering: its agent may be in its backoff"
        alerting.run(0.5)
    assert alerting.clock.monotonic() - recovered <= AGENT_RECONNECT_MAX_S + INTERVAL_S
    alerting.run(TIMEOUT_S - 1.0)
    assert alerting.notices(box=dead) == [], "a whole timeout of silence the controller heard has not passed"
    alerting.run(2.0)
    assert alerting.notices(box=dead) == [("firing", "box-lost", dead)]
    assert [n for n in lost_contact_notices(alerting) if n[2] != dead] == []


def test_a_dropped_connection_during_a_hold_is_told_once_hearing(alerting: ClockedAlerting) -> None:
    alerting.ingest = FLOODED
    alerting.drop([BOXES[0]])  # its Last Will arrives while the controller is behind
    alerting.run(5.0)
    assert alerting.notices(box=BOXES[0]) == [], "nothing is judged while behind"
    alerting.ingest = HEARING
    alerting.run(AGENT_RECONNECT_MAX_S + INTERVAL_S + 1.0)
    assert alerting.notices(box=BOXES[0]) == [("firing", "box-lost", BOXES[0])]


def test_a_restarted_controller_judges_no_box_by_its_own_downtime(tmp_path: Path, notifications: Path) -> None:
    url = f"sqlite:///{tmp_path / 'edgefleet.db'}"
    first = ClockedAlerting(INVENTORY, url, notifications)
    first.run(INTERVAL_S)
    first.close()

    # Back an hour later with the receive times it saved: every box looks silent for an hour.
    dead, *alive = BOXES
    second = ClockedAlerting(INVENTORY, url, notifications, restored=first.fleet, start=first.clock.now() + 3600)
    try:
        second.ingest = HEARING
        second.stop([dead])
        assert not second.loop.evaluating, "a restarted controller recovers first"
        with second.fleet.lock:
            for box in BOXES:
                second.fleet.boxes[box].last_seen = first.fleet.boxes[box].last_seen  # not heard since the restart
        reconnecting(second, alive, over_s=10.0)  # the live boxes kept publishing: heard within an interval
        # The dead one holds the recovery up to one heartbeat timeout (a restart's bound: no agent is in backoff),
        # then gets a whole timeout of silence the controller heard.
        second.run(2 * TIMEOUT_S - 12.0)
        assert lost_contact_notices(second) == [], "the hour the controller was down is nobody's silence"
        second.run(6.0)
        assert lost_contact_notices(second) == [("firing", "box-lost", dead)]
    finally:
        second.close()


def test_a_will_is_judged_a_moment_after_it_arrives(alerting: ClockedAlerting) -> None:
    """A broker shutting down sends every box's will, then drops the controller: a will is judged only after it
    settled (hearing.WILL_SETTLE_S), by when the controller knows whether it is deaf."""
    box = BOXES[1]
    alerting.drop([box])
    with alerting.fleet.lock:
        alerting.fleet.boxes[box].status_taken_at = alerting.clock.now()  # as the ingest takes a status
    alerting.tick()
    assert alerting.notices(box=box) == [], "not at once"
    alerting.run(2.0, dt=0.25)
    assert alerting.notices(box=box) == [("firing", "box-lost", box)], "within 2 s"


def test_wills_followed_by_deafness_are_not_judged(alerting: ClockedAlerting) -> None:
    alerting.drop(BOXES)
    with alerting.fleet.lock:
        for box in BOXES:
            alerting.fleet.boxes[box].status_taken_at = alerting.clock.now()
    alerting.clock.advance(0.2)
    alerting.tick()  # the wills ask for a pass at once, before the controller has noticed its own disconnect
    alerting.clock.advance(0.2)
    alerting.ingest = DEAF  # the broker that sent the wills is gone
    alerting.tick()
    alerting.run(30.0)
    alerting.ingest = HEARING
    alerting.restore(BOXES)
    alerting.run(2 * TIMEOUT_S)
    assert lost_contact_notices(alerting) == []
