"""What a simulated cluster holds and what its nodes' kubelets write: the four namespaces every cluster has, one
node per box and its Lease in ``kube-node-lease``.

A box of a transfer center is a node as KubeEdge's edgecore registers it in the host cluster (edge and agent
roles, ``apps.kubeedge.io/belonging-to=<node group>``, reasons ``Edge...``); a box of a central site is a node as a
plain kubelet registers it (no role label: the inventory does not say which boxes run the control plane). Both
carry capacity and allocatable with ``nvidia.com/gpu`` for the box's GPUs and conditions with heartbeat times.

The kubelet's side (``renew_lease``, ``post_node_status``) is called by ``simulator.cluster.playing`` on its timer;
``seed_cluster`` by whoever starts a cluster (``edgefleet sim run``, tests).
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from edgefleet.clock import format_utc
from edgefleet.ids import ClusterId, SiteId
from edgefleet.inventory import Inventory
from simulator.cluster.resources import LEASES, NAMESPACES, NODES
from simulator.cluster.store import NotFound, Store

BASE_NAMESPACES: Final = ("default", "kube-node-lease", "kube-public", "kube-system")
# What edgecore reports for itself: KubeEdge 1.19 on Kubernetes 1.30's kubelet code.
KUBELET_VERSION: Final = "v1.30.7-kubeedge-v1.19.1"
# What a central cluster's kubelets report: the cluster's own Kubernetes version.
CENTRAL_KUBELET_VERSION: Final = "v1.32.0"
EDGE_ROLE: Final = "node-role.kubernetes.io/edge"
AGENT_ROLE: Final = "node-role.kubernetes.io/agent"
SITE_LABEL: Final = "apps.kubeedge.io/belonging-to"
GPU_RESOURCE: Final = "nvidia.com/gpu"
# Set when the box joins its cluster (``keadm join --labels``, or the kubelet's ``--node-labels``) from the
# inventory: what edgefleet's workloads select, so a GPU app never lands on an edge node.
ROLE_LABEL: Final = "edgefleet.io/box-role"
# NVIDIA's GPU feature discovery labels a GPU node so (spaces in the product name become dashes).
GPU_PRESENT_LABEL: Final = "nvidia.com/gpu.present"
GPU_PRODUCT_LABEL: Final = "nvidia.com/gpu.product"
GPU_COUNT_LABEL: Final = "nvidia.com/gpu.count"
# One box's size (the inventory does not say): an 8-core, 32 GiB edge box; the kubelet keeps some for itself.
CPU_CORES: Final = 8
MEMORY_KI: Final = 32 * 1024 * 1024
RESERVED_MEMORY_KI: Final = 512 * 1024
MAX_PODS: Final = 110
NODE_LEASE_NAMESPACE: Final = "kube-node-lease"
# The kubelet's nodeLeaseDurationSeconds; it renews every quarter of it (10 s).
LEASE_DURATION_S: Final = 40


@dataclass(frozen=True, slots=True)
class ClusterBox:
    """A box as its cluster sees it: ``name`` is its node name; ``node_group`` the value of its
    ``apps.kubeedge.io/belonging-to`` label (the site's id when not given); ``edge`` False for a central
    cluster's node, which has no KubeEdge labels."""

    name: str
    site: str
    gpus: int = 0
    node_group: str | None = None
    edge: bool = True
    # The inventory box this node is (its id); None where the node name is all there is (tests' own nodes).
    box: str | None = None
    # The box's role (gpu-box, edge-node, cluster-node) and GPU model, labelled on the node (``node_labels``).
    role: str | None = None
    gpu_model: str | None = None
    # The inventory box's own labels (a central cluster's host groups select by them).
    labels: tuple[tuple[str, str], ...] = ()


def site_boxes(inventory: Inventory, site: SiteId) -> list[ClusterBox]:
    """The boxes of one site, as nodes of that site's cluster (named by ``Box.node_name``)."""
    place = inventory.sites[site]
    return [
        ClusterBox(
            box.node_name,
            box.site,
            box.gpu.count if box.gpu is not None else 0,
            node_group=place.node_group,
            edge=place.kind == "transfer-center",
            box=box.id,
            role=box.role,
            gpu_model=box.gpu.model if box.gpu is not None else None,
            labels=tuple(sorted(box.labels.items())),
        )
        for box in inventory.site_boxes(site)
    ]


def cluster_boxes(inventory: Inventory, cluster: ClusterId) -> list[ClusterBox]:
    """The nodes of one cluster: every box of every site on it (a KubeEdge host holds many transfer centers)."""
    return [box for site in inventory.cluster_sites(cluster) for box in site_boxes(inventory, site.id)]


def _internal_ip(name: str) -> str:
    digest = hashlib.sha256(name.encode()).digest()
    return f"10.{digest[0]}.{digest[1]}.{max(1, digest[2] % 255)}"


def node_manifest(box: ClusterBox, *, now: float) -> dict[str, Any]:
    """A Node as edgecore (``box.edge``) or a plain kubelet registers and reports it."""
    stamp = format_utc(now)
    # edgecore's conditions say "edge" where the kubelet says "kubelet".
    who, title = ("edge", "Edge") if box.edge else ("kubelet", "Kubelet")
    capacity = {
        "cpu": str(CPU_CORES),
        "memory": f"{MEMORY_KI}Ki",
        "pods": str(MAX_PODS),
        "ephemeral-storage": "479596204Ki",
    }
    allocatable = {**capacity, "memory": f"{MEMORY_KI - RESERVED_MEMORY_KI}Ki", "ephemeral-storage": "441993565353"}
    if box.gpus:
        capacity[GPU_RESOURCE] = allocatable[GPU_RESOURCE] = str(box.gpus)

    def condition(kind: str, status: str, reason: str, message: str) -> dict[str, str]:
        return {
            "type": kind,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": stamp,
            "lastTransitionTime": stamp,
        }

    return {
        "metadata": {
            "name": box.name,
            "labels": {
                "beta.kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/os": "linux",
                "kubernetes.io/hostname": box.name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                **dict(box.labels),
                **({EDGE_ROLE: "", AGENT_ROLE: "", SITE_LABEL: box.node_group or box.site} if box.edge else {}),
                **({ROLE_LABEL: box.role} if box.role else {}),
                **(
                    {
                        GPU_PRESENT_LABEL: "true",
                        GPU_PRODUCT_LABEL: (box.gpu_model or "unknown").replace(" ", "-"),
                        GPU_COUNT_LABEL: str(box.gpus),
                    }
                    if box.gpus
                    else {}
                ),
            },
        },
        "spec": {},
        "status": {
            "capacity": capacity,
            "allocatable": allocatable,
            "conditions": [
                condition("MemoryPressure", "False", f"{title}HasSufficientMemory", f"{who} has sufficient memory"),
                condition("DiskPressure", "False", f"{title}HasNoDiskPressure", f"{who} has no disk pressure"),
                condition("PIDPressure", "False", f"{title}HasSufficientPID", f"{who} has sufficient PID available"),
                condition("Ready", "True", f"{title}Ready", f"{who} is posting ready status"),
            ],
            "addresses": [
                {"type": "InternalIP", "address": _internal_ip(box.name)},
                {"type": "Hostname", "address": box.name},
            ],
            # edgecore serves its kubelet API on 10350, a kubelet on 10250.
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10350 if box.edge else 10250}},
            "nodeInfo": {
                "machineID": hashlib.md5(box.name.encode(), usedforsecurity=False).hexdigest(),
                "systemUUID": "",
                "bootID": "",
                "kernelVersion": "5.15.0-119-generic",
                "osImage": "Ubuntu 22.04.4 LTS",
                "containerRuntimeVersion": "containerd://1.7.22",
                "kubeletVersion": KUBELET_VERSION if box.edge else CENTRAL_KUBELET_VERSION,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
            "phase": "Running",
        },
    }


