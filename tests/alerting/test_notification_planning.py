"""Notification planning: routing to channels, one message per site per group interval, group wait, repeats,
resolved notices only for what was told, muted alerts dropped before they go, Alertmanager batches and re-sends."""

from __future__ import annotations

import dataclasses
import itertools
import json

import pytest

from edgefleet.cloud.alerting import (
    AlertKey,
    AlertKind,
    Channel,
    NotifierState,
    Plan,
    Route,
    Routes,
    Severity,
    StoredAlert,
    Timing,
    Transition,
    acknowledge,
    plan_notifications,
    validate_routes,
)
from edgefleet.cloud.alerting.alerts import alert_id
from edgefleet.ids import BoxId, SiteId
from tests.alerting.builders import T0

OPS = Channel("dingtalk", "ops")
EAST = Channel("dingtalk", "east")
ALPHA_GROUP = Channel("dingtalk", "alpha-group")
HOOK = Channel("webhook", "hook")
AM = Channel("alertmanager", "am")


def alert(
    site: str = "alpha",
    box: int | None = 0,
    *,
    kind: AlertKind = AlertKind.BOX_LOST,
    severity: Severity = Severity.CRITICAL,
    region: str = "east",
    at: float = T0,
) -> StoredAlert:
    key = AlertKey(kind, SiteId(site), BoxId(f"{site}-box-{box:02d}") if box is not None else None)
    labels = {"site": site, "region": region, "kind": str(kind), "severity": str(severity)}
    return StoredAlert(alert_id(key, at), key, severity, f"{key} broke", "fix it", labels, {}, at - 30, at, at)


def fire(a: StoredAlert, *, notify: bool = True) -> Transition:
    return Transition("fire", a, None, notify, a.fired_at)


def resolve(a: StoredAlert, at: float) -> Transition:
    done = dataclasses.replace(a, state="resolved", resolved_at=at, resolved_by="edgefleet", updated_at=at)
    return Transition("resolve", done, a, True, at)


def mute(a: StoredAlert, at: float) -> Transition:
    muted = dataclasses.replace(a, muted="inhibited", muted_by=("site-unreachable alpha",), updated_at=at)
    return Transition("update", muted, a, False, at)


class Planner:
    """Calls the planner as the alert loop does: with each batch of transitions, and every second between."""

    def __init__(self, routes: Routes) -> None:
        self.routes = routes
        self.state = NotifierState()
        self.plans: list[Plan] = []

    def at(self, now: float, *transitions: Transition) -> Plan:
        before = self.state
        plan = plan_notifications(list(transitions), self.routes, self.state, now=now)
        assert self.state is before  # the state given is never changed
        self.state = plan.state
        self.plans.append(plan)
        return plan

    def until(self, end: float, start: float) -> list[Plan]:
        out = []
        now = start
        while now <= end:
            out.append(self.at(now))
            now += 1
        return out

    def sent(self, channel: Channel) -> list[tuple[float, list[tuple[str, AlertKey]]]]:
        return [
            (m.at, [(n.kind, n.alert.key) for n in m.notices])
            for p in self.plans
            for m in p.messages
            if m.channel == channel
        ]


def test_each_site_gets_its_own_webhook_message_and_a_robot_gets_one_message_with_a_section_per_site() -> None:
    planner = Planner(Routes(default=(OPS, HOOK)))
    a0, a1, b0 = alert("alpha", 0), alert("alpha", 1), alert("beta", 0)
    plan = planner.at(T0, fire(a0), fire(a1), fire(b0))
    hooks = [m for m in plan.messages if m.channel == HOOK]
    assert [(m.groups, len(m.notices)) for m in hooks] == [(("alpha",), 2), (("beta",), 1)]
    body = json.loads(hooks[0].body)
    assert (body["sites"], body["firing"], [a["box"] for a in body["alerts"]]) == (
        ["alpha"],
        2,
        ["alpha-box-00", "alpha-box-01"],
    )
    (robot,) = [m for m in plan.messages if m.channel == OPS]
    assert robot.groups == ("alpha", "beta")
    assert len({m.id for m in plan.messages}) == len(plan.messages)


