"""A box's node state is what its site's cluster says of the node named like the box: ready, not-ready, unknown,
missing, or not-watched when the controller does not know. Pure (``edgefleet.cloud.nodes``), property-tested."""

from __future__ import annotations

from typing import Any, Literal

from hypothesis import given
from hypothesis import strategies as st

from edgefleet.cloud.nodes import (
    ClusterNodes,
    NodeBook,
    count_ready,
    join_nodes,
    read_node,
    took_change,
    took_list,
    watch_failed,
)
from edgefleet.ids import BoxId, ClusterId
from edgefleet.inventory import Box
from tests.alerting.builders import HOST_CLUSTER, T0, make_inventory
from tests.support.nodes import node_object

INVENTORY = make_inventory({"alpha": 3, "beta": 2, "central": 1}, kinds={"central": "central"})
BOXES = sorted(INVENTORY.boxes)
CENTRAL = ClusterId("central")
READY = st.sampled_from(["True", "False", "Unknown", None])
EXPECTED = {"True": "ready", "False": "not-ready", "Unknown": "unknown", None: "unknown"}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)


@st.composite
def books(draw: st.DrawFn) -> tuple[NodeBook, dict[str, str | None]]:
    """A book of both clusters (each absent, listed, never listed or failed) and the Ready status of each node
    listed (a subset of the boxes, plus a stranger)."""
    book: dict[ClusterId, ClusterNodes] = {}
    readiness: dict[str, str | None] = {}
    for cluster in (HOST_CLUSTER, CENTRAL):
        how = draw(st.sampled_from(["absent", "listed", "not-listed", "failed"]))
        if how == "absent":
            continue
        known = ClusterNodes(cluster)
        if how in ("listed", "failed"):
            mine = [b for b in BOXES if INVENTORY.sites[INVENTORY.boxes[b].site].cluster == cluster]
            names = [*draw(st.lists(st.sampled_from(mine), unique=True)), f"stranger-{cluster}"]
            ready = {name: draw(READY) for name in names}
            known = took_list(known, [node_object(n, r) for n, r in ready.items()], now=T0)
            if how == "failed":
                known = watch_failed(known, "connection refused", now=T0 + 1)
            else:
                readiness.update(ready)
        book[cluster] = known
    return book, readiness


@given(books())
def test_each_box_reads_its_own_node_in_its_sites_cluster(drawn: tuple[NodeBook, dict[str, str | None]]) -> None:
    book, readiness = drawn
    states = join_nodes(INVENTORY, book)
    assert sorted(states) == BOXES
    for box_id, state in states.items():
        cluster = INVENTORY.sites[INVENTORY.boxes[box_id].site].cluster
        known = book.get(cluster)
        assert state.cluster == cluster
        assert state.node == box_id
        if known is None or not known.watched:
            assert state.state == "not-watched"
            why = "no-gateway" if known is None else ("watch-failed" if known.error else "not-listed-yet")
            assert state.reason == why
        elif box_id not in readiness:
            assert (state.state, state.reason) == ("missing", "no-such-node")
        else:
            assert state.state == EXPECTED[readiness[box_id]]
        assert state.lost == (state.state in ("not-ready", "unknown", "missing"))


@given(books())
def test_a_site_counts_ready_nodes_only_where_watched(drawn: tuple[NodeBook, dict[str, str | None]]) -> None:
    book, readiness = drawn
    for site in INVENTORY.sites.values():
        states = list(join_nodes(INVENTORY, book, site.boxes).values())
        watched = site.cluster in book and book[site.cluster].watched
        expected = sum(1 for b in site.boxes if readiness.get(b, "absent") == "True") if watched else None
        assert count_ready(states) == expected


def test_a_box_with_a_node_name_reads_that_node() -> None:
    box = INVENTORY.boxes[BOXES[0]]
    renamed = Box(box.id, box.site, box.role, box.model, box.gpu, node="edge-7f3a")
    inventory = make_inventory({"alpha": 3})
    inventory.boxes[box.id] = renamed
    book = {HOST_CLUSTER: took_list(ClusterNodes(HOST_CLUSTER), [node_object("edge-7f3a", "False")], now=T0)}
    state = join_nodes(inventory, book, [box.id])[box.id]
    assert (state.node, state.state, state.reason) == ("edge-7f3a", "not-ready", "KubeletNotReady")


