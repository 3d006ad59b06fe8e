"""The taint-based eviction of kube-controller-manager (``taint-eviction-controller``, the "NoExecute taint
manager"): a pod on a node with a NoExecute taint it does not tolerate is deleted at once; one that tolerates
every such taint is deleted when the shortest ``tolerationSeconds`` among the tolerations it uses has passed since
the taint was added (``timeAdded``); a toleration without ``tolerationSeconds`` tolerates forever.

Pods get 300 s tolerations of ``not-ready`` and ``unreachable`` from the API server's admission
(``pods.admit_pod``), so an ordinary pod leaves a lost node five minutes after the node lifecycle controller
taints it, and its ReplicaSet replaces it elsewhere; edgefleet's workloads tolerate both without
``tolerationSeconds`` and stay. Pure; ``controlling`` deletes what ``plan_eviction`` says and records
``TaintManagerEviction``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from simulator.cluster.matching import Obj, node_taints, tolerates
from simulator.cluster.nodes import parse_time

COMPONENT: Final = "taint-eviction-controller"


@dataclass(frozen=True, slots=True)
class Eviction:
    """``now``: delete the pod now; else ``at``: when to delete it (None: never, as things stand)."""

    now: bool = False
    at: float | None = None


def plan_eviction(pod: Obj, node: Obj, *, now: float) -> Eviction:
    taints = [t for t in node_taints(node) if t.get("effect") == "NoExecute"]
    if not taints:
        return Eviction()
    tolerations = list((pod.get("spec") or {}).get("tolerations") or [])
    deadline: float | None = None
    for taint in taints:
        used = [t for t in tolerations if tolerates(t, taint)]
        if not used:
            return Eviction(now=True)
        bounded = [float(t["tolerationSeconds"]) for t in used if t.get("tolerationSeconds") is not None]
        if not bounded:
            continue  # tolerated forever
        added = parse_time(str(taint.get("timeAdded", ""))) or now
        at = added + max(0.0, min(bounded))
        deadline = at if deadline is None else min(deadline, at)
    if deadline is None:
        return Eviction()
    if deadline <= now:
        return Eviction(now=True)
    return Eviction(at=deadline)


def eviction_message(pod: Obj) -> str:
    meta = pod["metadata"]
    return f"Marking for deletion Pod {meta.get('namespace', '')}/{meta['name']}"
