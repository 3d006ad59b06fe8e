"""Whatever the outage pattern over 100 sites x 20 boxes, no DingTalk robot gets more than 20 messages in any 60 s
window nor a body over 20,000 bytes, and every firing alert is mentioned (listed or counted) in some message;
100 sites lost at once make a handful of messages."""

from __future__ import annotations

import dataclasses
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgefleet.cloud.alerting import (
    AlertKey,
    AlertKind,
    Channel,
    Notification,
    NotifierState,
    Route,
    Routes,
    Severity,
    StoredAlert,
    Transition,
    plan_notifications,
)
from edgefleet.cloud.alerting.alerts import alert_id
from edgefleet.ids import BoxId, SiteId
from tests.alerting.builders import T0, Scenario, make_inventory, markdown, mentioned

SITES = [f"site-{i:03d}" for i in range(100)]
REGIONS = ["east", "north", "south", "west"]
OPS = Channel("dingtalk", "ops")
ROUTES = Routes(
    routes=(
        *tuple(Route(channels=(Channel("dingtalk", r),), regions=frozenset({r})) for r in REGIONS),
        Route(channels=(OPS, Channel("alertmanager", "am"))),
    )
)
DINGTALK_LIMIT = 20


def region(site: str) -> str:
    return REGIONS[int(site[-3:]) % 4]


def make_alert(kind: AlertKind, site: str, box: int | None, at: float, severity: Severity) -> StoredAlert:
    key = AlertKey(kind, SiteId(site), BoxId(f"{site}-box-{box:02d}") if box is not None else None)
    labels = {"site": site, "region": region(site), "kind": str(kind), "severity": str(severity)}
    summary = f"{kind} at {site}" + (f" on box {box}" if box is not None else ": 20 of 20 boxes silent")
    return StoredAlert(alert_id(key, at), key, severity, summary, "what to do about it", labels, {}, at - 30, at, at)


@dataclasses.dataclass(frozen=True)
class Outage:
    site: int
    start: int
    length: int
    shape: str  # "site": the whole site; "boxes": some boxes; "flap": one box up and down
    boxes: int


@st.composite
def storms(draw: st.DrawFn) -> list[Outage]:
    """An outage pattern over the 100 sites: how many are hit, how spread out in time, how long, and how."""
    share = draw(st.floats(min_value=0.05, max_value=1.0))
    spread = draw(st.sampled_from([0, 5, 30, 120, 300]))  # 0: all at once
    longest = draw(st.integers(min_value=1, max_value=400))
    shapes = draw(st.lists(st.sampled_from(["site", "boxes", "flap"]), min_size=1, max_size=3, unique=True))
    rnd = draw(st.randoms(use_true_random=False))
    return [
        Outage(i, rnd.randint(0, spread), rnd.randint(1, longest), rnd.choice(shapes), rnd.randint(1, 20))
        for i in range(len(SITES))
        if rnd.random() < share
    ]


