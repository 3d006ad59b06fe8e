"""kube-scheduler's default profile, as far as edgefleet's workloads need it: which nodes a pod fits and which of
them it goes to.

Filters, in the scheduler's order, each node stopping at the first that fails (its reason is what the
FailedScheduling message counts): NodeUnschedulable (a cordoned node, unless the pod tolerates
``node.kubernetes.io/unschedulable:NoSchedule``), TaintToleration (NoSchedule and NoExecute taints),
NodeAffinity (``nodeSelector`` and required node affinity), NodeResourcesFit (``cpu``, ``memory``,
``nvidia.com/gpu`` and other extended resources requested against allocatable minus what bound pods request, and
the pod count). Among the nodes that fit, the least requested wins (NodeResourcesFit's LeastAllocated score on
cpu and memory, pods without requests counting the scheduler's 100m / 200Mi), ties broken by fewer pods, then by
name (the real scheduler picks at random among equal scores).

``plan_schedule`` is pure: it binds pods one after another against ``NodeView``s whose requested resources it
updates, so two pods of one pass never both take the last GPU. ``controlling`` builds the views from the store and
writes the bindings and the FailedScheduling conditions and events.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from simulator.cluster.matching import (
    Obj,
    QuantityError,
    label_selector,
    node_matches,
    node_taints,
    parse_quantity,
    untolerated,
)

UNSCHEDULABLE_TAINT: Final = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
# The scheduler's defaults for a container that requests nothing, used only for scoring (non-zero requests).
DEFAULT_CPU: Final = Decimal("0.1")
DEFAULT_MEMORY: Final = Decimal(200 * 2**20)
AFFINITY_REASON: Final = "node(s) didn't match Pod's node affinity/selector"
CORDONED_REASON: Final = "node(s) were unschedulable"
ANTI_AFFINITY_REASON: Final = "node(s) didn't match pod anti-affinity rules"
TOO_MANY_PODS: Final = "Too many pods"
# Filters whose failure no preemption can fix (UnschedulableAndUnresolvable in the scheduler).
_UNRESOLVABLE: Final = ("node(s) had untolerated taint", AFFINITY_REASON, CORDONED_REASON)


@dataclass(slots=True)
class NodeView:
    """What the scheduler knows of one node; ``requested`` and ``pods`` grow as ``plan_schedule`` binds."""

    node: Obj
    allocatable: dict[str, Decimal]
    requested: dict[str, Decimal] = field(default_factory=dict)
    pods: int = 0
    # The namespace and labels of every pod bound here (pod anti-affinity reads them).
    pod_labels: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    # For scoring only: requests with the scheduler's non-zero defaults.
    scored_cpu: Decimal = Decimal(0)
    scored_memory: Decimal = Decimal(0)

    @property
    def name(self) -> str:
        return str(self.node["metadata"]["name"])

    def bind(self, requests: dict[str, Decimal]) -> None:
        for resource, amount in requests.items():
            self.requested[resource] = self.requested.get(resource, Decimal(0)) + amount
        self.pods += 1
        self.scored_cpu += requests.get("cpu") or DEFAULT_CPU
        self.scored_memory += requests.get("memory") or DEFAULT_MEMORY


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a pod goes (``node``), or why it goes nowhere (``message``: FailedScheduling's)."""

    node: str | None
    message: str = ""


def node_view(node: Obj, bound: Iterable[Obj]) -> NodeView:
    """A node and the pods already bound to it."""
    allocatable: dict[str, Decimal] = {}
    for resource, amount in ((node.get("status") or {}).get("allocatable") or {}).items():
        try:
            allocatable[str(resource)] = parse_quantity(amount)
        except QuantityError:
            continue
    view = NodeView(node, allocatable)
    for pod in bound:
        view.bind(pod_requests(pod.get("spec") or {}))
        view.pod_labels.append(_labels_of(pod))
    return view


def _labels_of(pod: Obj) -> tuple[str, dict[str, str]]:
    metadata = pod.get("metadata") or {}
    return str(metadata.get("namespace") or ""), dict(metadata.get("labels") or {})