def test_a_site_gets_at_most_one_message_per_group_interval() -> None:
    planner = Planner(Routes(default=(HOOK,)))
    planner.at(T0, fire(alert("alpha", 0)))
    planner.at(T0 + 5, fire(alert("alpha", 1, at=T0 + 5)), fire(alert("beta", 0, at=T0 + 5)))
    planner.until(T0 + 40, T0 + 6)
    assert [(at, [k.box for _, k in notices]) for at, notices in planner.sent(HOOK)] == [
        (T0, ["alpha-box-00"]),
        (T0 + 5, ["beta-box-00"]),  # another site is not held back by alpha's interval
        (T0 + 30, ["alpha-box-01"]),
    ]


def test_group_wait_gathers_what_arrives_shortly_after_the_first_alert_of_a_site() -> None:
    planner = Planner(Routes(default=(HOOK,), timing=Timing(group_wait_s=10)))
    planner.at(T0, fire(alert("alpha", 0)))
    planner.at(T0 + 4, fire(alert("alpha", 1, at=T0 + 4)))
    planner.until(T0 + 20, T0 + 5)
    assert [(at, len(n)) for at, n in planner.sent(HOOK)] == [(T0 + 10, 2)]


def test_a_resolve_is_told_only_for_an_alert_told_firing() -> None:
    planner = Planner(Routes(default=(HOOK,), timing=Timing(group_wait_s=10)))
    blip = alert("alpha", 0)
    planner.at(T0, fire(blip))
    planner.at(T0 + 3, resolve(blip, T0 + 3))  # gone before it was told: nothing to tell
    planner.until(T0 + 60, T0 + 4)
    assert planner.sent(HOOK) == []
    real = alert("alpha", 1, at=T0 + 100)
    planner.at(T0 + 100, fire(real))
    planner.until(T0 + 120, T0 + 101)
    planner.at(T0 + 121, resolve(real, T0 + 121))
    planner.until(T0 + 160, T0 + 122)
    assert [[kind for kind, _ in n] for _, n in planner.sent(HOOK)] == [["firing"], ["resolved"]]


def test_an_alert_muted_before_its_notice_went_out_is_not_told() -> None:
    planner = Planner(Routes(default=(HOOK,), timing=Timing(group_wait_s=10)))
    a = alert("alpha", 0)
    planner.at(T0, fire(a))
    planner.at(T0 + 3, mute(a, T0 + 3))
    planner.until(T0 + 60, T0 + 4)
    assert planner.sent(HOOK) == []


def test_a_still_firing_alert_is_repeated_every_four_hours_until_acknowledged() -> None:
    planner = Planner(Routes(default=(HOOK,)))
    a = alert("alpha", 0)
    planner.at(T0, fire(a))
    planner.at(T0 + 4 * 3600 - 1)
    planner.at(T0 + 4 * 3600)
    planner.at(T0 + 8 * 3600)
    assert [(at - T0, [kind for kind, _ in n]) for at, n in planner.sent(HOOK)] == [
        (0, ["firing"]),
        (4 * 3600, ["repeat"]),
        (8 * 3600, ["repeat"]),
    ]
    planner.at(T0 + 9 * 3600, acknowledge(a, "li.wei", T0 + 9 * 3600))
    planner.at(T0 + 12 * 3600)
    planner.at(T0 + 16 * 3600)
    assert len(planner.sent(HOOK)) == 3


def test_alertmanager_gets_one_batch_per_pass_and_every_firing_alert_again_each_minute() -> None:
    planner = Planner(Routes(default=(AM,)))
    a, b = alert("alpha", 0), alert("beta", 0)
    planner.at(T0, fire(a), fire(b))
    planner.at(T0 + 1, acknowledge(a, "ops", T0 + 1))  # Alertmanager knows no acknowledgement: re-sent anyway
    planner.until(T0 + 130, T0 + 2)
    planner.at(T0 + 131, resolve(b, T0 + 131))
    sent = planner.sent(AM)
    assert [(at - T0, sorted(k.site for _, k in n)) for at, n in sent] == [
        (0, ["alpha", "beta"]),
        (60, ["alpha", "beta"]),
        (120, ["alpha", "beta"]),
        (131, ["beta"]),
    ]
    body = json.loads(next(m for p in planner.plans for m in p.messages if m.at == T0 + 131).body)
    assert body[0]["endsAt"] == "2027-01-15T08:02:11.000Z"  # the resolve time


