"""The gateway against a simulated cluster: a site's nodes by its node selector, field selectors, lists across
namespaces and in one, reading a Deployment, deleting (twice is no error)."""

from __future__ import annotations

from typing import Any

import pytest

from edgefleet.cloud.k8s.errors import PermanentClusterError
from edgefleet.cloud.k8s.gateway import KubernetesGateway
from edgefleet.inventory import Inventory, Site
from simulator.cluster.resources import DEPLOYMENTS, EVENTS, PODS
from simulator.cluster.server import BackgroundCluster
from simulator.cluster.store import Store
from tests.k8s.conftest import EAST


def names(objects: list[dict[str, Any]]) -> list[str]:
    return sorted(o["metadata"]["name"] for o in objects)


def test_a_sites_nodes_are_listed_by_its_node_selector(
    gateway: KubernetesGateway, inventory: Inventory, east_sites: list[Site]
) -> None:
    first, second = east_sites
    assert first.node_selector is not None
    listed = gateway.nodes(EAST, label_selector=first.node_selector)
    assert names(listed.items) == sorted(inventory.boxes[b].node_name for b in first.boxes)
    assert listed.resource_version
    everything = gateway.nodes(EAST)
    assert len(everything.items) == len(first.boxes) + len(second.boxes)


def test_field_selectors_pick_nodes_and_pods(gateway: KubernetesGateway, cluster: BackgroundCluster) -> None:
    node = names(gateway.nodes(EAST).items)[0]
    assert names(gateway.nodes(EAST, field_selector=f"metadata.name={node}").items) == [node]

    def two_pods(store: Store) -> None:
        store.create(PODS, {"metadata": {"name": "on-node"}, "spec": {"nodeName": node}}, "default")
        store.create(PODS, {"metadata": {"name": "elsewhere"}, "spec": {"nodeName": "other"}}, "kube-system")

    cluster.call(two_pods)
    assert names(gateway.list_pods(EAST, field_selector=f"spec.nodeName={node}").items) == ["on-node"]
    assert names(gateway.list_pods(EAST).items) == ["elsewhere", "on-node"]
    assert names(gateway.list_pods(EAST, namespace="kube-system").items) == ["elsewhere"]


def test_a_field_the_server_cannot_select_on_is_a_permanent_error_with_its_message(
    gateway: KubernetesGateway,
) -> None:
    with pytest.raises(PermanentClusterError) as refused:
        gateway.list_deployments(EAST, field_selector="spec.replicas=1")
    assert refused.value.status == 400
    assert "field label not supported" in refused.value.message


def test_a_deployment_is_read_listed_by_label_and_deleted_once(
    gateway: KubernetesGateway, cluster: BackgroundCluster
) -> None:
    deployment = {"metadata": {"name": "inference", "labels": {"app": "inference"}}, "spec": {"replicas": 2}}
    cluster.call(lambda store: store.create(DEPLOYMENTS, deployment, "default"))
    read = gateway.get_deployment(EAST, "default", "inference")
    assert read["spec"]["replicas"] == 2
    assert read["metadata"]["generation"] == 1
    assert names(gateway.list_deployments(EAST, label_selector="app=inference").items) == ["inference"]
    assert gateway.list_deployments(EAST, label_selector="app!=inference").items == []
    assert gateway.delete(EAST, "Deployment", "inference", namespace="default") is True
    assert gateway.delete(EAST, "Deployment", "inference", namespace="default") is False
    assert gateway.list_deployments(EAST, namespace="default").items == []


def test_events_are_listed_by_namespace(gateway: KubernetesGateway, cluster: BackgroundCluster) -> None:
    event = {"metadata": {"name": "pulled"}, "reason": "Pulled", "involvedObject": {"kind": "Pod", "name": "p"}}
    cluster.call(lambda store: store.create(EVENTS, event, "default"))
    assert names(gateway.list_events(EAST, namespace="default").items) == ["pulled"]
    assert gateway.list_events(EAST, namespace="kube-system").items == []
