"""What a simulated cluster holds when it starts: the four namespaces every cluster has and one node per box, as
KubeEdge's edgecore registers it (edge and agent roles, the site it belongs to, capacity and allocatable with
``nvidia.com/gpu`` for the box's GPUs, a Ready condition with heartbeat times). Called by whoever starts a
cluster (tests now; ``edgefleet sim run`` later).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Final

from edgefleet.clock import format_utc
from edgefleet.ids import SiteId
from edgefleet.inventory import Inventory
from simulator.cluster.resources import NAMESPACES, NODES
from simulator.cluster.store import Store

BASE_NAMESPACES: Final = ("default", "kube-node-lease", "kube-public", "kube-system")
# What edgecore reports for itself: KubeEdge 1.19 on Kubernetes 1.30's kubelet code.
KUBELET_VERSION: Final = "v1.30.7-kubeedge-v1.19.1"
EDGE_ROLE: Final = "node-role.kubernetes.io/edge"
AGENT_ROLE: Final = "node-role.kubernetes.io/agent"
SITE_LABEL: Final = "apps.kubeedge.io/belonging-to"
GPU_RESOURCE: Final = "nvidia.com/gpu"
# One box's size (the inventory does not say): an 8-core, 32 GiB edge box; the kubelet keeps some for itself.
CPU_CORES: Final = 8
MEMORY_KI: Final = 32 * 1024 * 1024
RESERVED_MEMORY_KI: Final = 512 * 1024
MAX_PODS: Final = 110


@dataclass(frozen=True, slots=True)
class ClusterBox:
    """A box as its cluster sees it."""

    name: str
    site: str
    gpus: int = 0


def site_boxes(inventory: Inventory, site: SiteId) -> list[ClusterBox]:
    """The boxes of one site, as nodes of that site's cluster."""
    return [
        ClusterBox(box.id, box.site, box.gpu.count if box.gpu is not None else 0) for box in inventory.site_boxes(site)
    ]


def _internal_ip(name: str) -> str:
    digest = hashlib.sha256(name.encode()).digest()
    return f"10.{digest[0]}.{digest[1]}.{max(1, digest[2] % 255)}"


def node_manifest(box: ClusterBox, *, now: float) -> dict[str, Any]:
    """A Node as edgecore registers and reports it."""
    stamp = format_utc(now)
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
                "kubernetes.io/hostname": box.name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                EDGE_ROLE: "",
                AGENT_ROLE: "",
                SITE_LABEL: box.site,
            },
        },
        "spec": {},
        "status": {
            "capacity": capacity,
            "allocatable": allocatable,
            "conditions": [
                condition("MemoryPressure", "False", "EdgeHasSufficientMemory", "edge has sufficient memory"),
                condition("DiskPressure", "False", "EdgeHasNoDiskPressure", "edge has no disk pressure"),
                condition("PIDPressure", "False", "EdgeHasSufficientPID", "edge has sufficient PID available"),
                condition("Ready", "True", "EdgeReady", "edge is posting ready status"),
            ],
            "addresses": [
                {"type": "InternalIP", "address": _internal_ip(box.name)},
                {"type": "Hostname", "address": box.name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10350}},
            "nodeInfo": {
                "machineID": hashlib.md5(box.name.encode(), usedforsecurity=False).hexdigest(),
                "systemUUID": "",
                "bootID": "",
                "kernelVersion": "5.15.0-119-generic",
                "osImage": "Ubuntu 22.04.4 LTS",
                "containerRuntimeVersion": "containerd://1.7.22",
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
            "phase": "Running",
        },
    }


def seed_cluster(store: Store, boxes: list[ClusterBox], *, now: float) -> None:
    """Fill a new cluster: the base namespaces, then one node per box."""
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
        store.create(NODES, node_manifest(box, now=now))


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
