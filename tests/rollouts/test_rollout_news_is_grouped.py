"""A rollout's news goes through the alert routes, grouped: one message per channel for a rollout's tick, never
one per site; a DingTalk message fits the robot's limit however many sites it concerns; a webhook gets them all.
Pure: ``plan_rollout_notifications`` on hand-made notes and on the notes of ``decide`` over a 100-site rollout."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgefleet.cloud.alerting.config import NotificationConfigError, load_notifications
from edgefleet.cloud.alerting.routes import (
    ROLLOUT_EVENTS,
    Channel,
    RolloutEvent,
    Route,
    Routes,
    rollout_channels,
    validate_routes,
)
from edgefleet.cloud.rollouts.deciding import Notify, NotifyKind, the_wave
from edgefleet.cloud.rollouts.notifying import RolloutAbout, plan_rollout_notifications
from edgefleet.ids import SiteId
from tests.rollouts.observations import good, rolling, spec
from tests.rollouts.test_rollout_state_machine import Rollout

T0 = 1_800_000_000.0
ABOUT = RolloutAbout("r-7", "scan-upload-2.0.0", "scan-upload", T0 - 10)
OPS = Channel("dingtalk", "ops")
TICKETS = Channel("webhook", "tickets")
EAST = Channel("dingtalk", "east")
AM = Channel("alertmanager", "am")


def sites(n: int, prefix: str = "site") -> tuple[SiteId, ...]:
    return tuple(SiteId(f"{prefix}-{i:04d}") for i in range(n))


def aborted_and_rolled_back(reverted: tuple[SiteId, ...]) -> list[Notify]:
    return [
        Notify("aborted", "Rollout of scan-upload-2.0.0 stopped: 1 sites failed (the rollout stops at more than 0)"),
        Notify("rolled-back", f"Rollout of scan-upload-2.0.0: {len(reverted)} sites reverted", reverted),
    ]


def text(body: bytes) -> str:
    return str(json.loads(body)["markdown"]["text"])


def test_the_rollout_events_the_routes_know_are_the_ones_decide_tells() -> None:
    assert set(get_args(NotifyKind)) == set(get_args(RolloutEvent)) == set(ROLLOUT_EVENTS)


@pytest.mark.parametrize(
    ("route", "event", "named", "regions", "expected"),
    [
        (Route((OPS,), rollouts=frozenset({"aborted"})), "aborted", (), (), (OPS,)),
        (Route((OPS,), rollouts=frozenset({"aborted"})), "done", (), (), (TICKETS,)),  # not taken: the default
        (
            Route((EAST,), rollouts=frozenset({"rolled-back"}), regions=frozenset({"east"})),
            "rolled-back",
            ("a",),
            ("east",),
            (EAST,),
        ),
        (
            Route((EAST,), rollouts=frozenset({"rolled-back"}), regions=frozenset({"east"})),
            "rolled-back",
            ("b",),
            ("west",),
            (TICKETS,),
        ),
        (
            Route((EAST,), rollouts=frozenset({"sites-deferred"}), sites=frozenset({SiteId("a")})),
            "sites-deferred",
            ("b", "a"),
            ("east",),
            (EAST,),
        ),
        # A notification that names no site passes the sites matcher.
        (Route((EAST,), rollouts=frozenset({"started"}), sites=frozenset({SiteId("a")})), "started", (), (), (EAST,)),
        # An alert route (no rollouts matcher, even with no matcher at all) takes no rollout news.
        (Route((OPS,)), "aborted", (), (), (TICKETS,)),
    ],
)
def test_rollout_news_goes_to_the_rollout_routes_that_take_it_else_to_the_default(
    route: Route, event: RolloutEvent, named: tuple[str, ...], regions: tuple[str, ...], expected: tuple[Channel, ...]
) -> None:
    routes = Routes(routes=(route,), default=(TICKETS, AM))
    assert rollout_channels(routes, event, [SiteId(s) for s in named], regions) == expected


def test_alertmanager_gets_no_rollout_news_and_a_rollout_route_takes_no_alerts() -> None:
    assert rollout_channels(Routes(default=(AM,)), "aborted") == ()
    problems = validate_routes(
        Routes(routes=(Route((AM,), rollouts=frozenset({"aborted"}), severities=frozenset()),), default=(OPS,))
    )
    assert any("alertmanager channel, which takes alerts only" in p for p in problems)
    assert any(
        "severities matches alerts, and a route with rollouts takes rollout notifications only" in p for p in problems
    )
    assert validate_routes(Routes(routes=(Route((OPS,), rollouts=frozenset()),))) == [
        "routes[0].rollouts is empty and matches nothing; leave it out to match any"
    ]


def test_a_canary_that_stops_and_rolls_back_is_one_message_per_channel_naming_the_sites() -> None:
    routes = Routes(routes=(Route((OPS, TICKETS), rollouts=frozenset(ROLLOUT_EVENTS)),))
    reverted = (SiteId("site-a"), SiteId("site-b"))
    messages = plan_rollout_notifications(ABOUT, aborted_and_rolled_back(reverted), routes, regions={}, now=T0)
    assert [m.channel for m in messages] == [OPS, TICKETS]
    robot, hook = messages
    markdown = text(robot.body)
    assert json.loads(robot.body)["markdown"]["title"] == "Rollout r-7 of scan-upload-2.0.0: stopped, rolled back"
    assert "**stopped**: Rollout of scan-upload-2.0.0 stopped: 1 sites failed" in markdown
    assert "sites (2): site-a, site-b" in markdown
    assert "`see why and what was reverted: edgefleet rollout status r-7`" in markdown
    payload = json.loads(hook.body)
    assert payload["rollout"] == {"id": "r-7", "release": "scan-upload-2.0.0", "app": "scan-upload"}
    assert [(e["event"], e["sites"]) for e in payload["events"]] == [
        ("aborted", []),
        ("rolled-back", ["site-a", "site-b"]),
    ]
    assert payload["id"] == hook.id
    assert (robot.listed, hook.listed) == (2, 2)


def test_waiting_for_approval_says_how_to_promote() -> None:
    routes = Routes(default=(OPS,))
    notes = [Notify("awaiting-approval", "Wave w1 of scan-upload-2.0.0 waits for a promotion", wave="w1")]
    (message,) = plan_rollout_notifications(ABOUT, notes, routes, regions={}, now=T0)
    assert "**waiting for approval** (wave w1)" in text(message.body)
    assert "`promote the next wave: edgefleet rollout promote r-7`" in text(message.body)


def test_thousands_of_sites_fit_one_dingtalk_message_listed_then_counted_and_a_webhook_gets_all() -> None:
    many = sites(5000)
    notes = [
        Notify("sites-deferred", f"5000 sites offline, deferred: {', '.join(many)}", many),
        *aborted_and_rolled_back(many),
    ]
    routes = Routes(default=(OPS, TICKETS), dingtalk_max_bytes=4000)
    robot, hook = plan_rollout_notifications(ABOUT, notes, routes, regions={}, now=T0)
    assert len(robot.body) <= 4000
    markdown = text(robot.body)
    assert "sites (5000): site-0000" in markdown
    assert markdown.count("site-0049 and 4950 more") == 2
    assert robot.listed == 100
    assert [len(e["sites"]) for e in json.loads(hook.body)["events"]] == [5000, 0, 5000]


def test_the_same_tick_decided_again_plans_the_same_message_ids_and_a_new_status_new_ones() -> None:
    routes = Routes(default=(OPS, TICKETS))
    notes = aborted_and_rolled_back((SiteId("site-a"),))
    first = plan_rollout_notifications(ABOUT, notes, routes, regions={}, now=T0)
    again = plan_rollout_notifications(ABOUT, notes, routes, regions={}, now=T0 + 2)
    later = RolloutAbout(ABOUT.id, ABOUT.release, ABOUT.app, T0 + 60)
    assert [m.id for m in first] == [m.id for m in again]
    assert not {m.id for m in first} & {
        m.id for m in plan_rollout_notifications(later, notes, routes, regions={}, now=T0)
    }


_notes = st.lists(
    st.builds(
        Notify,
        kind=st.sampled_from(ROLLOUT_EVENTS),
        message=st.text(max_size=400),
        sites=st.integers(0, 150).map(sites),
        wave=st.one_of(st.none(), st.sampled_from(["w0", "w1", "w2"])),
    ),
    max_size=12,
)
_routes = st.builds(
    Routes,
    routes=st.lists(
        st.builds(
            Route,
            channels=st.lists(st.sampled_from([OPS, TICKETS, EAST, AM]), min_size=1, max_size=3, unique=True).map(
                tuple
            ),
            rollouts=st.one_of(st.none(), st.frozensets(st.sampled_from(ROLLOUT_EVENTS), min_size=1)),
            sites=st.one_of(st.none(), st.frozensets(st.sampled_from(sites(5)), min_size=1)),
        ),
        max_size=4,
    ).map(tuple),
    default=st.lists(st.sampled_from([OPS, TICKETS, AM]), max_size=3, unique=True).map(tuple),
    dingtalk_max_bytes=st.integers(2000, 19_000),
)


@settings(max_examples=60, deadline=None)
@given(notes=_notes, routes=_routes)
def test_any_tick_is_at_most_one_message_per_channel_never_one_per_site(notes: list[Notify], routes: Routes) -> None:
    messages = plan_rollout_notifications(ABOUT, notes, routes, regions={}, now=T0)
    per_channel = Counter(m.channel for m in messages)
    assert all(count == 1 for count in per_channel.values())
    assert all(m.channel.kind != "alertmanager" for m in messages)
    assert len({m.id for m in messages}) == len(messages)
    for message in messages:
        if message.channel.kind == "dingtalk":
            assert len(message.body) <= routes.dingtalk_max_bytes
    # Every event a route or the default takes is in its channel's one message.
    for note in notes:
        for channel in rollout_channels(routes, note.kind, note.sites):
            (message,) = [m for m in messages if m.channel == channel]
            if channel.kind == "webhook":
                assert note.kind in {e["event"] for e in json.loads(message.body)["events"]}


def test_a_hundred_site_rollout_to_done_is_a_handful_of_messages() -> None:
    names = [f"s{i:03d}" for i in range(100)]
    waves = [names[:1], names[1:10], names[10:40], names[40:]]
    rollout = Rollout(spec(*waves, max_in_flight=100))
    routes = Routes(default=(OPS, TICKETS))
    sent = []
    ticks = 0
    for now in range(0, 200, 10):
        observed = {s: good(s) if rollout.state(s) == "in-progress" else rolling(s) for s in names}
        decision = rollout.tick(float(now), observed)
        ticks += 1
        notes = [a for a in decision.actions if isinstance(a, Notify)]
        about = RolloutAbout("r-100", "sorting-recognition-3.6.0", "sorting-recognition", float(now))
        sent += plan_rollout_notifications(about, notes, routes, regions={}, now=T0 + now)
        if rollout.overall() == "done":
            break
    assert rollout.overall() == "done"
    robot = [m for m in sent if m.channel == OPS]
    # One per tick (started, each wave passed, the last with done): 100 sites, 4 waves, 5 messages.
    assert len(robot) == len(waves) + 1 == ticks
    told = " ".join(text(m.body) for m in robot)
    assert "started" in told
    assert "done" in told


NOTIFICATIONS = """\
apiVersion: edgefleet.io/v1
kind: Notifications
metadata: {{name: test}}
spec:
  channels:
    - {{name: ops, kind: webhook, url: "http://127.0.0.1:9/ops"}}
    - {{name: am, kind: alertmanager, url: "http://127.0.0.1:9"}}
  routes:
    - channels: [am]
    - {route}
  defaultChannels: []
