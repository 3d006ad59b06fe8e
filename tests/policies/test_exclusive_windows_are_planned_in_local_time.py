"""Which exclusive-host taints a central cluster's nodes should change (``edgefleet.cloud.tainting``), pure: a table
at a window's edges and across midnight, whole DST days minute by minute (a window is wall-clock time, so it may
not happen, or happen twice), and the properties every plan keeps: someone else's taints untouched, at most one
exclusive taint per node, and a second plan after the first changes nothing."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgefleet.cloud.auditing import local_time
from edgefleet.cloud.tainting import exclusive_taint, plan_node_taints
from edgefleet.ids import ClusterId
from edgefleet.inventory import Cluster
from edgefleet.policies import EXCLUSIVE_TAINT, ClusterPolicy, PolicySpec, check_policy

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
GROUP = "edgefleet.io/host-group"
FOREIGN = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
# Our key, another effect: not a taint edgefleet sets, so not one it removes.
FOREIGN_EFFECT = {"key": EXCLUSIVE_TAINT, "value": "bigdata", "effect": "NoExecute"}
UNREACHABLE = {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": "2026-12-01T00:00:00Z"}


def policy(*exclusive: dict[str, Any]) -> ClusterPolicy:
    spec = msgspec.convert(
        {
            "hostGroups": {
                "general": {"matchLabels": {GROUP: "general"}},
                "bigdata": {"matchLabels": {GROUP: "bigdata"}},
                "gpu": {"matchLabels": {"gpu": "yes"}},
            },
            "exclusiveHosts": list(exclusive),
        },
        PolicySpec,
    )
    checked, problems = check_policy(spec, has_timezone=True)
    assert problems == []
    return checked


NIGHTS = policy({"hostGroup": "bigdata", "window": "00:00-06:00", "namespaces": ["bigdata"]})


def node(name: str, group: str | None, *taints: dict[str, Any], **labels: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "resourceVersion": "7",
            "labels": {**({GROUP: group} if group else {}), **labels},
        },
        "spec": {"taints": list(taints)} if taints else {},
    }


def at(hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 12, 2, hour, minute, tzinfo=SHANGHAI)


OURS = exclusive_taint("bigdata")


@pytest.mark.parametrize(
    ("name", "nodes", "local", "expected"),
    [
        ("the window opens", [node("n3", "bigdata")], at(0, 0), {"n3": [OURS]}),
        ("inside, already tainted", [node("n3", "bigdata", OURS)], at(5, 59), {}),
        ("the window closes", [node("n3", "bigdata", OURS)], at(6, 0), {"n3": []}),
        ("outside, untainted", [node("n3", "bigdata")], at(12, 0), {}),
        ("a general node is never kept", [node("n1", "general")], at(3, 0), {}),
        ("another taint stays when tainting", [node("n3", "bigdata", FOREIGN)], at(3, 0), {"n3": [FOREIGN, OURS]}),
        ("another taint stays when untainting", [node("n3", "bigdata", FOREIGN, OURS)], at(7), {"n3": [FOREIGN]}),
        ("our key with another effect is not ours", [node("n3", "bigdata", FOREIGN_EFFECT)], at(9), {}),
        (
            "the node lifecycle's taint keeps its timeAdded",
            [node("n3", "bigdata", UNREACHABLE)],
            at(1),
            {"n3": [UNREACHABLE, OURS]},
        ),
        ("a node that left the group is freed", [node("n1", "general", OURS)], at(3), {"n1": []}),
        (
            "a taint for another group is replaced",
            [node("n3", "bigdata", exclusive_taint("old"))],
            at(3),
            {"n3": [OURS]},
        ),
        (
            "only the nodes that change",
            [node("n1", "general"), node("n3", "bigdata"), node("n4", "bigdata", OURS)],
            at(2),
            {"n3": [OURS]},
        ),
    ],
)
def test_a_table_of_nodes_at_the_windows_edges(
    name: str, nodes: list[dict[str, Any]], local: dt.datetime, expected: dict[str, list[dict[str, Any]]]
) -> None:
    planned = plan_node_taints(NIGHTS, nodes, local=local)
    assert {p.node: p.taints for p in planned} == expected, name
    assert all(p.resource_version == "7" for p in planned)


def test_a_window_across_midnight_is_kept_from_evening_to_morning() -> None:
    late = policy({"hostGroup": "bigdata", "window": "22:00-06:00", "apps": ["spark"]})
    bare = [node("n3", "bigdata")]
    opened = {(h, m) for h in range(24) for m in (0, 30, 59) if plan_node_taints(late, bare, local=at(h, m))}
    assert opened == {(h, m) for h in (22, 23, 0, 1, 2, 3, 4, 5) for m in (0, 30, 59)}


def test_a_window_to_midnight_ends_at_24_00() -> None:
    evening = policy({"hostGroup": "bigdata", "window": "18:00-24:00", "apps": ["spark"]})
    bare = [node("n3", "bigdata")]
    assert plan_node_taints(evening, bare, local=at(23, 59))
    assert not plan_node_taints(evening, bare, local=at(0, 0))
    assert not plan_node_taints(evening, bare, local=at(17, 59))


def test_no_window_keeps_the_group_always_and_two_groups_on_one_node_take_the_first() -> None:
    always = policy(
        {"hostGroup": "gpu", "apps": ["trainer"]},
        {"hostGroup": "bigdata", "window": "00:00-06:00", "apps": ["spark"]},
    )
    both = [node("n5", "bigdata", gpu="yes")]
    for hour in (3, 12):
        assert [p.taints for p in plan_node_taints(always, both, local=at(hour))] == [[exclusive_taint("gpu")]]


def tainted_minutes(window: str, zone: str, day: dt.date) -> int:
    """How many minutes of the UTC instants of the local ``day`` the node carries the taint, stepping the clock a
    minute at a time as the controller's passes do."""
    kept = policy({"hostGroup": "bigdata", "window": window, "apps": ["spark"]})
    cluster = Cluster(ClusterId("c"), "central", "c", "east", "test", zone, kept)
    tz = zoneinfo.ZoneInfo(zone)
    start = dt.datetime.combine(day, dt.time(), tzinfo=tz).timestamp()
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=tz).timestamp()
    bare = [node("n3", "bigdata")]
    minutes, now = 0, start
    while now < end:
        minutes += bool(plan_node_taints(kept, bare, local=local_time(cluster, now)))
        now += 60
    return minutes


