"""The DaemonSet controller's step, as kube-controller-manager's: one pod per node that should run it, a
ControllerRevision per template, rolling updates, and the status ``kubectl rollout status ds/x`` reads.

- Placement (``node_should_run``): the template's ``nodeSelector`` and required node affinity must match the
  node; its NoSchedule and NoExecute taints must be tolerated, counting the tolerations every DaemonSet pod gets
  (``daemon_tolerations``: not-ready and unreachable NoExecute without ``tolerationSeconds``; disk-pressure,
  memory-pressure, pid-pressure and unschedulable NoSchedule; network-unavailable for host-network pods). A node
  whose untolerated taints are NoSchedule only keeps the pod it has but gets no new one.
- Pods are created with those tolerations, a required node affinity ``matchFields metadata.name In [node]``
  (the default scheduler binds them, as since Kubernetes 1.12) and labels ``controller-revision-hash`` and
  ``pod-template-generation``.
- Revisions: the current template is kept as a ControllerRevision ``<daemonset>-<hash>`` whose ``data`` is the
  strategic merge patch ``kubectl rollout undo ds`` applies (``{"spec": {"template": {..., "$patch": "replace"}}}``)
  and whose ``revision`` is one more than the others' (an old one that matches again is renumbered);
  ``revisionHistoryLimit`` (10) old revisions that no pod uses are kept.
- RollingUpdate (the default): with ``maxSurge`` 0, old pods are deleted (unavailable ones first, free) while at
  most ``maxUnavailable`` (default 1) nodes lack an available pod, and new ones take their place; with
  ``maxSurge``, a new pod starts beside an available old one on up to ``maxSurge`` nodes and the old one goes
  when the new one is available. Percentages round up, against the number of nodes that should run the pod.
  OnDelete replaces nothing.
- Status: ``desiredNumberScheduled``, ``currentNumberScheduled``, ``numberMisscheduled``, ``numberReady``,
  ``numberAvailable``, ``numberUnavailable``, ``updatedNumberScheduled`` (each node judged by its oldest pod),
  ``observedGeneration``.

Pure; ``controlling`` lists nodes, pods and revisions, applies the plan and records the events.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Final

from simulator.cluster.matching import (
    Obj,
    node_matches,
    node_taints,
    owner_reference,
    pod_active,
    pod_available,
    pod_ready_since,
    scale_value,
    template_hash,
    untolerated,
)
from simulator.cluster.nodes import parse_time
from simulator.cluster.replicasets import pod_from_template

HASH_LABEL: Final = "controller-revision-hash"
GENERATION_LABEL: Final = "pod-template-generation"
DEFAULT_HISTORY_LIMIT: Final = 10
_NO_EXECUTE: Final = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
_NO_SCHEDULE: Final = (
    "node.kubernetes.io/disk-pressure",
    "node.kubernetes.io/memory-pressure",
    "node.kubernetes.io/pid-pressure",
    "node.kubernetes.io/unschedulable",
)


@dataclass(frozen=True, slots=True)
class DaemonSetPlan:
    """``create_on``: nodes to get a new pod; ``delete``: pods to delete; revisions to create, renumber and
    delete; the status; ``wake_at``: when a Ready pod becomes available."""

    status: Obj
    create_on: tuple[str, ...] = ()
    delete: tuple[str, ...] = ()
    create_revision: Obj | None = None
    renumber: Obj | None = None
    delete_revisions: tuple[str, ...] = ()
    wake_at: float | None = None


def daemon_tolerations(spec: Obj) -> list[Obj]:
    """The pod spec's tolerations plus those the DaemonSet controller adds (AddOrUpdateDaemonPodTolerations)."""
    tolerations = [dict(t) for t in spec.get("tolerations") or []]
    wanted = [{"key": k, "operator": "Exists", "effect": "NoExecute"} for k in _NO_EXECUTE]
    wanted += [{"key": k, "operator": "Exists", "effect": "NoSchedule"} for k in _NO_SCHEDULE]
    if spec.get("hostNetwork"):
        wanted.append({"key": "node.kubernetes.io/network-unavailable", "operator": "Exists", "effect": "NoSchedule"})
    for toleration in wanted:
        tolerations = [
            t
            for t in tolerations
            if not (t.get("key") == toleration["key"] and t.get("effect") == toleration["effect"])
        ]
        tolerations.append(toleration)
    return tolerations


