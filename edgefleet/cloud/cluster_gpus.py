"""The GPU view of a cluster (``edgefleet clusters gpus C``, ``GET /api/v1/clusters/{name}/gpus``): what Kubernetes
says of its GPUs - allocatable per node, requested per node and per namespace - next to what the agents on its
GPU nodes say of them (utilisation, temperature, memory, from their latest heartbeats).

``join_gpus(nodes, pods, agents)`` is pure, over what the gateway lists and the fleet state's heartbeats:

- a node's GPUs are its ``status.allocatable['nvidia.com/gpu']``; a node without it has none;
- a pod requests a container's ``nvidia.com/gpu`` request, or its limit when it gives no request (Kubernetes
  defaults an extended resource's request to its limit); the larger of its containers' sum and its largest init
  container, as the scheduler counts it. Finished pods (Succeeded, Failed) hold nothing;
- a pod bound to a node counts on that node and in its namespace; a GPU pod not bound yet counts in its
  namespace as ``pending``, on no node;
- a node is joined to the box whose Kubernetes node name it is (``Box.node_name``), among the boxes of the
  cluster's sites; a GPU node with no box, or whose box never sent a heartbeat, shows Kubernetes' figures alone.

``cluster_gpus`` is the shell: it lists through the gateway and takes the heartbeats under the fleet state's lock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from edgefleet.cloud.fleet import FleetState
from edgefleet.cloud.k8s.gateway import ClusterGateway
from edgefleet.ids import BoxId
from edgefleet.inventory import Cluster
from edgefleet.messages import GpuSample, Heartbeat
from edgefleet.policies import parse_quantity

GPU_RESOURCE: Final = "nvidia.com/gpu"
_DONE: Final = frozenset({"Succeeded", "Failed"})


@dataclass(frozen=True, slots=True)
class Agent:
    """What the fleet state knows of one box: its latest heartbeat and the controller's receive time of it."""

    box: BoxId
    heartbeat: Heartbeat | None
    seen_at: float | None


@dataclass(frozen=True, slots=True)
class NodeGpus:
    node: str
    allocatable: int
    requested: int
    # The box whose node this is (None: no box of the cluster's sites has this node name).
    box: BoxId | None
    # Its agent's latest GPU samples (empty: no heartbeat, or no GPU reported) and when that heartbeat came.
    gpus: tuple[GpuSample, ...]
    seen_at: float | None
    # Why the agent reports no GPUs (``gpu.reason`` of its heartbeat), when it says so.
    agent_reason: str | None


@dataclass(frozen=True, slots=True)
class NamespaceGpus:
    namespace: str
    # GPUs requested by the namespace's pods bound to a node, and by those waiting for one.
    requested: int
    pending: int
    pods: int


@dataclass(frozen=True, slots=True)
class GpuView:
    nodes: tuple[NodeGpus, ...]
    namespaces: tuple[NamespaceGpus, ...]
    # Every node's allocatable GPUs, and what bound pods request of them.
    allocatable: int
    requested: int
    # Quantities that could not be read, in words (the figures count them as 0).
    problems: tuple[str, ...]


def _count(text: object, where: str, problems: list[str]) -> int:
    try:
        value = parse_quantity(str(text))
    except ValueError as exc:
        problems.append(f"{where}: {exc}")
        return 0
    if value.denominator != 1 or value < 0:
        problems.append(f"{where}: {GPU_RESOURCE} {text!r} is no whole number of GPUs")
        return 0
    return int(value)


def _container_gpus(container: Mapping[str, Any], where: str, problems: list[str]) -> int:
    resources = container.get("resources") or {}
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    text = requests.get(GPU_RESOURCE, limits.get(GPU_RESOURCE))
    return 0 if text is None else _count(text, f"{where} container {container.get('name')}", problems)