def events(outages: list[Outage]) -> dict[int, list[Transition]]:
    """The transitions that reconcile would give for these outages, by second (one alert per key at a time)."""
    out: dict[int, list[Transition]] = {}
    busy: set[str] = set()  # one outage per site at a time keeps alert keys unique, as the store does
    for o in sorted(outages, key=lambda o: o.start):
        site = SITES[o.site]
        if site in busy:
            continue
        busy.add(site)
        end = o.start + o.length
        if o.shape == "site":
            down = make_alert(AlertKind.SITE_UNREACHABLE, site, None, T0 + o.start, Severity.CRITICAL)
            out.setdefault(o.start, []).append(Transition("fire", down, None, True, T0 + o.start))
            for b in range(20):  # the boxes' own alerts: stored, inhibited, never told while the site fires
                lost = make_alert(AlertKind.BOX_LOST, site, b, T0 + o.start, Severity.CRITICAL)
                lost = dataclasses.replace(lost, muted="inhibited", muted_by=(str(down.key),))
                out[o.start].append(Transition("fire", lost, None, False, T0 + o.start))
            gone = dataclasses.replace(down, state="resolved", resolved_at=T0 + end, updated_at=T0 + end)
            out.setdefault(end, []).append(Transition("resolve", gone, down, True, T0 + end))
            for b in range(o.boxes % 4):  # stragglers: told when the site resolves
                lost = make_alert(AlertKind.BOX_LOST, site, b, T0 + o.start, Severity.CRITICAL)
                out[end].append(Transition("update", lost, None, True, T0 + end))
        elif o.shape == "boxes":
            for b in range(o.boxes):
                lost = make_alert(AlertKind.BOX_LOST, site, b, T0 + o.start, Severity.CRITICAL)
                out.setdefault(o.start, []).append(Transition("fire", lost, None, True, T0 + o.start))
                gone = dataclasses.replace(lost, state="resolved", resolved_at=T0 + end, updated_at=T0 + end)
                out.setdefault(end, []).append(Transition("resolve", gone, lost, True, T0 + end))
        else:
            flap = make_alert(AlertKind.BOX_FLAPPING, site, 0, T0 + o.start, Severity.WARNING)
            out.setdefault(o.start, []).append(Transition("fire", flap, None, True, T0 + o.start))
    return out


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(storms())
def test_no_robot_is_ever_overrun_and_every_firing_alert_is_mentioned(outages: list[Outage]) -> None:
    timeline = events(outages)
    state = NotifierState()
    messages: list[Notification] = []
    fired_at: dict[AlertKey, float] = {}
    resolved_at: dict[AlertKey, float] = {}
    for second in range(0, 760):
        transitions = timeline.get(second, [])
        for t in transitions:
            if t.notify and t.alert.active:
                fired_at.setdefault(t.alert.key, t.at)
            if not t.alert.active:
                resolved_at[t.alert.key] = t.at
        plan = plan_notifications(transitions, ROUTES, state, now=T0 + second)
        state = plan.state
        messages += plan.messages
    robots = {m.channel for m in messages if m.channel.kind == "dingtalk"}
    for robot in robots:
        times = [m.at for m in messages if m.channel == robot]
        for start in times:
            assert sum(1 for t in times if start <= t <= start + 60) <= DINGTALK_LIMIT
        for m in messages:
            if m.channel == robot:
                assert len(m.body) <= 20_000
                assert json.loads(m.body)["msgtype"] == "markdown"
                assert mentioned(markdown(m)) == len(m.notices)  # listed or counted: nothing left out silently
    # Every alert told firing reaches every robot it is routed to while it still fires (within ~35 s:
    # a site interval plus a robot's spacing), and was there before the end.
    for robot in [OPS, *(Channel("dingtalk", r) for r in REGIONS)]:
        covered = {n.alert.key: m.at for m in messages if m.channel == robot for n in m.notices if n.kind != "resolved"}
        for key, at in fired_at.items():
            if robot != OPS and robot.name != region(key.site):
                continue
            if resolved_at.get(key, float("inf")) - at >= 40:
                assert key in covered, (robot, key)
                assert covered[key] - at <= 40, (robot, key)


def test_a_hundred_sites_lost_at_once_make_a_handful_of_messages() -> None:
    scenario = Scenario(make_inventory(dict.fromkeys(SITES, 20), region=region), routes=ROUTES)
    scenario.start()
    scenario.run(15)
    start = scenario.now
    scenario.cut([b for s in SITES for b in scenario.site(s)])
    scenario.run(60)  # every box times out within 40 s
    scenario.run(240, dt=10)  # then nothing changes: coarser passes keep the test fast
    sites_down = scenario.active(AlertKind.SITE_UNREACHABLE)
    assert len(sites_down) == 100
    ops = [m for m in scenario.sent(OPS) if m.at > start]
    assert 1 <= len(ops) <= 5
    assert {n.alert.key for m in ops for n in m.notices} == set(sites_down)
    assert scenario.told(AlertKind.BOX_LOST, channel=OPS) == []
    assert all(len(m.body) <= 20_000 for m in ops)
    for r in REGIONS:
        assert len([m for m in scenario.sent(Channel("dingtalk", r)) if m.at > start]) <= 5
    # And when they all come back: a handful again, every site resolved.
    scenario.restore([b for s in SITES for b in scenario.site(s)])
    back = scenario.now
    scenario.run(30)
    scenario.run(90, dt=10)
    resolved = [m for m in scenario.sent(OPS) if m.at > back]
    assert 1 <= len(resolved) <= 5
    assert {n.alert.key for m in resolved for n in m.notices if n.kind == "resolved"} == set(sites_down)