@given(json_values)
def test_any_json_reads_as_a_node_or_none_never_an_error(raw: Any) -> None:
    observed = read_node(raw if isinstance(raw, dict) else {"metadata": raw}, now=T0)
    if observed is not None:
        assert observed.state in ("ready", "not-ready", "unknown")
        assert observed.since <= T0


@given(st.integers(min_value=-7 * 86400, max_value=7 * 86400), st.floats(min_value=0, max_value=3600))
def test_since_is_the_clusters_transition_but_never_after_the_watch_first_saw_it(skew: int, later: float) -> None:
    # The node went NotReady at T0 by the cluster's clock (``skew`` off ours); the watch first saw it at T0 + 5.
    first = read_node(node_object("n", "False", since=T0 + skew), now=T0 + 5)
    assert first is not None
    assert first.since == min(T0 + skew, T0 + 5)
    again = read_node(node_object("n", "False", since=T0 + skew), now=T0 + 5 + later, before=first)
    assert again is not None
    assert (again.since, again.seen_at) == (first.since, T0 + 5 + later)


def test_taints_and_cordon_are_read() -> None:
    node = node_object(
        "n",
        "Unknown",
        taints=(("node.kubernetes.io/unreachable", "NoExecute"), ("x", "NoSchedule")),
        unschedulable=True,
    )
    observed = read_node(node, now=T0)
    assert observed is not None
    assert [(t.key, t.effect) for t in observed.taints] == [
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("x", "NoSchedule"),
    ]
    assert observed.unschedulable


Event = tuple[Literal["ADDED", "MODIFIED", "DELETED"], str, str | None]
events = st.lists(
    st.tuples(st.sampled_from(["ADDED", "MODIFIED", "DELETED"]), st.sampled_from(["a", "b", "c", "d"]), READY),
    max_size=20,
)


@given(st.dictionaries(st.sampled_from(["a", "b", "c"]), READY), events)
def test_a_list_then_events_hold_what_a_list_now_would(first: dict[str, str | None], changes: list[Event]) -> None:
    known = took_list(ClusterNodes(HOST_CLUSTER), [node_object(n, r) for n, r in first.items()], now=T0)
    truth = dict(first)
    for i, (kind, name, ready) in enumerate(changes):
        known = took_change(known, kind, node_object(name, ready), now=T0 + i + 1)
        if kind == "DELETED":
            truth.pop(name, None)
        else:
            truth[name] = ready
    relisted = took_list(known, [node_object(n, r) for n, r in truth.items()], now=T0 + 100)
    assert {n: o.ready for n, o in known.nodes.items()} == truth
    assert {n: o.ready for n, o in relisted.nodes.items()} == truth
    # A deleted node reads missing from when it went; a re-list keeps that time.
    for name in {"a", "b", "c", "d"} - truth.keys():
        if name in known.deleted:
            assert relisted.deleted[name] == known.deleted[name]


def test_a_node_deleted_while_watched_is_missing_since_then() -> None:
    known = took_list(ClusterNodes(HOST_CLUSTER), [node_object("alpha-box-00")], now=T0)
    known = took_change(known, "DELETED", node_object("alpha-box-00"), now=T0 + 30)
    state = join_nodes(INVENTORY, {HOST_CLUSTER: known}, [BoxId("alpha-box-00")])[BoxId("alpha-box-00")]
    assert (state.state, state.since) == ("missing", T0 + 30)


def test_a_failed_watch_is_not_watched_until_it_lists_again() -> None:
    known = took_list(ClusterNodes(HOST_CLUSTER), [node_object("alpha-box-00")], now=T0)
    failed = watch_failed(known, "cluster test-edge: watch nodes: connection refused", now=T0 + 5)
    box = BoxId("alpha-box-00")
    state = join_nodes(INVENTORY, {HOST_CLUSTER: failed}, [box])[box]
    assert (state.state, state.reason, state.since) == ("not-watched", "watch-failed", T0 + 5)
    assert state.message == "cluster test-edge: watch nodes: connection refused"
    back = took_list(failed, [node_object("alpha-box-00")], now=T0 + 9)
    assert join_nodes(INVENTORY, {HOST_CLUSTER: back}, [box])[box].state == "ready"