def seed_cluster(store: Store, boxes: list[ClusterBox], *, now: float) -> None:
    """Fill a new cluster: the base namespaces, then one node per box and its lease (as each kubelet creates
    them when it starts)."""
    for name in BASE_NAMESPACES:
        store.create(
            NAMESPACES,
            {
                "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            },
        )
    for box in boxes:
        node = store.create(NODES, node_manifest(box, now=now))
        store.create(LEASES, lease_manifest(node, now=now), NODE_LEASE_NAMESPACE)


def format_micro_time(timestamp: float) -> str:
    """A Lease's ``renewTime``: MicroTime, RFC 3339 with microseconds."""
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> float | None:
    """Seconds since the epoch of a Time or MicroTime (``2025-01-01T00:00:00Z``, with or without fractions);
    None for what is not one."""
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def lease_manifest(node: dict[str, Any], *, now: float) -> dict[str, Any]:
    """The node's Lease as the kubelet creates it: named after the node, owned by it."""
    name = node["metadata"]["name"]
    return {
        "metadata": {
            "name": name,
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Node", "name": name, "uid": node["metadata"]["uid"]},
            ],
        },
        "spec": {
            "holderIdentity": name,
            "leaseDurationSeconds": LEASE_DURATION_S,
            "renewTime": format_micro_time(now),
        },
    }


