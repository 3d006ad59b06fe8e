"""A site whose boxes go silent together raises one site-unreachable alert, its box alerts are not told while it
fires, and its resolve notice lists the boxes that did not come back (whose own alerts then go out with it)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgefleet.cloud.alerting import AlertKey, AlertKind, AlertRules, FleetTrack, Overrides, evaluate
from edgefleet.cloud.alerting.evaluating import _Silent, densest_cluster
from edgefleet.cloud.fleet import FleetState
from edgefleet.ids import BoxId, SiteId
from tests.alerting.builders import T0, Scenario, beat, make_inventory, markdown, site_boxes

ALPHA = SiteId("alpha")
SITE_DOWN = AlertKey(AlertKind.SITE_UNREACHABLE, ALPHA)


def two_sites(**kwargs: object) -> Scenario:
    scenario = Scenario(make_inventory({"alpha": 20, "beta": 20}, **kwargs))  # type: ignore[arg-type]
    scenario.start()
    scenario.run(15)
    return scenario


def site_fires(scenario: Scenario, key: AlertKey = SITE_DOWN) -> int:
    return sum(1 for t in scenario.transitions if t.alert.key == key and t.action == "fire")


def drop_as_the_broker_would(scenario: Scenario, boxes: list[BoxId], seconds: int, keepalive_s: float = 10) -> None:
    """Boxes frozen: the broker sends each one's Last Will 1.5 keepalives after its last packet."""
    scenario.cut(boxes)
    dropped: set[BoxId] = set()
    for _ in range(seconds):
        scenario.now += 1
        scenario.beats_due()
        for box in boxes:
            last = scenario.box(box).last_seen
            if box not in dropped and last is not None and scenario.now >= last + 1.5 * keepalive_s:
                dropped.add(box)
                scenario.drop([box])
        scenario.step()


def test_a_silent_site_raises_one_site_alert_and_no_box_alert_is_told() -> None:
    scenario = two_sites()
    scenario.cut(scenario.site("alpha"))
    scenario.run(600)
    assert site_fires(scenario) == 1
    first_lost = min(t.at for t in scenario.transitions if t.alert.key.kind == AlertKind.BOX_LOST)
    assert scenario.stored[SITE_DOWN].fired_at == first_lost  # in the very pass the first box timed out
    lost = scenario.active(AlertKind.BOX_LOST)
    assert len(lost) == 20
    assert all(a.muted == "inhibited" and a.muted_by == (str(SITE_DOWN),) for a in lost.values())
    assert scenario.told(AlertKind.BOX_LOST) == []
    assert [[(n.kind, n.alert.key) for n in m.notices] for m in scenario.sent()] == [[("firing", SITE_DOWN)]]
    assert "20 of 20 boxes silent" in markdown(scenario.sent()[0])


def test_a_site_whose_connections_drop_together_raises_the_site_alert_at_once() -> None:
    scenario = two_sites()
    scenario.drop(scenario.site("alpha"))
    scenario.run(1)
    assert SITE_DOWN in scenario.active()
    assert scenario.told(AlertKind.BOX_LOST) == []
    assert len(scenario.sent()) == 1


def test_last_wills_arriving_box_by_box_are_held_until_the_site_alert_takes_over() -> None:
    scenario = two_sites()
    drop_as_the_broker_would(scenario, scenario.site("alpha"), 120)
    assert site_fires(scenario) == 1
    assert scenario.told(AlertKind.BOX_LOST) == []
    assert [[(n.kind, n.alert.key) for n in m.notices] for m in scenario.sent()] == [[("firing", SITE_DOWN)]]
    held = [t for t in scenario.transitions if t.alert.key.kind == AlertKind.BOX_LOST and t.action == "fire"]
    assert any(t.alert.muted_by == ("held: its site may be going down",) for t in held)


def test_a_restored_site_resolves_once_and_lists_the_boxes_that_did_not_come_back() -> None:
    scenario = two_sites()
    boxes = scenario.site("alpha")
    scenario.cut(boxes)
    scenario.run(300)
    stragglers = boxes[:2]
    # The boxes reconnect with backoff over a minute; two never do.
    for i, box in enumerate(boxes[2:]):
        scenario.restore([box])
        scenario.run(3 if i % 2 else 4)
    scenario.run(200)
    assert site_fires(scenario) == 1
    resolves = [t for t in scenario.transitions if t.alert.key == SITE_DOWN and t.action == "resolve"]
    assert len(resolves) == 1
    assert resolves[0].alert.details["not_back"] == tuple(stragglers)
    sent = scenario.sent()
    assert len(sent) == 2  # the site alert, then its resolve with the stragglers' own alerts
    assert {(n.kind, n.alert.key) for n in sent[1].notices} == {("resolved", SITE_DOWN)} | {
        ("firing", AlertKey(AlertKind.BOX_LOST, ALPHA, b)) for b in stragglers
    }
    text = markdown(sent[1])
    assert f"2 did not come back: {stragglers[0]}, {stragglers[1]}" in text
    # The stragglers' alerts started when they went silent, not when the site came back.
    for box in stragglers:
        assert scenario.stored[AlertKey(AlertKind.BOX_LOST, ALPHA, box)].started_at < resolves[0].at - 300