"""


def test_the_notification_file_routes_rollouts_with_a_rollouts_matcher(tmp_path: Path) -> None:
    path = tmp_path / "notifications.yaml"
    path.write_text(NOTIFICATIONS.format(route="{rollouts: [aborted, rolled-back], channels: [ops]}"))
    config = load_notifications(path, environ={})
    assert rollout_channels(config.routes, "rolled-back") == (Channel("webhook", "ops"),)
    assert rollout_channels(config.routes, "started") == ()
    path.write_text(NOTIFICATIONS.format(route="{rollouts: [aborted, stoped], channels: [ops]}"))
    with pytest.raises(NotificationConfigError, match="'stoped'; expected one of started, wave-passed"):
        load_notifications(path, environ={})
    path.write_text(NOTIFICATIONS.format(route="{rollouts: [aborted], channels: [am]}"))
    with pytest.raises(NotificationConfigError, match="alertmanager channel, which takes alerts only"):
        load_notifications(path, environ={})


def test_a_planner_named_wave_is_named_once() -> None:
    """The planner names waves "canary" and "wave 2": the demo's message said "(wave wave 2)"."""
    routes = Routes(default=(OPS,))
    notes = [Notify("awaiting-approval", "Wave 2 of scan-upload-2.0.0 waits for a promotion", wave="wave 2")]
    (message,) = plan_rollout_notifications(ABOUT, notes, routes, regions={}, now=T0)
    assert "**waiting for approval** (wave 2): Wave 2 of" in text(message.body)
    assert "wave wave" not in text(message.body).lower()
    assert [the_wave(name) for name in ("canary", "wave 2", "w1")] == ["the canary", "wave 2", "wave w1"]
