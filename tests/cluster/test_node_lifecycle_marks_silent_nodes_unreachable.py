"""The simulated node lifecycle controller decides as kube-controller-manager's: a node silent for more than the
grace period is Ready Unknown and tainted unreachable NoSchedule + NoExecute; Ready True again clears them; other
taints are never touched. The pure plan is table- and property-tested; ``monitor_nodes`` over a store on a fake
clock shows the conditions and taints kubectl would."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgefleet.clock import FakeClock
from simulator.cluster.lifecycle import (
    LOST_MESSAGE,
    LOST_REASON,
    MANAGED,
    NOT_READY,
    UNREACHABLE,
    Taint,
    monitor_nodes,
    plan_node,
)
from simulator.cluster.nodes import ClusterBox, post_node_status, renew_lease, seed_cluster
from simulator.cluster.resources import NODES
from simulator.cluster.store import Store

GRACE = 50.0
UNREACHABLE_BOTH: frozenset[Taint] = frozenset({(UNREACHABLE, "NoSchedule"), (UNREACHABLE, "NoExecute")})
OTHER: Taint = ("gpu.example.com/maintenance", "NoSchedule")


@pytest.mark.parametrize(
    ("ready", "taints", "silent_s", "mark", "add", "remove"),
    [
        ("True", frozenset(), 10.0, False, (), ()),
        ("True", frozenset(), 50.0, False, (), ()),  # exactly the grace: not yet
        ("True", frozenset(), 50.1, True, tuple(sorted(UNREACHABLE_BOTH)), ()),
        ("Unknown", UNREACHABLE_BOTH, 300.0, False, (), ()),  # already marked: nothing to write
        ("Unknown", frozenset(), 300.0, False, tuple(sorted(UNREACHABLE_BOTH)), ()),
        ("True", UNREACHABLE_BOTH, 1.0, False, (), tuple(sorted(UNREACHABLE_BOTH))),  # kubelet back
        ("False", frozenset(), 1.0, False, ((NOT_READY, "NoExecute"), (NOT_READY, "NoSchedule")), ()),
        ("False", frozenset(), 60.0, True, tuple(sorted(UNREACHABLE_BOTH)), ()),
        ("True", frozenset({OTHER}), 60.0, True, tuple(sorted(UNREACHABLE_BOTH)), ()),
        ("True", frozenset({OTHER, *UNREACHABLE_BOTH}), 1.0, False, (), tuple(sorted(UNREACHABLE_BOTH))),
    ],
)
def test_plan_by_silence_and_what_the_node_shows(
    ready: str,
    taints: frozenset[Taint],
    silent_s: float,
    mark: bool,
    add: tuple[Taint, ...],
    remove: tuple[Taint, ...],
) -> None:
    plan = plan_node(ready=ready, taints=taints, heard_at=1000.0, now=1000.0 + silent_s, grace_s=GRACE)
    assert (plan.mark_unknown, plan.add, plan.remove) == (mark, add, remove)


TAINTS = st.frozensets(st.sampled_from(sorted(MANAGED | {OTHER})))


@given(
    ready=st.sampled_from(["True", "False", "Unknown"]),
    taints=TAINTS,
    silent_s=st.floats(0, 1000),
    grace_s=st.floats(0.5, 300),
)
def test_the_plan_settles_and_leaves_other_taints(
    ready: str, taints: frozenset[Taint], silent_s: float, grace_s: float
) -> None:
    plan = plan_node(ready=ready, taints=taints, heard_at=0.0, now=silent_s, grace_s=grace_s)
    assert OTHER not in plan.add + plan.remove
    after_ready = "Unknown" if plan.mark_unknown else ready
    after = (taints - set(plan.remove)) | set(plan.add)
    lost = silent_s > grace_s
    assert (after & UNREACHABLE_BOTH == UNREACHABLE_BOTH) == (after_ready == "Unknown")
    assert plan.mark_unknown == (lost and ready != "Unknown")
    # Applying the plan is a fixed point: the next pass has nothing to do.
    again = plan_node(ready=after_ready, taints=frozenset(after), heard_at=0.0, now=silent_s, grace_s=grace_s)
    assert not again.changes


def _node(store: Store, name: str) -> dict[str, object]:
    return store.get(NODES, "", name)


def test_a_silent_node_is_marked_and_a_heard_one_recovers() -> None:
    clock = FakeClock()
    store = Store(clock)
    quiet, chatty = ClusterBox("site-01-gpu-01", "site-01", 1), ClusterBox("site-01-edge-01", "site-01")
    seed_cluster(store, [quiet, chatty], now=clock.now())
    for _ in range(6):  # 60 s: the chatty kubelet renews every 10 s, the quiet one is cut off
        clock.advance(10)
        renew_lease(store, chatty.name, now=clock.now())
        post_node_status(store, chatty, now=clock.now(), report_every_s=300)
        monitor_nodes(store, now=clock.now(), grace_s=GRACE)

    node = store.get(NODES, "", quiet.name)
    ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"], ready["message"]) == ("Unknown", LOST_REASON, LOST_MESSAGE)
    assert {c["status"] for c in node["status"]["conditions"]} == {"Unknown"}
    assert sorted((t["key"], t["effect"]) for t in node["spec"]["taints"]) == sorted(UNREACHABLE_BOTH)
    assert all(("timeAdded" in t) == (t["effect"] == "NoExecute") for t in node["spec"]["taints"])
    assert "taints" not in store.get(NODES, "", chatty.name)["spec"]
    assert monitor_nodes(store, now=clock.now(), grace_s=GRACE) == []  # nothing more to say

    clock.advance(10)
    renew_lease(store, quiet.name, now=clock.now())
    assert post_node_status(store, quiet, now=clock.now(), report_every_s=300)  # the server's copy differs
    assert monitor_nodes(store, now=clock.now(), grace_s=GRACE) == [quiet.name]
    node = store.get(NODES, "", quiet.name)
    ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "EdgeReady")
    assert "taints" not in node["spec"]


def test_an_unchanged_status_is_posted_only_every_report_period() -> None:
    clock = FakeClock()
    store = Store(clock)
    box = ClusterBox("site-01-edge-01", "site-01")
    seed_cluster(store, [box], now=clock.now())
    clock.advance(10)
    assert not post_node_status(store, box, now=clock.now(), report_every_s=300)
    clock.advance(300)
    assert post_node_status(store, box, now=clock.now(), report_every_s=300)