def test_a_fully_restored_site_resolves_as_soon_as_every_box_is_back() -> None:
    scenario = two_sites()
    boxes = scenario.site("alpha")
    scenario.cut(boxes)
    scenario.run(120)
    scenario.restore(boxes)
    scenario.run(12)
    assert SITE_DOWN not in scenario.active()
    resolve = next(t for t in scenario.transitions if t.alert.key == SITE_DOWN and t.action == "resolve")
    assert resolve.alert.details["not_back"] == ()
    scenario.run(60)
    assert "every box is back" in markdown(scenario.sent()[-1])
    assert scenario.told(AlertKind.BOX_LOST) == []


@pytest.mark.parametrize("cut", [5, 6, 10, 15])
def test_a_partial_outage_below_the_threshold_is_told_box_by_box_after_a_short_hold(cut: int) -> None:
    scenario = two_sites()
    boxes = scenario.site("alpha")[:cut]
    scenario.drop(boxes)
    scenario.run(1)
    assert scenario.told(AlertKind.BOX_LOST) == []  # held: 25% or more of the site went at once
    scenario.run(20)
    assert SITE_DOWN not in scenario.active()
    assert {key.box for _, key in scenario.told(AlertKind.BOX_LOST)} == set(boxes)
    assert len(scenario.sent()) == 1  # all in one message
    assert scenario.sent()[0].at <= scenario.now - 20 + 15  # within the hold of 1.5 intervals


def test_central_clusters_get_the_same_treatment() -> None:
    scenario = Scenario(make_inventory({"central-sh": 9, "alpha": 20}, kinds={"central-sh": "central"}))
    scenario.start()
    scenario.run(15)
    scenario.cut(scenario.site("central-sh"))
    scenario.run(120)
    key = AlertKey(AlertKind.SITE_UNREACHABLE, SiteId("central-sh"))
    assert site_fires(scenario, key) == 1
    assert scenario.told(AlertKind.BOX_LOST) == []
    assert "Central cluster Central-Sh Center (central-sh) unreachable: 9 of 9" in markdown(scenario.sent()[0])


def test_boxes_lost_long_before_do_not_keep_a_cut_site_from_being_seen() -> None:
    scenario = two_sites()
    boxes = scenario.site("alpha")
    scenario.cut(boxes[:5])
    scenario.run(3600)
    assert len(scenario.told(AlertKind.BOX_LOST)) == 5
    scenario.cut(boxes[5:])  # 15 of 20 is below 80%, but all 15 still reachable went at once
    scenario.run(60)
    assert SITE_DOWN in scenario.active()
    assert len(scenario.told(AlertKind.BOX_LOST)) == 5  # the 15 are not told; the 5 were told an hour ago


def test_a_site_cut_twice_within_ten_minutes_does_not_make_its_boxes_flap() -> None:
    scenario = two_sites()
    boxes = scenario.site("alpha")
    for _ in range(3):
        scenario.cut(boxes)
        scenario.run(60)
        scenario.restore(boxes)
        scenario.run(60)
    assert scenario.active() == {}
    assert not any(t.alert.key.kind == AlertKind.BOX_FLAPPING for t in scenario.transitions)
    assert site_fires(scenario) == 3


def test_the_site_threshold_is_a_per_site_tunable() -> None:
    rules = AlertRules(sites={ALPHA: Overrides(site_threshold=0.5, site_suspect_share=0.1)})
    fleet = FleetState.for_inventory(make_inventory({"alpha": 10}))
    boxes = site_boxes("alpha", 10)
    for i, box in enumerate(boxes):
        beat(fleet.boxes[box], T0 + (0 if i < 6 else 40))  # 6 of 10 silent since T0
    assert SITE_DOWN in evaluate(fleet, FleetTrack(), rules, now=T0 + 40.5).desired
    assert SITE_DOWN not in evaluate(fleet, FleetTrack(), AlertRules(), now=T0 + 40.5).desired


INSTANTS = st.lists(st.tuples(st.floats(min_value=0, max_value=300), st.booleans()), min_size=1, max_size=30)


@settings(max_examples=200, deadline=None)
@given(INSTANTS, st.integers(min_value=0, max_value=10), st.floats(min_value=1, max_value=120))
def test_the_densest_cluster_is_the_best_window_of_silences(
    instants: list[tuple[float, bool]], healthy: int, window: float
) -> None:
    silent = [_Silent(BoxId(f"b{i}"), t, offline) for i, (t, offline) in enumerate(instants)]
    seen = len(silent) + healthy
    cluster = densest_cluster(silent, window, seen)
    assert cluster is not None
    times = {s.box: s.instant for s in silent}
    members = [times[b] for b in cluster.members]
    assert max(members) - min(members) <= window
    assert min(members) == cluster.start
    earlier = sum(1 for t in times.values() if t < cluster.start)
    assert cluster.share == pytest.approx(len(members) / (seen - earlier))
    assert cluster.any_offline == any(s.offline for s in silent if s.box in cluster.members)
    # No window does better.
    for start in times.values():
        inside = sum(1 for t in times.values() if start <= t <= start + window)
        before = sum(1 for t in times.values() if t < start)
        assert inside / (seen - before) <= cluster.share + 1e-12