def node_should_run(template_spec: Obj, node: Obj, *, tolerations: list[Obj] | None = None) -> tuple[bool, bool]:
    """(should run: a new pod goes there; should continue running: a pod there stays). ``tolerations``: the
    template's ``daemon_tolerations``, when the caller has them already."""
    if not node_matches(template_spec, node):
        return False, False
    taints = node_taints(node)
    if not taints:
        return True, True
    tolerations = daemon_tolerations(template_spec) if tolerations is None else tolerations
    if untolerated(taints, tolerations, ("NoExecute",)):
        return False, False
    if untolerated(taints, tolerations, ("NoSchedule",)):
        return False, True
    return True, True


def daemon_pod(ds: Obj, node_name: str, revision_hash: str) -> Obj:
    """A new pod of ``ds`` for ``node_name``."""
    template = copy.deepcopy((ds.get("spec") or {}).get("template") or {})
    pod = pod_from_template(ds, template)
    pod["metadata"]["labels"][HASH_LABEL] = revision_hash
    pod["metadata"]["labels"][GENERATION_LABEL] = str(ds["metadata"].get("generation", 1))
    spec = pod["spec"]
    spec["tolerations"] = daemon_tolerations(spec)
    affinity = spec.setdefault("affinity", {}).setdefault("nodeAffinity", {})
    affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {
        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node_name]}]}]
    }
    return pod


def revision_of(ds: Obj, revision_hash: str, number: int) -> Obj:
    """The ControllerRevision of ``ds``'s current template."""
    template = copy.deepcopy((ds.get("spec") or {}).get("template") or {})
    template["$patch"] = "replace"
    labels = dict(((ds.get("spec") or {}).get("template") or {}).get("metadata", {}).get("labels") or {})
    labels[HASH_LABEL] = revision_hash
    annotations = {
        k: v
        for k, v in (ds["metadata"].get("annotations") or {}).items()
        if k != "kubectl.kubernetes.io/last-applied-configuration" and not k.startswith("deprecated.daemonset")
    }
    metadata: Obj = {
        "name": f"{ds['metadata']['name']}-{revision_hash}",
        "namespace": ds["metadata"].get("namespace", "default"),
        "labels": labels,
        "ownerReferences": [owner_reference(ds)],
    }
    if annotations:
        metadata["annotations"] = annotations
    return {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": metadata,
        "data": {"spec": {"template": template}},
        "revision": number,
    }


def _created(pod: Obj) -> tuple[float, str]:
    return (parse_time(str(pod["metadata"].get("creationTimestamp", ""))) or 0.0, pod["metadata"]["name"])