def test_routes_send_by_site_region_and_severity_and_nothing_is_lost_unrouted() -> None:
    routes = Routes(
        routes=(
            Route(channels=(AM,)),
            Route(channels=(EAST,), regions=frozenset({"east"}), severities=frozenset({Severity.CRITICAL})),
            Route(channels=(ALPHA_GROUP,), sites=frozenset({SiteId("alpha")})),
            Route(channels=(HOOK,), kinds=frozenset({AlertKind.DISK_FULL})),
        ),
    )
    planner = Planner(routes)
    critical_east = alert("alpha", 0)
    warning_east = alert("beta", 0, severity=Severity.WARNING)
    critical_west = alert("gamma", 0, region="west")
    disk = alert("beta", 1, kind=AlertKind.DISK_FULL, severity=Severity.WARNING)
    plan = planner.at(T0, *(fire(x) for x in (critical_east, warning_east, critical_west, disk)))
    routed = {(m.channel.name, n.alert.key.site, n.alert.key.box) for m in plan.messages for n in m.notices}
    assert routed == {
        ("am", "alpha", "alpha-box-00"),
        ("am", "beta", "beta-box-00"),
        ("am", "gamma", "gamma-box-00"),
        ("am", "beta", "beta-box-01"),
        ("east", "alpha", "alpha-box-00"),
        ("alpha-group", "alpha", "alpha-box-00"),
        ("hook", "beta", "beta-box-01"),
    }
    assert plan.unrouted == ()
    lonely = Planner(Routes(routes=(Route(channels=(EAST,), regions=frozenset({"east"})),)))
    assert lonely.at(T0, fire(critical_west)).unrouted == (critical_west.key,)


def test_a_robot_is_never_sent_more_than_its_budget_and_what_waits_goes_out_later() -> None:
    planner = Planner(Routes(default=(OPS,)))
    fired: list[AlertKey] = []
    for i in range(120):  # a new site down every second for two minutes
        a = alert(f"site-{i:03d}", 0, at=T0 + i)
        fired.append(a.key)
        planner.at(T0 + i, fire(a))
    planner.until(T0 + 240, T0 + 120)
    sent = planner.sent(OPS)
    times = [at for at, _ in sent]
    assert all(b - a >= 60 / 18 - 1e-9 for a, b in itertools.pairwise(times))
    assert max(sum(1 for t in times if start <= t < start + 60) for start in times) <= 18
    assert {k for _, notices in sent for _, k in notices} == set(fired)  # every alert was told
    assert 30 <= len(sent) <= 40  # one message per 3.3 s while sites keep falling, each a digest


@pytest.mark.parametrize(
    ("routes", "problem"),
    [
        (Routes(), "no route and no default channel"),
        (Routes(routes=(Route(channels=()),)), "routes[0] names no channel"),
        (Routes(routes=(Route(channels=(OPS,), regions=frozenset()),)), "routes[0].regions is empty"),
        (Routes(default=(Channel("dingtalk", " "),)), "empty name"),
        (Routes(default=(Channel("sms", "x"),)), "kind 'sms' is none of"),  # type: ignore[arg-type]
        (Routes(default=(OPS,), dingtalk_per_minute=25), "blocks a robot for 10 minutes past 20"),
        (Routes(default=(OPS,), dingtalk_max_bytes=30_000), "DingTalk's limit"),
        (Routes(default=(OPS,), timing=Timing(repeat_interval_s=10)), "at least group_interval_s"),
        (Routes(default=(OPS,), timezone="Asia/Beijing"), "no IANA time zone"),
    ],
)
def test_bad_routes_are_reported_with_what_to_change(routes: Routes, problem: str) -> None:
    assert any(problem in p for p in validate_routes(routes)), validate_routes(routes)


def test_good_routes_have_no_problem() -> None:
    assert (
        validate_routes(
            Routes(routes=(Route(channels=(OPS, AM), severities=frozenset({Severity.CRITICAL})),), default=(HOOK,))
        )
        == []
    )
