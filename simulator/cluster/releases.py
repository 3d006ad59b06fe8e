"""The apps the simulated fleet runs when the simulator starts, as the workloads a release would leave in each
cluster (issue 15's shape): per transfer center, scan-upload as one Deployment on the site's edge nodes and
sorting-recognition as one DaemonSet on its GPU boxes, both pinned to the site's node group and tolerating an
unreachable or not-ready node without limit (a center cut off keeps its pods). Each site runs the release the
simulator's seed gives it (``simulator.sources.site_release``: some sites midway through a rollout), so the
workload controllers start their pods and every box reports them as its apps (``NodePodsAppSource``).

``fleet_workloads`` (pure) returns the manifests; ``deploy_fleet_apps`` creates them in a cluster's store, as a
release applied before the simulation began.
"""

from __future__ import annotations

from typing import Any, Final

from edgefleet.ids import ClusterId
from edgefleet.inventory import Inventory, Site
from simulator.cluster.nodes import GPU_PRESENT_LABEL, GPU_RESOURCE, ROLE_LABEL, SITE_LABEL
from simulator.cluster.resources import DAEMON_SETS, DEPLOYMENTS, NAMESPACES
from simulator.cluster.store import Store
from simulator.sources import RELEASES, site_release

APPS_NAMESPACE: Final = "edgefleet"
REGISTRY: Final = "registry.local:5000/edgefleet"
APP_LABEL: Final = "app.kubernetes.io/name"
SITE_APP_LABEL: Final = "edgefleet.io/site"
MANAGED_BY: Final = {"app.kubernetes.io/managed-by": "edgefleet"}
# docs/kubernetes.md: edgefleet's workloads ride out a lost site link on their node.
TOLERATIONS: Final = [
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
]


def image(app: str, version: str) -> str:
    return f"{REGISTRY}/{app}:{version}"


def seeded_images() -> list[str]:
    """Every image the fleet's workloads can start with (what the simulated registry must serve)."""
    return [image(app, version) for app, versions in RELEASES.items() for version in versions]


def namespace_manifest() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": APPS_NAMESPACE, "labels": MANAGED_BY}}


def deploy_fleet_apps(store: Store, inventory: Inventory, cluster: ClusterId, *, seed: int) -> int:
    """Create the fleet's apps of ``cluster`` in its store; returns how many workloads (no namespace without)."""
    workloads = fleet_workloads(inventory, cluster, seed=seed)
    if workloads:
        store.create(NAMESPACES, namespace_manifest())
    for workload in workloads:
        resource = DEPLOYMENTS if workload["kind"] == "Deployment" else DAEMON_SETS
        store.create(resource, workload, APPS_NAMESPACE)
    return len(workloads)


def fleet_workloads(inventory: Inventory, cluster: ClusterId, *, seed: int) -> list[dict[str, Any]]:
    """The Deployments and DaemonSets of every transfer center on ``cluster``, in site order."""
    workloads = []
    for site in inventory.cluster_sites(cluster):
        if site.kind != "transfer-center":
            continue
        boxes = inventory.site_boxes(site.id)
        edge_nodes = sum(1 for box in boxes if box.role == "edge-node")
        if edge_nodes:
            workloads.append(_scan_upload(site, edge_nodes, site_release(seed, site.id, "scan-upload")))
        if any(box.role == "gpu-box" for box in boxes):
            workloads.append(_sorting_recognition(site, site_release(seed, site.id, "sorting-recognition")))
    return workloads


def _metadata(app: str, site: Site) -> tuple[dict[str, Any], dict[str, str]]:
    selector = {APP_LABEL: app, SITE_APP_LABEL: site.id}
    return {"name": f"{app}-{site.id}", "namespace": APPS_NAMESPACE, "labels": {**selector, **MANAGED_BY}}, selector


def _pod_template(
    app: str,
    version: str,
    selector: dict[str, str],
    node_selector: dict[str, str],
    resources: dict[str, Any],
    *,
    affinity: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "metadata": {"labels": dict(selector)},
        "spec": {
            **({"affinity": affinity} if affinity else {}),
            "nodeSelector": node_selector,
            "tolerations": TOLERATIONS,
            "containers": [
                {
                    "name": app,
                    "image": image(app, version),
                    "resources": resources,
                    "ports": [{"name": "metrics", "containerPort": 9100, "protocol": "TCP"}],
                }
            ],
        },
    }


def _scan_upload(site: Site, replicas: int, version: str) -> dict[str, Any]:
    metadata, selector = _metadata("scan-upload", site)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            # One copy per edge node (required pod anti-affinity by host), replaced in place one at a time.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
            "template": _pod_template(
                "scan-upload",
                version,
                selector,
                {SITE_LABEL: site.node_group or site.id, ROLE_LABEL: "edge-node"},
                {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}},
                affinity={
                    "podAntiAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": [
                            {"labelSelector": {"matchLabels": dict(selector)}, "topologyKey": "kubernetes.io/hostname"}
                        ]
                    }
                },
            ),
        },
    }


def _sorting_recognition(site: Site, version: str) -> dict[str, Any]:
    metadata, selector = _metadata("sorting-recognition", site)
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": metadata,
        "spec": {
            "selector": {"matchLabels": selector},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": _pod_template(
                "sorting-recognition",
                version,
                selector,
                {SITE_LABEL: site.node_group or site.id, GPU_PRESENT_LABEL: "true"},
                {
                    "requests": {"cpu": "2", "memory": "4Gi", GPU_RESOURCE: "1"},
                    "limits": {"cpu": "4", "memory": "8Gi", GPU_RESOURCE: "1"},
                },
            ),
        },
    }