def pod_gpus(pod: Mapping[str, Any], problems: list[str]) -> int:
    """GPUs ``pod`` requests as the scheduler counts them: max(sum of containers, largest init container)."""
    metadata, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    where = f"pod {metadata.get('namespace') or 'default'}/{metadata.get('name')}"
    running = sum(_container_gpus(c, where, problems) for c in spec.get("containers") or [])
    init = max((_container_gpus(c, where, problems) for c in spec.get("initContainers") or []), default=0)
    return max(running, init)


def join_gpus(
    nodes: Iterable[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]], agents: Mapping[str, Agent]
) -> GpuView:
    """The GPU view of one cluster from its ``nodes`` and ``pods`` (as the API server lists them) and ``agents``
    (by Kubernetes node name); nodes by name, only those with GPUs allocatable or requested; namespaces by name,
    only those requesting GPUs. Pure."""
    problems: list[str] = []
    allocatable: dict[str, int] = {}
    for node in nodes:
        name = str((node.get("metadata") or {}).get("name"))
        text = ((node.get("status") or {}).get("allocatable") or {}).get(GPU_RESOURCE)
        allocatable[name] = 0 if text is None else _count(text, f"node {name} allocatable", problems)
    on_node: dict[str, int] = {}
    by_namespace: dict[str, list[int]] = {}  # namespace -> [requested, pending, pods]
    for pod in pods:
        if (pod.get("status") or {}).get("phase") in _DONE:
            continue
        gpus = pod_gpus(pod, problems)
        if not gpus:
            continue
        namespace = str((pod.get("metadata") or {}).get("namespace") or "default")
        node_name = (pod.get("spec") or {}).get("nodeName")
        row = by_namespace.setdefault(namespace, [0, 0, 0])
        row[2] += 1
        if node_name:
            on_node[str(node_name)] = on_node.get(str(node_name), 0) + gpus
            row[0] += gpus
        else:
            row[1] += gpus
    shown = sorted(name for name in allocatable.keys() | on_node.keys() if allocatable.get(name) or on_node.get(name))
    node_rows = []
    for name in shown:
        agent = agents.get(name)
        heartbeat = agent.heartbeat if agent is not None else None
        node_rows.append(
            NodeGpus(
                node=name,
                allocatable=allocatable.get(name, 0),
                requested=on_node.get(name, 0),
                box=agent.box if agent is not None else None,
                gpus=tuple(heartbeat.gpu.gpus) if heartbeat is not None else (),
                seen_at=agent.seen_at if agent is not None else None,
                agent_reason=heartbeat.gpu.reason if heartbeat is not None and not heartbeat.gpu.gpus else None,
            )
        )
    namespaces = tuple(NamespaceGpus(ns, *by_namespace[ns]) for ns in sorted(by_namespace))
    return GpuView(
        nodes=tuple(node_rows),
        namespaces=namespaces,
        allocatable=sum(allocatable.values()),
        requested=sum(on_node.values()),
        problems=tuple(problems),
    )


def cluster_agents(state: FleetState, cluster: Cluster) -> dict[str, Agent]:
    """The agents of the boxes of ``cluster``'s sites, by their Kubernetes node name; read under the state's lock."""
    inventory = state.inventory
    boxes = [box for site in inventory.cluster_sites(cluster.id) for box in inventory.site_boxes(site.id)]
    with state.lock:
        lives = {box.id: state.boxes.get(box.id) for box in boxes}
        return {
            box.node_name: Agent(
                box.id,
                live.heartbeat if (live := lives[box.id]) is not None else None,
                live.last_seen if live is not None else None,
            )
            for box in boxes
        }


def cluster_gpus(gateway: ClusterGateway, state: FleetState, cluster: Cluster) -> GpuView:
    """Lists the cluster's nodes and pods through the gateway and joins them with its agents' heartbeats; raises
    the gateway's ClusterError when the cluster cannot be read."""
    nodes = gateway.list_objects(cluster.id, "Node").items
    pods = gateway.list_objects(cluster.id, "Pod").items
    return join_gpus(nodes, pods, cluster_agents(state, cluster))
