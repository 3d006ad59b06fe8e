"""The StatefulSet controller's decision, as kube-controller-manager's: pods with stable names ``<set>-0``,
``<set>-1``, ... (labels ``statefulset.kubernetes.io/pod-name``, ``apps.kubernetes.io/pod-index`` and
``controller-revision-hash``, ``hostname`` and ``subdomain`` from ``serviceName``), and the status.

- ``OrderedReady`` (the default): ordinal ``i`` is created only when every lower one is Running and Ready; scaling
  down deletes the highest ordinal first, one at a time, and only while the others are Ready. ``Parallel``
  creates and deletes them all at once.
- ``RollingUpdate`` (the default): when the template changes (a new ``updateRevision``), the pod of the highest
  ordinal not yet at it (and at or above ``partition``) is deleted, one at a time, once every pod is Running and
  Ready; it comes back from the new template under the same name. ``OnDelete`` replaces only what someone deletes.
- A pod that failed or finished is deleted and made again (``restartPolicy`` is Always).
- Status ``observedGeneration``, ``replicas``, ``readyReplicas``, ``availableReplicas``, ``currentReplicas``,
  ``updatedReplicas``, ``currentRevision``, ``updateRevision``, ``collisionCount``; ``currentRevision`` moves to the
  update revision once every pod is at it.

Revisions are named ``<set>-<hash of the template>`` as the real controller names its ControllerRevisions, but no
ControllerRevision objects are written (``kubectl rollout history sts`` lists nothing), and no volume claims are
made from ``volumeClaimTemplates``. Pure; ``controlling`` lists the pods, applies the plan and records the events.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Final

from simulator.cluster.matching import Obj, owner_reference, pod_active, pod_available, pod_ready_since, template_hash

HASH_LABEL: Final = "controller-revision-hash"
POD_NAME_LABEL: Final = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL: Final = "apps.kubernetes.io/pod-index"
COMPONENT: Final = "statefulset-controller"


@dataclass(frozen=True, slots=True)
class StatefulSetPlan:
    create: tuple[Obj, ...]
    delete: tuple[str, ...]
    status: Obj
    # When a Ready pod becomes available (minReadySeconds).
    wake_at: float | None = None


def revision(sts: Obj) -> str:
    """The set's update revision: ``<name>-<hash of its template>``."""
    template = (sts.get("spec") or {}).get("template") or {}
    return f"{sts['metadata']['name']}-{template_hash(template, label=HASH_LABEL)}"


def ordinal(sts: Obj, pod: Obj) -> int | None:
    """The ordinal of one of the set's pods by its name (None for a name the set would not give)."""
    prefix = f"{sts['metadata']['name']}-"
    name = str(pod["metadata"]["name"])
    tail = name[len(prefix) :] if name.startswith(prefix) else ""
    return int(tail) if tail.isdigit() and str(int(tail)) == tail else None


def stateful_pod(sts: Obj, index: int, revision_name: str) -> Obj:
    """Pod ``<set>-<index>`` from the set's template, at ``revision_name``."""
    spec = sts.get("spec") or {}
    template = spec.get("template") or {}
    template_meta = template.get("metadata") or {}
    name = f"{sts['metadata']['name']}-{index}"
    labels = {
        **(template_meta.get("labels") or {}),
        HASH_LABEL: revision_name,
        POD_NAME_LABEL: name,
        POD_INDEX_LABEL: str(index),
    }
    metadata: dict[str, Any] = {"name": name, "labels": labels, "ownerReferences": [owner_reference(sts)]}
    if template_meta.get("annotations"):
        metadata["annotations"] = dict(template_meta["annotations"])
    pod_spec = copy.deepcopy(template.get("spec") or {})
    pod_spec["hostname"] = name
    if spec.get("serviceName"):
        pod_spec["subdomain"] = spec["serviceName"]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod_spec}


def _running_and_ready(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running" and pod_ready_since(pod) is not None


def plan_stateful_set(sts: Obj, pods: list[Obj], *, now: float) -> StatefulSetPlan:
    """``pods``: the pods the set controls."""
    spec = sts.get("spec") or {}
    wanted = int(spec.get("replicas", 1))
    parallel = spec.get("podManagementPolicy") == "Parallel"
    strategy = spec.get("updateStrategy") or {}
    rolling = strategy.get("type", "RollingUpdate") == "RollingUpdate"
    partition = int((strategy.get("rollingUpdate") or {}).get("partition") or 0)
    min_ready = float(spec.get("minReadySeconds") or 0)
    update = revision(sts)
    old_status = sts.get("status") or {}
    current = str(old_status.get("currentRevision") or update)

    by_ordinal: dict[int, Obj] = {}
    delete: list[str] = []
    for pod in pods:
        index = ordinal(sts, pod)
        if index is None:
            continue
        if not pod_active(pod) and not pod["metadata"].get("deletionTimestamp"):
            delete.append(pod["metadata"]["name"])  # failed or finished: made again at the next step
            continue
        by_ordinal[index] = pod

    def at(pod: Obj) -> str:
        return str((pod["metadata"].get("labels") or {}).get(HASH_LABEL, ""))

    create: list[Obj] = []
    ready_below = True
    for index in range(wanted):
        found = by_ordinal.get(index)
        if found is None and not delete:
            if not parallel and not ready_below:
                break
            # A pod below the partition is made at the current revision; the rest at the update revision.
            made_at = current if rolling and index < partition else update
            create.append(stateful_pod(sts, index, made_at))
            if not parallel:
                break  # OrderedReady: one at a time, the next once this one is Ready
            continue
        if found is not None and not _running_and_ready(found):
            ready_below = False
    surplus = sorted((i for i in by_ordinal if i >= wanted), reverse=True)
    all_ready = all(_running_and_ready(p) for p in by_ordinal.values())
    if surplus and not create and not delete:
        if parallel:
            delete += [by_ordinal[i]["metadata"]["name"] for i in surplus]
        elif all_ready:
            delete.append(by_ordinal[surplus[0]]["metadata"]["name"])
    in_range = {i: p for i, p in by_ordinal.items() if i < wanted}
    if rolling and not create and not delete and not surplus and len(in_range) == wanted and all_ready:
        stale = sorted((i for i, p in in_range.items() if i >= partition and at(p) != update), reverse=True)
        if stale:
            delete.append(in_range[stale[0]]["metadata"]["name"])

    active = list(by_ordinal.values())
    ready = [p for p in active if pod_ready_since(p) is not None]
    available = [p for p in ready if pod_available(p, min_ready_s=min_ready, now=now)]
    updated = sum(1 for p in active if at(p) == update)
    if updated == wanted == len(active) and all(_running_and_ready(p) for p in active):
        current = update
    wake_at = min(((pod_ready_since(p) or 0.0) + min_ready for p in ready if p not in available), default=None)
    status: Obj = {
        "observedGeneration": int(sts["metadata"].get("generation", 1)),
        "replicas": len(active),
        "readyReplicas": len(ready),
        "currentReplicas": sum(1 for p in active if at(p) == current),
        "updatedReplicas": updated,
        "availableReplicas": len(available),
        "currentRevision": current,
        "updateRevision": update,
        "collisionCount": 0,
    }
    # The API server drops zero counts (omitempty); replicas and availableReplicas are always written.
    status = {k: v for k, v in status.items() if v or k in ("replicas", "availableReplicas", "collisionCount")}
    return StatefulSetPlan(tuple(create), tuple(delete), status, wake_at)
