"""The node watch keeps what a simulated cluster says of its nodes, through the real gateway: listed at start,
then each change (NotReady, a taint, a deletion) as the watch brings it; a cluster it cannot reach reads
not-watched with the error, and the watch lists again once the cluster can be reached."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edgefleet.clock import FakeClock
from edgefleet.cloud.fleet import FleetState
from edgefleet.cloud.k8s.gateway import KubernetesGateway
from edgefleet.cloud.node_watching import NodeWatch
from edgefleet.cloud.nodes import ClusterNodes, NodeState, join_nodes
from edgefleet.ids import BoxId
from edgefleet.inventory import Inventory, Site
from simulator.cluster.kubeconfig import write_kubeconfig
from simulator.cluster.resources import NODES
from simulator.cluster.server import BackgroundCluster
from simulator.cluster.store import Store
from tests.k8s.conftest import EAST, closed_port, gateway_for
from tests.support.peers import wait_for


@pytest.fixture
def east(inventory: Inventory, east_sites: list[Site]) -> Inventory:
    """The inventory of the two sites the simulated cluster holds, and their cluster."""
    boxes = {b: inventory.boxes[b] for s in east_sites for b in s.boxes}
    return Inventory(sites={s.id: s for s in east_sites}, boxes=boxes, clusters={EAST: inventory.clusters[EAST]})


def watching(east: Inventory, gateway: KubernetesGateway, clock: FakeClock) -> tuple[FleetState, NodeWatch]:
    state = FleetState.for_inventory(east)
    watch = NodeWatch(state, gateway, clock=clock, backoff_min_s=0.05, backoff_max_s=0.2)
    watch.start()
    return state, watch


@pytest.fixture
def running(
    east: Inventory, kubeconfig: Path, clock: FakeClock
) -> Iterator[tuple[FleetState, NodeWatch, KubernetesGateway]]:
    gateway = gateway_for(kubeconfig, clock, watch_timeout_s=1.0)
    state, watch = watching(east, gateway, clock)
    yield state, watch, gateway
    watch.stop()
    gateway.close()


def nodes_of(state: FleetState) -> dict[BoxId, NodeState]:
    with state.lock:
        inventory, book = state.inventory, state.nodes
    return join_nodes(inventory, book)


def node_when(state: FleetState, box: str, test: Callable[[NodeState], bool]) -> Callable[[], NodeState | None]:
    """For ``wait_for``: the box's node once ``test`` holds of it."""

    def check() -> NodeState | None:
        node = nodes_of(state)[BoxId(box)]
        return node if test(node) else None

    return check


def cluster_when(state: FleetState, test: Callable[[ClusterNodes], bool]) -> Callable[[], ClusterNodes | None]:
    def check() -> ClusterNodes | None:
        known = state.nodes.get(EAST)
        return known if known is not None and test(known) else None

    return check


def change_node(name: str, change: Callable[[dict[str, Any]], bool]) -> Callable[[Store], None]:
    """A function for ``cluster.call`` that changes node ``name`` (its status through the status subresource)."""

    def run(store: Store) -> None:
        node = copy.deepcopy(store.get(NODES, "", name))
        status = change(node)
        if status:
            store.update(NODES, node, subresource="status")
        else:
            store.update(NODES, node)

    return run


def not_ready(node: dict[str, Any]) -> bool:
    for condition in node["status"]["conditions"]:
        if condition["type"] == "Ready":
            condition.update(status="False", reason="EdgeNotReady", message="edgecore stopped")
    return True


def tainted(node: dict[str, Any]) -> bool:
    node["spec"]["taints"] = [{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]
    node["spec"]["unschedulable"] = True
    return False


def test_the_watch_lists_every_node_then_follows_each_change(
    running: tuple[FleetState, NodeWatch, KubernetesGateway], cluster: BackgroundCluster, east: Inventory
) -> None:
    state, _, _ = running
    wait_for(lambda: all(n.state == "ready" for n in nodes_of(state).values()), what="every node ready")
    first = nodes_of(state)
    assert sorted(first) == sorted(east.boxes)
    assert {n.reason for n in first.values()} == {"EdgeReady"}
    box, other, gone = sorted(east.boxes)[:3]

    cluster.call(change_node(box, not_ready))
    lost = wait_for(node_when(state, box, lambda n: n.state == "not-ready"), what=f"{box} not ready")
    assert (lost.reason, lost.message) == ("EdgeNotReady", "edgecore stopped")

    cluster.call(change_node(other, tainted))
    cordoned = wait_for(node_when(state, other, lambda n: bool(n.taints)), what=f"{other} tainted")
    assert [(t.key, t.effect) for t in cordoned.taints] == [("node.kubernetes.io/unreachable", "NoExecute")]
    assert cordoned.unschedulable
    assert cordoned.state == "ready"

    cluster.call(lambda store: store.delete(NODES, "", gone))
    wait_for(lambda: nodes_of(state)[gone].state == "missing", what=f"{gone} missing")
    assert nodes_of(state)[box].state == "not-ready"  # the rest stays as it was


def test_an_unreachable_cluster_reads_not_watched_with_its_error(
    east: Inventory, tmp_path: Path, clock: FakeClock
) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", {EAST: f"http://127.0.0.1:{closed_port()}"})
    gateway = gateway_for(kubeconfig, clock)
    state, watch = watching(east, gateway, clock)
    try:
        failed = wait_for(cluster_when(state, lambda known: known.error is not None), what="the watch's failure")
        assert not failed.watched
        assert "cluster kubeedge-east" in (failed.error or "")
        assert {(n.state, n.reason) for n in nodes_of(state).values()} == {("not-watched", "watch-failed")}
    finally:
        watch.stop()
        gateway.close()


def test_the_watch_lists_again_once_the_cluster_can_be_reached(
    east: Inventory, cluster: BackgroundCluster, tmp_path: Path, clock: FakeClock
) -> None:
    # The kubeconfig is not there at first: every try fails (and is tried again with backoff) until it is.
    path = tmp_path / "later" / "kubeconfig"
    gateway = gateway_for(path, clock)
    state, watch = watching(east, gateway, clock)
    try:
        wait_for(cluster_when(state, lambda known: known.error is not None), what="the first failure")
        write_kubeconfig(path, {EAST: cluster.url})
        wait_for(lambda: state.nodes[EAST].watched, what="the cluster listed")
        assert {n.state for n in nodes_of(state).values()} == {"ready"}
        assert state.nodes[EAST].error is None
    finally:
        watch.stop()
        gateway.close()


def test_without_a_gateway_nothing_is_watched(east: Inventory, clock: FakeClock) -> None:
    state = FleetState.for_inventory(east)
    watch = NodeWatch(state, None, clock=clock)
    watch.start()
    assert watch.clusters == []
    assert {(n.state, n.reason) for n in nodes_of(state).values()} == {("not-watched", "no-gateway")}
    watch.stop()


def test_a_cluster_removed_from_the_inventory_is_no_longer_watched(
    running: tuple[FleetState, NodeWatch, KubernetesGateway], cluster: BackgroundCluster
) -> None:
    state, watch, _ = running
    wait_for(cluster_when(state, lambda known: known.watched), what="the cluster listed")
    assert watch.clusters == [EAST]
    with state.lock:
        state.inventory = Inventory(sites={}, boxes={}, clusters={})
    watch.inventory_changed()
    assert watch.clusters == []
    assert EAST not in state.nodes