def plan_daemon_set(ds: Obj, nodes: list[Obj], pods: list[Obj], revisions: list[Obj], *, now: float) -> DaemonSetPlan:
    """One sync of ``ds``; ``pods`` and ``revisions``: those it controls."""
    spec = ds.get("spec") or {}
    template = spec.get("template") or {}
    template_spec = template.get("spec") or {}
    current_hash = template_hash(template, label=HASH_LABEL)
    min_ready = float(spec.get("minReadySeconds") or 0)

    # Revisions.
    highest = max((int(r.get("revision", 0)) for r in revisions), default=0)
    current = next((r for r in revisions if (r["metadata"].get("labels") or {}).get(HASH_LABEL) == current_hash), None)
    create_revision = renumber = None
    if current is None:
        create_revision = revision_of(ds, current_hash, highest + 1)
    elif int(current.get("revision", 0)) < highest:
        renumber = {**current, "revision": highest + 1}
    in_use = {(p["metadata"].get("labels") or {}).get(HASH_LABEL) for p in pods}
    limit = int(spec.get("revisionHistoryLimit", DEFAULT_HISTORY_LIMIT))
    olds = sorted(
        (
            r
            for r in revisions
            if r is not current and (r["metadata"].get("labels") or {}).get(HASH_LABEL) not in in_use
        ),
        key=lambda r: int(r.get("revision", 0)),
    )
    delete_revisions = tuple(r["metadata"]["name"] for r in olds[: max(0, len(olds) - limit)])

    # Pods per node.
    active = [p for p in pods if pod_active(p)]
    by_node: dict[str, list[Obj]] = {}
    for pod in active:
        node_name = str((pod.get("spec") or {}).get("nodeName") or _affinity_node(pod) or "")
        by_node.setdefault(node_name, []).append(pod)
    for listed in by_node.values():
        listed.sort(key=_created)
    node_names = {n["metadata"]["name"] for n in nodes}

    def is_new(pod: Obj) -> bool:
        return (pod["metadata"].get("labels") or {}).get(HASH_LABEL) == current_hash

    def available(pod: Obj) -> bool:
        return pod_available(pod, min_ready_s=min_ready, now=now)

    create_on: list[str] = []
    delete: list[str] = []
    should_run_nodes: list[str] = []
    desired = 0
    tolerations = daemon_tolerations(template_spec)
    for node in nodes:
        name = node["metadata"]["name"]
        run, keep = node_should_run(template_spec, node, tolerations=tolerations)
        here = by_node.get(name, [])
        if run:
            desired += 1
            should_run_nodes.append(name)
        if not run and not keep:
            delete += [p["metadata"]["name"] for p in here]
            continue
        if not here:
            if run:
                create_on.append(name)
            continue
        new_pods = [p for p in here if is_new(p)]
        old_pods = [p for p in here if not is_new(p)]
        if new_pods and old_pods:
            if any(available(p) for p in new_pods):
                delete += [p["metadata"]["name"] for p in old_pods]
            delete += [p["metadata"]["name"] for p in new_pods[1:]]
        elif len(here) > 1:
            delete += [p["metadata"]["name"] for p in here[1:]]
    # Pods bound to nodes that no longer exist.
    for node_name, here in by_node.items():
        if node_name not in node_names:
            delete += [p["metadata"]["name"] for p in here]

    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") == "RollingUpdate":
        rolling = strategy.get("rollingUpdate") or {}
        surge = scale_value(rolling.get("maxSurge", 0), desired, round_up=True)
        unavailable_limit = scale_value(rolling.get("maxUnavailable", 1), desired, round_up=True)
        if surge == 0 and unavailable_limit == 0:
            unavailable_limit = 1
        doomed = set(delete)
        unavailable = sum(
            1
            for n in should_run_nodes
            if not any(available(p) for p in by_node.get(n, []) if p["metadata"]["name"] not in doomed)
        )
        surging = sum(
            1
            for n in should_run_nodes
            if any(is_new(p) for p in by_node.get(n, [])) and any(not is_new(p) for p in by_node.get(n, []))
        )
        for node_name in should_run_nodes:
            here = [p for p in by_node.get(node_name, []) if p["metadata"]["name"] not in doomed]
            if not here or any(is_new(p) for p in here):
                continue
            old = here[0]
            if not available(old):
                delete.append(old["metadata"]["name"])  # replacing an unavailable pod costs no availability
                continue
            if surge:
                if surging < surge:
                    create_on.append(node_name)
                    surging += 1
            elif unavailable < unavailable_limit:
                delete.append(old["metadata"]["name"])
                unavailable += 1

    # Status, each node judged by its oldest pod.
    status_counts = {"current": 0, "misscheduled": 0, "ready": 0, "available": 0, "updated": 0}
    wake_at: float | None = None
    run_set = set(should_run_nodes)
    for node in nodes:
        name = node["metadata"]["name"]
        here = by_node.get(name, [])
        if name not in run_set:
            if here:
                status_counts["misscheduled"] += 1
            continue
        if not here:
            continue
        status_counts["current"] += 1
        oldest = here[0]
        since = pod_ready_since(oldest)
        if since is not None:
            status_counts["ready"] += 1
            if available(oldest):
                status_counts["available"] += 1
            else:
                wake_at = min(wake_at or since + min_ready, since + min_ready)
        if is_new(oldest):
            status_counts["updated"] += 1
    status: Obj = {
        "currentNumberScheduled": status_counts["current"],
        "numberMisscheduled": status_counts["misscheduled"],
        "desiredNumberScheduled": desired,
        "numberReady": status_counts["ready"],
        "observedGeneration": int(ds["metadata"].get("generation", 1)),
        "updatedNumberScheduled": status_counts["updated"],
        "numberAvailable": status_counts["available"],
        "numberUnavailable": desired - status_counts["available"],
    }
    status = {
        k: v
        for k, v in status.items()
        if v or k in ("currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled", "numberReady")
    }
    old_status = ds.get("status") or {}
    if old_status.get("collisionCount") is not None:
        status["collisionCount"] = old_status["collisionCount"]
    return DaemonSetPlan(
        status,
        create_on=tuple(dict.fromkeys(create_on)),
        delete=tuple(dict.fromkeys(delete)),
        create_revision=create_revision,
        renumber=renumber,
        delete_revisions=delete_revisions,
        wake_at=wake_at,
    )


def _affinity_node(pod: Obj) -> str | None:
    """The node a not-yet-bound daemon pod is pinned to by its ``matchFields``."""
    required = (((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    for term in required.get("nodeSelectorTerms") or []:
        for field in term.get("matchFields") or []:
            if field.get("key") == "metadata.name" and field.get("operator") == "In" and field.get("values"):
                return str(field["values"][0])
    return None
