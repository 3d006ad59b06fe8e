"""The node lifecycle part of kube-controller-manager, for the simulated clusters: a node whose kubelet has not
been heard from (its Lease renewed or its status posted) for the node-monitor grace period is marked Ready
Unknown (reason ``NodeStatusUnknown``, "Kubelet stopped posting node status.", every condition alike) and tainted
``node.kubernetes.io/unreachable`` NoSchedule and NoExecute; a node whose kubelet has posted Ready True again
loses those taints. A node Ready False carries ``node.kubernetes.io/not-ready`` instead.

``plan_node`` is the pure decision (a function of when the node was last heard from, now, the grace period and
what the node shows); ``monitor_nodes`` reads a cluster's store, plans every node and writes what changed.
``simulator.cluster.playing`` calls it every monitor period. Marking the pods of a lost node not Ready and
evicting them are the workload controllers' (``pods.mark_not_ready``, ``eviction``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Final, Literal

from edgefleet.clock import format_utc
from simulator.cluster.nodes import NODE_LEASE_NAMESPACE, parse_time
from simulator.cluster.resources import LEASES, NODES
from simulator.cluster.store import Store

# kube-controller-manager's --node-monitor-grace-period since Kubernetes 1.32 (40 s before).
NODE_MONITOR_GRACE_S: Final = 50.0
# Its --node-monitor-period: how often it looks.
NODE_MONITOR_PERIOD_S: Final = 5.0
UNREACHABLE: Final = "node.kubernetes.io/unreachable"
NOT_READY: Final = "node.kubernetes.io/not-ready"
LOST_REASON: Final = "NodeStatusUnknown"
LOST_MESSAGE: Final = "Kubelet stopped posting node status."

Effect = Literal["NoSchedule", "NoExecute"]
Taint = tuple[str, Effect]
# The taints this controller owns; any other taint of a node is left alone.
MANAGED: Final[frozenset[Taint]] = frozenset(
    {(UNREACHABLE, "NoSchedule"), (UNREACHABLE, "NoExecute"), (NOT_READY, "NoSchedule"), (NOT_READY, "NoExecute")}
)
_WANTED: Final[dict[str, frozenset[Taint]]] = {
    "Unknown": frozenset({(UNREACHABLE, "NoSchedule"), (UNREACHABLE, "NoExecute")}),
    "False": frozenset({(NOT_READY, "NoSchedule"), (NOT_READY, "NoExecute")}),
    "True": frozenset(),
}


@dataclass(frozen=True, slots=True)
class NodePlan:
    """What to change on one node: mark its conditions Unknown, add and remove taints (sorted)."""

    mark_unknown: bool = False
    add: tuple[Taint, ...] = ()
    remove: tuple[Taint, ...] = ()

    @property
    def changes(self) -> bool:
        return self.mark_unknown or bool(self.add) or bool(self.remove)


def plan_node(*, ready: str | None, taints: frozenset[Taint], heard_at: float, now: float, grace_s: float) -> NodePlan:
    """``ready``: the node's Ready status as stored (None: no such condition); ``heard_at``: the last time its
    kubelet renewed the lease or posted status. Lost after more than ``grace_s`` without a word."""
    lost = now - heard_at > grace_s
    mark_unknown = lost and ready != "Unknown"
    shown = "Unknown" if lost else ready
    wanted = _WANTED.get(shown or "", frozenset())
    if shown is None:
        # Never reported and not yet lost: nothing to say about it.
        wanted = taints & MANAGED
    return NodePlan(mark_unknown, tuple(sorted(wanted - taints)), tuple(sorted((taints & MANAGED) - wanted)))


def heard_at(node: dict[str, Any], lease: dict[str, Any] | None) -> float:
    """The last sign of the node's kubelet: its lease's renewTime or its Ready heartbeat, whichever is later
    (its creation when neither can be read)."""
    times = [parse_time(str((lease or {}).get("spec", {}).get("renewTime", "")))]
    times += [
        parse_time(str(c.get("lastHeartbeatTime", "")))
        for c in (node.get("status") or {}).get("conditions") or []
        if c.get("type") == "Ready"
    ]
    known = [t for t in times if t is not None]
    if known:
        return max(known)
    return parse_time(str(node["metadata"].get("creationTimestamp", ""))) or 0.0


def _ready(node: dict[str, Any]) -> str | None:
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return str(condition.get("status"))
    return None


def _taints(node: dict[str, Any]) -> frozenset[Taint]:
    found: set[Taint] = set()
    for taint in (node.get("spec") or {}).get("taints") or []:
        effect = taint.get("effect")
        if effect in ("NoSchedule", "NoExecute"):
            found.add((str(taint.get("key")), effect))
    return frozenset(found)


def monitor_nodes(store: Store, *, now: float, grace_s: float = NODE_MONITOR_GRACE_S) -> list[str]:
    """One pass of the node lifecycle controller over a cluster; returns the nodes it changed."""
    leases = {
        lease["metadata"]["name"]: lease
        for lease in store.list_objects(LEASES).items
        if lease["metadata"].get("namespace") == NODE_LEASE_NAMESPACE
    }
    changed = []
    for node in store.list_objects(NODES).items:
        name = node["metadata"]["name"]
        lease = leases.get(name)
        plan = plan_node(
            ready=_ready(node), taints=_taints(node), heard_at=heard_at(node, lease), now=now, grace_s=grace_s
        )
        if plan.changes:
            _apply(store, node, plan, now=now)
            changed.append(name)
    return changed


def _apply(store: Store, node: dict[str, Any], plan: NodePlan, *, now: float) -> None:
    stamp = format_utc(now)
    if plan.mark_unknown:
        marked = copy.deepcopy(node)
        marked["status"]["conditions"] = [
            {
                **condition,
                "status": "Unknown",
                "reason": LOST_REASON,
                "message": LOST_MESSAGE,
                "lastTransitionTime": stamp
                if condition.get("status") != "Unknown"
                else condition.get("lastTransitionTime"),
            }
            for condition in node["status"].get("conditions") or []
        ]
        node = store.update(NODES, marked, subresource="status")
    if plan.add or plan.remove:
        tainted = copy.deepcopy(node)
        spec = tainted.setdefault("spec", {})
        kept = [t for t in spec.get("taints") or [] if (t.get("key"), t.get("effect")) not in plan.remove]
        for key, effect in plan.add:
            # The NoExecute taint says when it came, for tolerationSeconds; NoSchedule ones do not.
            kept.append({"key": key, "effect": effect, **({"timeAdded": stamp} if effect == "NoExecute" else {})})
        if kept:
            spec["taints"] = kept
        else:
            spec.pop("taints", None)
        store.update(NODES, tainted)
