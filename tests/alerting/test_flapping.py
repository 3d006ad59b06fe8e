"""A box that keeps dropping and coming back raises one box-flapping alert instead of a stream of lost/recovered
notices; it resolves after a calm window."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from edgefleet.cloud.alerting import AlertKey, AlertKind, AlertRules, BoxTrack, FleetTrack, Overrides, evaluate, observe
from edgefleet.cloud.alerting.rules import TRANSITION_MEMORY
from edgefleet.cloud.fleet import FleetState, Reachability, evaluate_reachability
from edgefleet.ids import SiteId
from tests.alerting.builders import T0, Scenario, beat, make_inventory, site_boxes, status

BOX = site_boxes("alpha", 10)[2]
LOST = AlertKey(AlertKind.BOX_LOST, SiteId("alpha"), BOX)
FLAPPING = AlertKey(AlertKind.BOX_FLAPPING, SiteId("alpha"), BOX)


def flap(scenario: Scenario, cycles: int, *, down_s: float = 20, up_s: float = 40) -> None:
    for _ in range(cycles):
        scenario.drop([BOX])
        scenario.run(down_s)
        scenario.restore([BOX])
        scenario.run(up_s)


def test_two_outages_within_ten_minutes_become_one_flapping_alert() -> None:
    scenario = Scenario(make_inventory({"alpha": 10}))
    scenario.start()
    flap(scenario, 2)
    assert FLAPPING in scenario.active()
    flap(scenario, 10)  # ten more outages: still the one alert, and no lost/recovered notice
    fires = [t for t in scenario.transitions if t.alert.key == FLAPPING and t.action == "fire"]
    assert len(fires) == 1
    told_lost = scenario.told(AlertKind.BOX_LOST)
    # Before flapping was known: lost, recovered, lost (the second recovery goes with the flapping notice).
    assert told_lost == [("firing", LOST), ("resolved", LOST), ("firing", LOST), ("resolved", LOST)]
    assert scenario.told(AlertKind.BOX_FLAPPING) == [("firing", FLAPPING)]
    # While flapping, each outage is stored (the API shows it) but inhibited by the flapping alert.
    scenario.drop([BOX])
    scenario.run(1)
    assert scenario.stored[LOST].muted == "inhibited"
    assert scenario.stored[LOST].muted_by == (str(FLAPPING),)


def test_the_flapping_alert_resolves_after_ten_calm_minutes_and_a_box_still_down_is_then_told_lost() -> None:
    scenario = Scenario(make_inventory({"alpha": 10}))
    scenario.start()
    flap(scenario, 2)
    scenario.drop([BOX])
    scenario.run(1)
    last_change = scenario.track.boxes[BOX].transitions[-1]
    scenario.run(598 - (scenario.now - last_change))
    assert FLAPPING in scenario.active()
    scenario.run(3)
    assert FLAPPING not in scenario.active()
    # The box is still down: now its box-lost alert is told.
    assert scenario.told(AlertKind.BOX_LOST)[-1] == ("firing", LOST)
    assert scenario.stored[LOST].muted is None


def test_three_changes_or_changes_spread_over_more_than_the_window_are_not_flapping() -> None:
    scenario = Scenario(make_inventory({"alpha": 10}))
    scenario.start()
    flap(scenario, 1)  # lost, back
    scenario.drop([BOX])  # lost again: 3 changes
    scenario.run(60)
    assert FLAPPING not in scenario.active()
    assert LOST in scenario.active()
    slow = Scenario(make_inventory({"alpha": 10}))
    slow.start()
    flap(slow, 4, down_s=60, up_s=600)  # 2 changes per 11 minutes: never 4 within 10
    assert not any(t.alert.key == FLAPPING for t in slow.transitions)


def test_the_flapping_count_and_window_are_per_site_tunables() -> None:
    rules = AlertRules(sites={SiteId("alpha"): Overrides(flapping_transitions=6, flapping_window_s=300)})
    scenario = Scenario(make_inventory({"alpha": 10}), rules=rules)
    scenario.start()
    flap(scenario, 2)
    assert FLAPPING not in scenario.active()
    flap(scenario, 1)
    assert FLAPPING in scenario.active()


EVENTS = st.lists(
    st.tuples(st.sampled_from(["drop", "beat", "quiet"]), st.floats(min_value=1, max_value=200)),
    min_size=1,
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(EVENTS)
def test_flapping_starts_only_on_enough_recent_changes_and_ends_only_after_a_calm_window(
    events: list[tuple[str, float]],
) -> None:
    inventory = make_inventory({"solo": 1})  # one box: no site correlation can interfere
    box_id = site_boxes("solo", 1)[0]
    fleet = FleetState.for_inventory(inventory)
    box = fleet.boxes[box_id]
    rules = AlertRules()
    limits = rules.defaults
    now = T0
    beat(box, now)
    track = evaluate(fleet, FleetTrack(), rules, now=now).track
    changes: list[float] = []
    state = "online"
    was_flapping = False
    for action, wait in events:
        now += wait
        if action == "drop":
            status(box, "offline", "connection-lost", now)
        elif action == "beat":
            beat(box, now)
        evaluation = evaluate(fleet, track, rules, now=now)
        track = evaluation.track
        reach = evaluate_reachability(box, now=now, interval_s=10, missed_beats=3).state
        if reach != state:
            changes.append(now)
            state = reach
        recent = [t for t in changes if now - t < limits.flapping_window_s]
        flapping = AlertKey(AlertKind.BOX_FLAPPING, SiteId("solo"), box_id) in evaluation.desired
        if flapping and not was_flapping:
            assert len(recent) >= limits.flapping_transitions  # starts only on enough recent changes
        if len(recent) >= limits.flapping_transitions:
            assert flapping  # and always does then
        if was_flapping and not flapping:
            assert not recent  # ends only after a window without changes
        if flapping:
            lost = AlertKey(AlertKind.BOX_LOST, SiteId("solo"), box_id)
            assert lost not in evaluation.desired or lost in evaluation.inhibited
        was_flapping = flapping


def reach(state: str, since: float | None = T0) -> Reachability:
    return Reachability(state, "x", since)  # type: ignore[arg-type]


def test_observe_records_contact_changes_only_and_never_changes_the_track_it_is_given() -> None:
    a, b = site_boxes("alpha", 2)
    start = FleetTrack()
    first = observe(start, {a: reach("online"), b: reach("never-seen", None)}, T0)
    assert start == FleetTrack()  # untouched
    assert first.boxes[a] == BoxTrack(state="online", changed_at=T0, transitions=())  # first contact: no change
    second = observe(first, {a: reach("offline")}, T0 + 40)
    third = observe(second, {a: reach("online")}, T0 + 50)
    assert third.boxes[a].transitions == (T0 + 40, T0 + 50)
    assert third.boxes[b] is first.boxes[b]  # not in the mapping: kept as it was
    assert observe(third, {a: reach("online")}, T0 + 60).boxes is third.boxes  # nothing new: nothing copied
    track = third
    for i in range(40):
        track = observe(track, {a: reach("offline" if i % 2 == 0 else "online")}, T0 + 100 + i)
    assert len(track.boxes[a].transitions) == TRANSITION_MEMORY
    assert track.boxes[a].transitions[-1] == T0 + 139
