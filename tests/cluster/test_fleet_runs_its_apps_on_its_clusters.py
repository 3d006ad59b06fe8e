"""The simulated fleet's apps as Kubernetes workloads: each transfer center of ``sites/`` gets scan-upload on
exactly its edge nodes and sorting-recognition on exactly its GPU boxes (their selectors evaluated against the
seeded nodes), with the unreachable/not-ready tolerations; the pods of each node are indexed as the store
changes; and a box reads its node's pods as apps with the agent's own rules."""

from __future__ import annotations

from typing import Any

import pytest

from edgefleet.clock import FakeClock
from edgefleet.ids import ClusterId
from edgefleet.inventory import Inventory, load_inventory
from simulator.cluster.nodes import cluster_boxes, node_manifest
from simulator.cluster.podindex import PodsByNode
from simulator.cluster.releases import APPS_NAMESPACE, TOLERATIONS, fleet_workloads
from simulator.cluster.resources import NAMESPACES, PODS
from simulator.cluster.selectors import parse_labels
from simulator.cluster.store import Store
from simulator.sources import METASERVER_DOWN, RELEASES, NodePodsAppSource
from tests.conftest import SITES


@pytest.fixture(scope="module")
def inventory() -> Inventory:
    return load_inventory(SITES)


def _selected(workload: dict[str, Any], nodes: list[dict[str, Any]]) -> set[str]:
    wanted = workload["spec"]["template"]["spec"]["nodeSelector"]
    selector = parse_labels(",".join(f"{k}={v}" for k, v in wanted.items()))
    return {n["metadata"]["name"] for n in nodes if selector.matches(n["metadata"].get("labels") or {})}


def test_every_center_runs_its_two_apps_on_exactly_the_right_boxes(inventory: Inventory) -> None:
    checked = 0
    for cluster in inventory.clusters:
        nodes = [node_manifest(box, now=0.0) for box in cluster_boxes(inventory, cluster)]
        workloads = fleet_workloads(inventory, ClusterId(cluster), seed=7)
        by_name = {w["metadata"]["name"]: w for w in workloads}
        for site in inventory.cluster_sites(ClusterId(cluster)):
            boxes = inventory.site_boxes(site.id)
            if site.kind != "transfer-center":
                assert not any(name.endswith(site.id) for name in by_name), "central sites run no fleet apps"
                continue
            scan = by_name[f"scan-upload-{site.id}"]
            sorting = by_name[f"sorting-recognition-{site.id}"]
            edge = {b.node_name for b in boxes if b.role == "edge-node"}
            gpu = {b.node_name for b in boxes if b.role == "gpu-box"}
            assert (scan["kind"], sorting["kind"]) == ("Deployment", "DaemonSet")
            assert _selected(scan, nodes) == edge
            assert scan["spec"]["replicas"] == len(edge)
            assert _selected(sorting, nodes) == gpu
            for workload in (scan, sorting):
                template = workload["spec"]["template"]
                assert template["spec"]["tolerations"] == TOLERATIONS
                assert all("tolerationSeconds" not in t for t in TOLERATIONS)
                assert parse_labels(
                    ",".join(f"{k}={v}" for k, v in workload["spec"]["selector"]["matchLabels"].items())
                ).matches(template["metadata"]["labels"])
                image = template["spec"]["containers"][0]["image"]
                app = workload["metadata"]["labels"]["app.kubernetes.io/name"]
                assert image.rsplit(":", 1)[1] in RELEASES[app]
            checked += 1
    assert checked == sum(1 for s in inventory.sites.values() if s.kind == "transfer-center")


def _pod(name: str, node: str | None, *, waiting: str | None = None) -> dict[str, Any]:
    state = {"waiting": {"reason": waiting}} if waiting else {"running": {"startedAt": "2026-12-01T00:00:00Z"}}
    return {
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": name.rsplit("-", 1)[0]}},
        "spec": {
            "containers": [{"name": "c", "image": f"registry.local:5000/edgefleet/{name.rsplit('-', 1)[0]}:2.0"}],
            **({"nodeName": node} if node else {}),
        },
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {"name": "c", "ready": waiting is None, "restartCount": 3 if waiting else 0, "state": state}
            ],
        },
    }


def test_a_nodes_pods_follow_the_store_and_read_as_the_agent_reads_them() -> None:
    store = Store(FakeClock(), cluster="c")
    store.create(NAMESPACES, {"metadata": {"name": APPS_NAMESPACE}})
    store.create(PODS, _pod("scan-upload-0", "box-1"), APPS_NAMESPACE)
    index = PodsByNode(store)
    assert [p["metadata"]["name"] for p in index.on("box-1")] == ["scan-upload-0"]
    store.create(PODS, _pod("sorting-recognition-0", None), APPS_NAMESPACE)
    assert len(index.on("box-1")) == 1, "an unscheduled pod is no node's"
    bound = store.get(PODS, APPS_NAMESPACE, "sorting-recognition-0")
    store.update(PODS, {**bound, "spec": {**bound["spec"], "nodeName": "box-1"}}, APPS_NAMESPACE)
    assert len(index.on("box-1")) == 2

    source = NodePodsAppSource(lambda: index.on("box-1"))
    report = source.read()
    assert report.source == "metaserver:http://127.0.0.1:10550"
    assert report.error is None
    assert {(a.name, a.version, a.state) for a in report.apps} == {
        ("scan-upload", "2.0", "running"),
        ("sorting-recognition", "2.0", "running"),
    }
    crashing = store.get(PODS, APPS_NAMESPACE, "scan-upload-0")
    store.update(
        PODS,
        _pod("scan-upload-0", "box-1", waiting="CrashLoopBackOff") | {"metadata": crashing["metadata"]},
        APPS_NAMESPACE,
        subresource="status",  # as the kubelet posts a pod's status
    )
    states = {a.name: (a.state, a.detail) for a in source.read().apps}
    assert states["scan-upload"] == (
        "failed",
        "pod edgefleet/scan-upload-0: container c: CrashLoopBackOff (restarts 3)",
    )

    store.delete(PODS, APPS_NAMESPACE, "scan-upload-0")
    assert [a.name for a in source.read().apps] == ["sorting-recognition"]
    assert index.on("box-2") == []

    down = NodePodsAppSource(lambda: None).read()
    assert (down.apps, down.error) == ([], METASERVER_DOWN)
