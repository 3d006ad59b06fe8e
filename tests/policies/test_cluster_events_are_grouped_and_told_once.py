"""Which Events of a central cluster are told, and how (``edgefleet.cloud.cluster_events``), pure: the rules filter
by level, kind, namespace and reason (exclude beats include; no rule forwards nothing); one group per involved
object once its burst has waited; an Event is told once whatever its count, again only after it kept repeating
for ``REPEAT_S``; told keys survive in the database (``ToldEvents``); a DingTalk message fits the robot's limit;
and the notification file's ``events:`` routes take Events only."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgefleet.cloud.alerting.config import NotificationConfigError, load_notifications
from edgefleet.cloud.alerting.routes import Channel, event_channels
from edgefleet.cloud.cluster_events import (
    REPEAT_S,
    ClusterEvent,
    EventGroup,
    plan_event_groups,
    read_event,
    render_event_dingtalk,
)
from edgefleet.cloud.event_forwarding import ToldEvents
from edgefleet.cloud.store import Store
from edgefleet.ids import ClusterId
from edgefleet.policies import ClusterPolicy, PolicySpec, check_policy

T0 = 1_800_000_000.0


def policy(*rules: dict[str, Any]) -> ClusterPolicy:
    checked, problems = check_policy(msgspec.convert({"events": list(rules)}, PolicySpec), has_timezone=True)
    assert problems == []
    return checked


WARNINGS = policy({"action": "include", "level": "Warning"}, {"action": "exclude", "reasons": ["FailedScheduling"]})


def raw(
    uid: str,
    *,
    reason: str = "BackOff",
    level: str = "Warning",
    count: int = 1,
    first: float = T0,
    last: float | None = None,
    pod: str = "b-api-1",
    kind: str = "Pod",
    namespace: str = "shop",
) -> dict[str, Any]:
    return {
        "metadata": {"uid": uid, "namespace": namespace, "name": f"{pod}.{uid}"},
        "involvedObject": {"kind": kind, "namespace": namespace, "name": pod, "uid": f"uid-{pod}"},
        "type": level,
        "reason": reason,
        "message": f"{reason} of {pod}",
        "count": count,
        "firstTimestamp": _utc(first),
        "lastTimestamp": _utc(last if last is not None else first),
    }


def _utc(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def read(*raws: dict[str, Any]) -> list[ClusterEvent]:
    events = [read_event(r) for r in raws]
    assert all(e is not None for e in events)
    return [e for e in events if e is not None]


@pytest.mark.parametrize(
    ("name", "event", "forwarded"),
    [
        ("a Warning", raw("a"), True),
        ("a Normal", raw("a", level="Normal", reason="Started"), False),
        ("an excluded reason", raw("a", reason="FailedScheduling"), False),
        ("a Node's Warning", raw("a", kind="Node", pod="n1", namespace=""), True),
    ],
)
def test_rules_pick_the_events(name: str, event: dict[str, Any], forwarded: bool) -> None:
    groups = plan_event_groups("c", WARNINGS, read(event), set(), now=T0 + 60)
    assert bool(groups) == forwarded, name


def test_no_rule_forwards_nothing_and_rules_narrow_by_kind_and_namespace() -> None:
    assert plan_event_groups("c", ClusterPolicy(), read(raw("a")), set(), now=T0 + 60) == []
    pods_in_shop = policy({"action": "include", "kinds": ["Pod"], "namespaces": ["shop"]})
    events = read(raw("a"), raw("b", namespace="media", pod="m-1"), raw("c", kind="Node", pod="n1", namespace=""))
    assert [g.involved.name for g in plan_event_groups("c", pods_in_shop, events, set(), now=T0 + 60)] == ["b-api-1"]


def test_one_group_per_object_after_the_wait_and_each_event_once_whatever_its_count() -> None:
    events = read(raw("a", count=1), raw("b", reason="Failed", first=T0 + 5), raw("c", pod="c-worker-1"))
    assert plan_event_groups("c", WARNINGS, events, set(), now=T0 + 10) == []  # the burst is still gathering
    groups = plan_event_groups("c", WARNINGS, events, set(), now=T0 + 30)
    assert [(g.involved.name, [e.reason for e in g.events]) for g in groups] == [
        ("b-api-1", ["BackOff", "Failed"]),
        ("c-worker-1", ["BackOff"]),
    ]
    told = {k for g in groups for k in g.keys}
    # Twenty repeats later: the same Events, counts climbing - nothing to tell.
    later = read(raw("a", count=21, last=T0 + 600), raw("b", reason="Failed", first=T0 + 5), raw("c", pod="c-worker-1"))
    assert plan_event_groups("c", WARNINGS, later, told, now=T0 + 600) == []
    # A new Event of the object is told alone, not with what was told already.
    fresh = [*later, *read(raw("d", reason="Unhealthy", first=T0 + 700))]
    (group,) = plan_event_groups("c", WARNINGS, fresh, told, now=T0 + 800)
    assert [e.reason for e in group.events] == ["Unhealthy"]


def test_an_event_that_keeps_repeating_is_told_again_each_repeat_period_with_its_count() -> None:
    (first,) = plan_event_groups("c", WARNINGS, read(raw("a", count=3, last=T0 + 60)), set(), now=T0 + 60)
    told = set(first.keys)
    still = read(raw("a", count=500, last=T0 + REPEAT_S - 1))
    assert plan_event_groups("c", WARNINGS, still, told, now=T0 + REPEAT_S - 1) == []
    again = read(raw("a", count=520, last=T0 + REPEAT_S + 60))
    (second,) = plan_event_groups("c", WARNINGS, again, told, now=T0 + REPEAT_S + 60)
    assert second.events[0].count == 520
    assert second.id != first.id


@given(
    st.lists(st.sampled_from(["a", "b", "c", "d"]), unique=True, min_size=1),
    st.permutations(["a", "b", "c", "d"]),
    st.integers(min_value=1, max_value=1000),
)
def test_the_message_id_is_the_events_told_not_their_order_nor_count(
    uids: list[str], order: list[str], count: int
) -> None:
    events = read(*(raw(u) for u in uids))
    again = {e.uid: e for e in read(*(raw(u, count=count) for u in uids))}
    reordered = tuple(again[u] for u in order if u in again)
    involved = events[0].involved
    assert EventGroup("c", involved, tuple(events)).id == EventGroup("c", involved, reordered).id
    if len(uids) > 1:
        assert EventGroup("c", involved, tuple(events[1:])).id != EventGroup("c", involved, tuple(events)).id


def test_told_keys_survive_in_the_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'told.db'}"
    store = Store(url)
    try:
        ToldEvents(store).create_schema()
        ToldEvents(store).record(ClusterId("c"), ["a@0", "b@0"], now=T0)
        ToldEvents(store).record(ClusterId("c"), ["b@0", "c@0"], now=T0 + 1)  # told twice is no error
        ToldEvents(store).record(ClusterId("other"), ["a@0"], now=T0 + 1)
    finally:
        store.close()
    reopened = Store(url)
    try:
        assert ToldEvents(reopened).load(ClusterId("c")) == {"a@0", "b@0", "c@0"}
        # Long past an Event's life, told keys are let go.
        ToldEvents(reopened).record(ClusterId("c"), ["z@0"], now=T0 + REPEAT_S + 2 * 3600)
        assert ToldEvents(reopened).load(ClusterId("c")) == {"z@0"}
    finally:
        reopened.close()


def test_a_dingtalk_message_of_many_long_events_fits_the_robot() -> None:
    events = read(*(raw(f"u{i}", reason=f"Reason{i}", first=T0 + i) for i in range(60)))
    long = tuple(
        ClusterEvent(e.uid, e.namespace, e.level, e.reason, "x" * 5000, 40, e.first_at, e.last_at, e.involved)
        for e in events
    )
    body = render_event_dingtalk(EventGroup("c", long[0].involved, long), max_bytes=4000, timezone="Asia/Shanghai")
    assert len(body) <= 4000
    text = json.loads(body)["markdown"]["text"]
    assert "Warning events of Pod shop/b-api-1 in cluster c" in text
    assert "more events" in text
    assert "40 times" in text


NOTIFICATIONS = """\
apiVersion: edgefleet.io/v1
kind: Notifications
metadata: {name: test}
spec:
  channels:
    - {name: platform, kind: webhook, url: "http://127.0.0.1:9/hooks"}
    - {name: am, kind: alertmanager, url: "http://127.0.0.1:9/am"}
  routes:
"""


def test_events_routes_take_events_only(tmp_path: Path) -> None:
    path = tmp_path / "notifications.yaml"
    path.write_text(NOTIFICATIONS + "    - {events: [Warning], regions: [east], channels: [platform]}\n"
                    "    - {channels: [am]}\n")  # fmt: skip
    routes = load_notifications(path).routes
    assert event_channels(routes, "Warning", "east") == (Channel("webhook", "platform"),)
    assert event_channels(routes, "Warning", "west") == ()
    assert event_channels(routes, "Normal", "east") == ()
    path.write_text(NOTIFICATIONS + "    - {events: [Warning], severities: [critical], channels: [am]}\n")
    with pytest.raises(NotificationConfigError) as caught:
        load_notifications(path)
    assert "a route with events takes cluster Events only" in str(caught.value)
    assert "route Events to a DingTalk robot or a webhook" in str(caught.value)
