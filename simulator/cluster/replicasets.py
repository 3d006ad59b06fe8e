"""The ReplicaSet controller's decision, as kube-controller-manager's: how many pods to create, which to delete
(the least useful first: unscheduled, then pending, then not ready, then ready for the shortest time, then the most
restarted, then the newest), and the status (``replicas``, ``fullyLabeledReplicas``, ``readyReplicas``,
``availableReplicas`` after ``minReadySeconds``, ``observedGeneration``).

Pods belong to a ReplicaSet by their controller owner reference (adoption of orphans by selector is not done).
Pure; ``controlling`` lists the pods, applies the plan and records SuccessfulCreate / SuccessfulDelete.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from simulator.cluster.matching import (
    Obj,
    label_selector,
    owner_reference,
    pod_active,
    pod_available,
    pod_ready_since,
)
from simulator.cluster.nodes import parse_time


@dataclass(frozen=True, slots=True)
class ReplicaSetPlan:
    create: int
    delete: tuple[str, ...]
    status: Obj
    # When a Ready pod becomes available (minReadySeconds): the controller must look again then.
    wake_at: float | None = None


def pod_from_template(owner: Obj, template: Obj) -> Obj:
    """A new pod of ``owner`` (a ReplicaSet or DaemonSet) from its template, named ``<owner>-<random>``."""
    template_meta = template.get("metadata") or {}
    metadata: dict[str, Any] = {
        "generateName": f"{owner['metadata']['name']}-",
        "labels": dict(template_meta.get("labels") or {}),
        "ownerReferences": [owner_reference(owner)],
    }
    if template_meta.get("annotations"):
        metadata["annotations"] = dict(template_meta["annotations"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": copy.deepcopy(template.get("spec") or {})}


def _deletion_rank(pod: Obj) -> tuple[Any, ...]:
    """Lower ranks are deleted first (controller.ActivePodsWithRanks, without the co-location rank)."""
    status = pod.get("status") or {}
    phase_rank = {"Pending": 0, "Unknown": 1, "Running": 2}.get(str(status.get("phase")), 0)
    since = pod_ready_since(pod)
    restarts = sum(int(c.get("restartCount", 0)) for c in status.get("containerStatuses") or [])
    created = parse_time(str(pod["metadata"].get("creationTimestamp", ""))) or 0.0
    return (
        1 if (pod.get("spec") or {}).get("nodeName") else 0,
        phase_rank,
        0 if since is None else 1,
        -(since or 0.0),  # ready for a shorter time goes first
        -restarts,
        -created,  # newer goes first
        pod["metadata"]["name"],
    )


def plan_replica_set(rs: Obj, pods: list[Obj], *, now: float) -> ReplicaSetPlan:
    """``pods``: the pods the ReplicaSet controls (active or not)."""
    spec = rs.get("spec") or {}
    wanted = int(spec.get("replicas", 1))
    min_ready = float(spec.get("minReadySeconds") or 0)
    active = [p for p in pods if pod_active(p)]
    create, delete = 0, ()
    if len(active) < wanted:
        create = wanted - len(active)
    elif len(active) > wanted:
        doomed = sorted(active, key=_deletion_rank)[: len(active) - wanted]
        delete = tuple(p["metadata"]["name"] for p in doomed)
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    selector = label_selector({"matchLabels": template_labels})
    ready = [p for p in active if pod_ready_since(p) is not None]
    available = [p for p in ready if pod_available(p, min_ready_s=min_ready, now=now)]
    wake_at = min(
        ((pod_ready_since(p) or 0.0) + min_ready for p in ready if p not in available),
        default=None,
    )
    status: Obj = {
        "replicas": len(active),
        "fullyLabeledReplicas": sum(1 for p in active if selector.matches(p["metadata"].get("labels"))),
        "readyReplicas": len(ready),
        "availableReplicas": len(available),
        "observedGeneration": int(rs["metadata"].get("generation", 1)),
    }
    # The API server drops zero counts (omitempty), so a scaled-down ReplicaSet reads as kubectl expects.
    status = {k: v for k, v in status.items() if v or k in ("replicas", "observedGeneration")}
    return ReplicaSetPlan(create, delete, status, wake_at)