def renew_lease(store: Store, node_name: str, *, now: float) -> None:
    """Renew the node's lease, creating it again if someone deleted it (as the kubelet does)."""
    try:
        lease = store.get(LEASES, NODE_LEASE_NAMESPACE, node_name)
    except NotFound:
        store.create(LEASES, lease_manifest(store.get(NODES, "", node_name), now=now), NODE_LEASE_NAMESPACE)
        return
    renewed = copy.deepcopy(lease)
    renewed["spec"]["renewTime"] = format_micro_time(now)
    store.update(LEASES, renewed, NODE_LEASE_NAMESPACE)


def post_node_status(store: Store, box: ClusterBox, *, now: float, report_every_s: float) -> bool:
    """What the kubelet's status loop does on each tick: post the node's own conditions when the server's copy
    differs from them (the node lifecycle controller marked them Unknown) or the last report is
    ``report_every_s`` old. Returns whether it posted."""
    node = store.get(NODES, "", box.name)
    own = node_manifest(box, now=now)["status"]["conditions"]
    posted = {c.get("type"): c for c in (node.get("status") or {}).get("conditions") or []}
    changed = any(
        posted.get(c["type"], {}).get("status") != c["status"] or posted.get(c["type"], {}).get("reason") != c["reason"]
        for c in own
    )
    last = parse_time(str(posted.get("Ready", {}).get("lastHeartbeatTime", "")))
    if not changed and last is not None and now - last < report_every_s:
        return False
    conditions = []
    for condition in own:
        before = posted.get(condition["type"]) or {}
        # A transition time moves only when the status does.
        kept = before.get("status") == condition["status"] and before.get("lastTransitionTime")
        conditions.append({**condition, "lastTransitionTime": before["lastTransitionTime"]} if kept else condition)
    store.update(NODES, {**node, "status": {**node["status"], "conditions": conditions}}, subresource="status")
    return True


def heartbeat_nodes(store: Store, *, now: float) -> int:
    """Renew every node's condition heartbeats, as the kubelet's status report does; returns how many."""
    stamp = format_utc(now)
    renewed = 0
    for node in store.list_objects(NODES).items:
        status = dict(node.get("status") or {})
        status["conditions"] = [{**c, "lastHeartbeatTime": stamp} for c in status.get("conditions") or []]
        store.update(NODES, {**node, "status": status}, subresource="status")
        renewed += 1
    return renewed
