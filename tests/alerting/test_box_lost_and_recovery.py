"""A box that stops beating is lost exactly after missed_beats x interval; a Last Will makes it lost at once; its
next heartbeat brings it back; a box never seen raises nothing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgefleet.cloud.alerting import AlertKey, AlertKind, AlertRules, FleetTrack, evaluate, reconcile_alerts
from edgefleet.cloud.fleet import FleetState, heartbeat_timeout
from edgefleet.ids import BoxId, SiteId
from tests.alerting.builders import T0, Scenario, beat, make_inventory, merge, site_boxes, status

INVENTORY = merge(
    make_inventory({"alpha": 10}),
    make_inventory({"slow": 6}, interval_s=5.0, missed_beats=4),
)


def fleet_with_all_beating(at: float) -> FleetState:
    fleet = FleetState.for_inventory(INVENTORY)
    for box in fleet.boxes.values():
        beat(box, at)
    return fleet


def lost(key_site: str, box: BoxId) -> AlertKey:
    return AlertKey(AlertKind.BOX_LOST, SiteId(key_site), box)


@pytest.mark.parametrize(
    ("site", "silence_s", "expect_lost"),
    [
        ("alpha", 0.0, False),
        ("alpha", 30.0, False),  # 3 x 10 s is within the 20% jitter allowance (fleet.heartbeat_timeout)
        ("alpha", 35.999, False),
        ("alpha", 36.0, False),  # the boundary itself still counts as online (fleet.evaluate_reachability)
        ("alpha", 36.001, True),
        ("alpha", 3600.0, True),
        ("slow", 24.0, False),  # 4 x 5 s + 20%
        ("slow", 24.001, True),
    ],
)
def test_a_silent_box_is_lost_exactly_after_its_sites_timeout(site: str, silence_s: float, expect_lost: bool) -> None:
    box = site_boxes(site, 1)[0]
    fleet = fleet_with_all_beating(T0)
    now = T0 + silence_s
    for other in fleet.boxes.values():
        if other.box != box:
            beat(other, now)  # the rest of the site is fine
    evaluation = evaluate(fleet, FleetTrack(), AlertRules(), now=now)
    assert (lost(site, box) in evaluation.desired) is expect_lost
    if expect_lost:
        alert = evaluation.desired[lost(site, box)]
        assert alert.started_at == T0  # the problem began with the last heartbeat
        assert alert.details["reason"] == "heartbeat-timeout"
        assert lost(site, box) not in evaluation.inhibited  # a box lost alone is told at once


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=120, allow_nan=False), min_size=10, max_size=10))
def test_box_lost_is_desired_for_exactly_the_boxes_past_their_timeout(gaps: list[float]) -> None:
    fleet = FleetState.for_inventory(INVENTORY)
    now = T0 + 200
    boxes = site_boxes("alpha", 10)
    for box_id, gap in zip(boxes, gaps, strict=True):
        beat(fleet.boxes[box_id], now - gap)
    for box_id in site_boxes("slow", 6):
        beat(fleet.boxes[box_id], now)
    evaluation = evaluate(fleet, FleetTrack(), AlertRules(), now=now)
    desired = {k.box for k in evaluation.desired if k.kind == AlertKind.BOX_LOST}
    assert desired == {b for b, gap in zip(boxes, gaps, strict=True) if now - (now - gap) > heartbeat_timeout(10.0, 3)}


@pytest.mark.parametrize(
    ("reason", "summary_part"),
    [
        ("connection-lost", "connection dropped (Last Will)"),
        ("shutdown", "agent was stopped"),
        ("kernel-panic", "offline: kernel-panic"),
    ],
)
def test_an_offline_status_makes_the_box_lost_at_once_and_says_why(reason: str, summary_part: str) -> None:
    fleet = fleet_with_all_beating(T0)
    box = site_boxes("alpha", 1)[0]
    status(fleet.boxes[box], "offline", reason, T0 + 1)
    evaluation = evaluate(fleet, FleetTrack(), AlertRules(), now=T0 + 1)
    alert = evaluation.desired[lost("alpha", box)]
    assert summary_part in alert.summary
    assert alert.details["reason"] == reason
    transitions = reconcile_alerts({}, evaluation, [], now=T0 + 1)
    assert [(t.action, t.alert.key, t.notify) for t in transitions] == [("fire", lost("alpha", box), True)]


def test_a_box_never_seen_raises_nothing() -> None:
    fleet = FleetState.for_inventory(INVENTORY)  # nobody ever beat
    evaluation = evaluate(fleet, FleetTrack(), AlertRules(), now=T0 + 3600)
    assert evaluation.desired == {}


def test_a_lost_box_recovers_on_its_next_heartbeat_and_both_are_told() -> None:
    scenario = Scenario(make_inventory({"alpha": 10}))
    scenario.start()
    box = site_boxes("alpha", 10)[3]
    scenario.drop([box])
    scenario.run(1)
    assert scenario.told(AlertKind.BOX_LOST) == [("firing", lost("alpha", box))]
    scenario.run(40)  # more passes change nothing: one alert, told once
    assert len(scenario.active(AlertKind.BOX_LOST)) == 1
    assert len(scenario.told(AlertKind.BOX_LOST)) == 1
    scenario.restore([box])
    scenario.run(1)
    assert scenario.active(AlertKind.BOX_LOST) == {}
    resolved = scenario.stored[lost("alpha", box)]
    assert (resolved.state, resolved.resolved_by) == ("resolved", "edgefleet")
    scenario.run(30)  # the resolve waits for the site's group interval, then goes out once
    assert scenario.told(AlertKind.BOX_LOST) == [("firing", lost("alpha", box)), ("resolved", lost("alpha", box))]


def test_a_silent_box_is_told_within_a_pass_of_its_timeout() -> None:
    scenario = Scenario(make_inventory({"alpha": 10}))
    scenario.start()
    box = site_boxes("alpha", 10)[5]
    scenario.run(5)
    scenario.cut([box])
    silenced_at = scenario.box(box).last_seen
    assert silenced_at is not None
    scenario.run(60)
    fired = scenario.stored[lost("alpha", box)]
    told_at = next(m.at for m in scenario.sent() if any(n.alert.key == lost("alpha", box) for n in m.notices))
    assert fired.fired_at == told_at  # no wait between the alert and its notice
    timeout = heartbeat_timeout(10.0, 3)
    assert silenced_at + timeout < told_at <= silenced_at + timeout + 1  # the next pass after the timeout (1 s passes)