def _anti_affinity_blocked(pod: Obj, nodes: list[NodeView]) -> set[str]:
    """The nodes the pod's required pod anti-affinity rules out (InterPodAffinity's filter, incoming pod's side):
    for each term, every node whose ``topologyKey`` label has the value of a node already running a pod that the
    term's selector matches, in the term's namespaces (the pod's own by default)."""
    spec = pod.get("spec") or {}
    terms = ((spec.get("affinity") or {}).get("podAntiAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or []
    blocked: set[str] = set()
    namespace = _labels_of(pod)[0]
    for term in terms:
        key = str(term.get("topologyKey") or "")
        selector = label_selector(term.get("labelSelector"))
        namespaces = set(term.get("namespaces") or [namespace])
        occupied = {
            labels.get(key)
            for view in nodes
            if any(ns in namespaces and selector.matches(pod_labels) for ns, pod_labels in view.pod_labels)
            for labels in [(view.node.get("metadata") or {}).get("labels") or {}]
        } - {None}
        blocked |= {
            view.name for view in nodes if ((view.node.get("metadata") or {}).get("labels") or {}).get(key) in occupied
        }
    return blocked


def pod_requests(spec: dict[str, Any]) -> dict[str, Decimal]:
    """What a pod asks for: the sum of its containers' requests (a limit stands for a missing request, as the API
    server defaults it), or its largest init container's if that is more."""

    def of(container: dict[str, Any]) -> dict[str, Decimal]:
        resources = container.get("resources") or {}
        wanted = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
        found: dict[str, Decimal] = {}
        for name, amount in wanted.items():
            try:
                found[str(name)] = parse_quantity(amount)
            except QuantityError:
                continue
        return found

    total: dict[str, Decimal] = {}
    for container in spec.get("containers") or []:
        for name, amount in of(container).items():
            total[name] = total.get(name, Decimal(0)) + amount
    for container in spec.get("initContainers") or []:
        for name, amount in of(container).items():
            total[name] = max(total.get(name, Decimal(0)), amount)
    return total


def _static_reason(spec: dict[str, Any], node: Obj) -> str | None:
    """The first of the filters that do not depend on other pods to fail for this node, or None."""
    tolerations = list(spec.get("tolerations") or [])
    if (node.get("spec") or {}).get("unschedulable") and untolerated(
        [UNSCHEDULABLE_TAINT], tolerations, ("NoSchedule",)
    ):
        return CORDONED_REASON
    taints = untolerated(node_taints(node), tolerations, ("NoSchedule", "NoExecute"))
    if taints:
        taint = taints[0]
        return f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value') or ''}}}"
    if not node_matches(spec, node):
        return AFFINITY_REASON
    return None


def _resource_reasons(requests: dict[str, Decimal], view: NodeView) -> list[str]:
    reasons = []
    if view.pods + 1 > view.allocatable.get("pods", Decimal(110)):
        reasons.append(TOO_MANY_PODS)
    for resource, amount in sorted(requests.items()):
        if amount <= 0:
            continue
        free = view.allocatable.get(resource, Decimal(0)) - view.requested.get(resource, Decimal(0))
        if amount > free:
            reasons.append(f"Insufficient {resource}")
    return reasons


def _score(requests: dict[str, Decimal], view: NodeView) -> Decimal:
    """LeastAllocated on cpu and memory: the mean free fraction after binding, higher is better."""
    total = Decimal(0)
    for resource, used, default in (
        ("cpu", view.scored_cpu, DEFAULT_CPU),
        ("memory", view.scored_memory, DEFAULT_MEMORY),
    ):
        capacity = view.allocatable.get(resource, Decimal(0))
        if capacity <= 0:
            continue
        after = used + (requests.get(resource) or default)
        total += max(Decimal(0), capacity - after) / capacity
    return total / 2


def failure_message(total: int, reasons: Counter[str]) -> str:
    """FailedScheduling's message, worded and sorted as the scheduler's FitError."""
    if total == 0:
        return "no nodes available to schedule pods"
    counted = sorted(f"{count} {reason}" for reason, count in reasons.items())
    hopeless = sum(c for r, c in reasons.items() if r.startswith(_UNRESOLVABLE))
    preemption = []
    if total - hopeless:
        preemption.append(f"{total - hopeless} No preemption victims found for incoming pod")
    if hopeless:
        preemption.append(f"{hopeless} Preemption is not helpful for scheduling")
    return (
        f"0/{total} nodes are available: {', '.join(counted)}. "
        f"preemption: 0/{total} nodes are available: {', '.join(sorted(preemption))}."
    )


def _named_nodes(spec: dict[str, Any]) -> set[str] | None:
    """The only nodes a pod can go to when its required affinity names them (``matchFields metadata.name In``, as
    a DaemonSet's pods do): NodeAffinity's PreFilter, which spares the filters every other node. None: any."""
    required = (
        ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution")
    ) or {}
    names: set[str] = set()
    for term in required.get("nodeSelectorTerms") or []:
        fields = [
            f for f in term.get("matchFields") or [] if f.get("key") == "metadata.name" and f.get("operator") == "In"
        ]
        if not fields:
            return None  # a term that does not name nodes: any node may match it
        names |= {str(v) for v in fields[0].get("values") or []}
    return names if required.get("nodeSelectorTerms") else None


def plan_schedule(pods: list[Obj], nodes: list[NodeView]) -> list[tuple[Obj, Placement]]:
    """A placement for each pod, in order, binding each to its node before the next is placed."""
    placements = []
    by_name = {view.name: view for view in nodes}
    # Pods of one ReplicaSet share their constraints: the static filters run once per distinct set of them.
    static: dict[str, list[str | None]] = {}
    for pod in pods:
        spec = pod.get("spec") or {}
        named = _named_nodes(spec)
        candidates = nodes if named is None else [by_name[n] for n in sorted(named) if n in by_name]
        signature = json.dumps(
            [spec.get("nodeSelector"), spec.get("affinity"), spec.get("tolerations")], sort_keys=True, default=str
        )
        reasons_by_node = static.get(signature)
        if reasons_by_node is None:
            reasons_by_node = [_static_reason(spec, view.node) for view in candidates]
            static[signature] = reasons_by_node
        requests = pod_requests(spec)
        repelled = _anti_affinity_blocked(pod, nodes)
        failures: Counter[str] = Counter()
        if len(candidates) < len(nodes):
            failures[AFFINITY_REASON] += len(nodes) - len(candidates)
        best: NodeView | None = None
        best_key: tuple[Decimal, int, str] | None = None
        for view, reason in zip(candidates, reasons_by_node, strict=True):
            if reason is not None:
                failures[reason] += 1
                continue
            if view.name in repelled:
                failures[ANTI_AFFINITY_REASON] += 1
                continue
            short = _resource_reasons(requests, view)
            if short:
                failures.update(short)
                continue
            key = (-_score(requests, view), view.pods, view.name)
            if best_key is None or key < best_key:
                best, best_key = view, key
        if best is None:
            placements.append((pod, Placement(None, failure_message(len(nodes), failures))))
            continue
        best.bind(requests)
        best.pod_labels.append(_labels_of(pod))
        placements.append((pod, Placement(best.name)))
    return placements