@pytest.mark.parametrize(
    ("window", "day", "minutes"),
    [
        # Berlin springs forward at 02:00 on 2026-03-29: 02:00-03:00 does not happen that day.
        ("02:00-03:00", dt.date(2026, 3, 28), 60),
        ("02:00-03:00", dt.date(2026, 3, 29), 0),
        # ... and falls back at 03:00 on 2026-10-25: 02:00-03:00 happens twice.
        ("02:00-03:00", dt.date(2026, 10, 25), 120),
        # A window across the changes is an hour shorter, then longer, in real time (00:00-06:00 of the day).
        ("00:00-06:00", dt.date(2026, 3, 29), 5 * 60),
        ("00:00-06:00", dt.date(2026, 10, 25), 7 * 60),
        # The evening part of 22:00-06:00 within the day (22:00-24:00) and its morning part (00:00-06:00).
        ("22:00-06:00", dt.date(2026, 3, 29), 5 * 60 + 2 * 60),
    ],
)
def test_windows_are_wall_clock_time_across_dst(window: str, day: dt.date, minutes: int) -> None:
    assert tainted_minutes(window, "Europe/Berlin", day) == minutes


TAINTS = st.sampled_from([FOREIGN, FOREIGN_EFFECT, UNREACHABLE, OURS, exclusive_taint("gpu"), exclusive_taint("x")])
NODES = st.lists(
    st.tuples(
        st.sampled_from([None, "general", "bigdata"]),
        st.booleans(),
        st.lists(TAINTS, max_size=3).map(
            # Kubernetes keeps one taint per key and effect.
            lambda ts: list({(t["key"], t["effect"]): t for t in ts}.values())
        ),
    ),
    max_size=5,
)
POLICIES = st.sampled_from(
    [
        NIGHTS,
        ClusterPolicy(),
        policy({"hostGroup": "gpu", "apps": ["t"]}, {"hostGroup": "bigdata", "window": "22:00-02:00", "apps": ["s"]}),
    ]
)


@given(POLICIES, NODES, st.integers(min_value=0, max_value=24 * 60 - 1))
def test_a_plan_keeps_others_taints_and_a_second_plan_changes_nothing(
    kept: ClusterPolicy, specs: list[tuple[str | None, bool, list[dict[str, Any]]]], minute: int
) -> None:
    nodes = [
        node(f"n{i}", group, *taints, **({"gpu": "yes"} if gpu else {})) for i, (group, gpu, taints) in enumerate(specs)
    ]
    local = at(minute // 60, minute % 60)
    planned = {p.node: p for p in plan_node_taints(kept, nodes, local=local)}
    for each in nodes:
        name = each["metadata"]["name"]
        before = each["spec"].get("taints") or []
        after = planned[name].taints if name in planned else before
        ours = [t for t in after if t["key"] == EXCLUSIVE_TAINT and t["effect"] == "NoSchedule"]
        assert len(ours) <= 1
        others_before = [t for t in before if not (t["key"] == EXCLUSIVE_TAINT and t["effect"] == "NoSchedule")]
        assert [t for t in after if t not in ours] == others_before, name
        each["spec"]["taints"] = after
    assert plan_node_taints(kept, nodes, local=local) == []
