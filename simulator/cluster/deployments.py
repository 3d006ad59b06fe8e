"""The Deployment controller's step, as kube-controller-manager's ``syncDeployment``: from a Deployment and the
ReplicaSets it controls, the one change to make now and the status to write.

- The new ReplicaSet is the one whose template is the Deployment's (``pod-template-hash`` aside); it is named
  ``<deployment>-<hash>`` and labelled, with its pods, ``pod-template-hash=<hash>`` (``matching.template_hash``).
  Its ``deployment.kubernetes.io/revision`` is one more than the old ones' highest (so a template copied back
  by ``kubectl rollout undo`` makes the old ReplicaSet new again under a new revision, its earlier revisions in
  ``revision-history``); ``desired-replicas`` and ``max-replicas`` say what it was scaled for. The Deployment
  carries the revision too, and its other annotations are copied to the ReplicaSet (``kubectl rollout history``
  reads ``kubernetes.io/change-cause`` there).
- RollingUpdate: scale the new ReplicaSet up while all ReplicaSets' replicas stay within ``replicas + maxSurge``;
  else scale old ones down (their unavailable pods first) while available pods stay at least ``replicas -
  maxUnavailable``. ``maxSurge`` percentages round up, ``maxUnavailable`` ones down; both 0 means 1 unavailable.
- Recreate: scale every old ReplicaSet to 0, wait until their pods are gone, then scale the new one up.
- Paused: no new ReplicaSet and no rollout; a Deployment whose only active ReplicaSet is the new one still scales.
- When the rollout is complete, old ReplicaSets at 0 beyond ``revisionHistoryLimit`` (default 10) are deleted.
- Status: ``observedGeneration``, ``replicas``, ``updatedReplicas``, ``readyReplicas``, ``availableReplicas``,
  ``unavailableReplicas``; conditions ``Available`` (MinimumReplicasAvailable / MinimumReplicasUnavailable) and
  ``Progressing`` (NewReplicaSetCreated, FoundNewReplicaSet, ReplicaSetUpdated, NewReplicaSetAvailable,
  ProgressDeadlineExceeded after ``progressDeadlineSeconds`` without progress, DeploymentPaused/Resumed), with
  Kubernetes' wording, so ``kubectl rollout status`` and ``kubectl wait --for=condition=Available`` read them.

Like the real controller, one step makes at most one scaling change; the shell (``controlling``) steps again when
the ReplicaSets' status moves. Pure: time comes in as ``now``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from edgefleet.clock import format_utc
from simulator.cluster.matching import Obj, owner_reference, scale_value, template_hash
from simulator.cluster.nodes import parse_time

HASH_LABEL: Final = "pod-template-hash"
REVISION: Final = "deployment.kubernetes.io/revision"
REVISION_HISTORY: Final = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS: Final = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS: Final = "deployment.kubernetes.io/max-replicas"
# Annotations the controller never copies from a Deployment to its ReplicaSets (deploymentutil's skip list).
_NOT_COPIED: Final = frozenset(
    {"kubectl.kubernetes.io/last-applied-configuration", REVISION, REVISION_HISTORY, DESIRED_REPLICAS, MAX_REPLICAS}
)
# The API server's defaults for a Deployment's spec.
DEFAULT_SURGE: Final = "25%"
DEFAULT_UNAVAILABLE: Final = "25%"
DEFAULT_HISTORY_LIMIT: Final = 10
DEFAULT_PROGRESS_DEADLINE_S: Final = 600

EventType = Literal["Normal", "Warning"]


@dataclass(frozen=True, slots=True)
class DeploymentPlan:
    """``create``: a new ReplicaSet to create; ``scale``: (ReplicaSet, its new object) to write; ``delete``:
    ReplicaSets to delete (history); ``annotations``: the Deployment's new annotations (None: unchanged);
    ``status``: its status; ``events``: (type, reason, message) on the Deployment; ``wake_at``: when the progress
    deadline passes."""

    status: Obj
    create: Obj | None = None
    scale: tuple[Obj, ...] = ()
    delete: tuple[str, ...] = ()
    annotations: dict[str, str] | None = None
    events: tuple[tuple[EventType, str, str], ...] = ()
    wake_at: float | None = None


@dataclass(slots=True)
class _Step:
    """What one step has decided so far (mutable while planning)."""

    create: Obj | None = None
    scale: list[Obj] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    events: list[tuple[EventType, str, str]] = field(default_factory=list)
    progressing: Obj | None = None  # a Progressing condition set by finding or creating the new ReplicaSet


def replicas_of(obj: Obj) -> int:
    return int((obj.get("spec") or {}).get("replicas", 1))


def _status_count(obj: Obj, key: str) -> int:
    return int((obj.get("status") or {}).get(key, 0))


def _revision(rs: Obj) -> int:
    try:
        return int((rs["metadata"].get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def fenceposts(deployment: Obj) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) as numbers of pods: deploymentutil.ResolveFenceposts, and MaxUnavailable's cap
    at ``replicas``. Recreate has neither."""
    spec = deployment.get("spec") or {}
    strategy = spec.get("strategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return 0, 0
    rolling = strategy.get("rollingUpdate") or {}
    desired = replicas_of(deployment)
    surge = scale_value(rolling.get("maxSurge", DEFAULT_SURGE), desired, round_up=True)
    unavailable = scale_value(rolling.get("maxUnavailable", DEFAULT_UNAVAILABLE), desired, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, min(unavailable, desired)


def _condition(kind: str, status: str, reason: str, message: str, now: float) -> Obj:
    stamp = format_utc(now)
    return {
        "type": kind,
        "status": status,
        "lastUpdateTime": stamp,
        "lastTransitionTime": stamp,
        "reason": reason,
        "message": message,
    }


def _set_condition(conditions: list[Obj], new: Obj) -> list[Obj]:
    """deploymentutil.SetDeploymentCondition: same status and reason is no change; same status keeps the
    transition time."""
    current = next((c for c in conditions if c.get("type") == new["type"]), None)
    if current is not None and current.get("status") == new["status"] and current.get("reason") == new["reason"]:
        return conditions
    if current is not None and current.get("status") == new["status"]:
        new = {**new, "lastTransitionTime": current.get("lastTransitionTime")}
    return [c for c in conditions if c.get("type") != new["type"]] + [new]


def new_replica_set(deployment: Obj, replicas: int, revision: int, template_key: str) -> Obj:
    """The ReplicaSet a Deployment's template makes."""
    spec = deployment.get("spec") or {}
    template = copy.deepcopy(spec.get("template") or {})
    template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = template_key
    selector = copy.deepcopy(spec.get("selector") or {})
    selector.setdefault("matchLabels", {})[HASH_LABEL] = template_key
    surge, _ = fenceposts(deployment)
    annotations = {k: v for k, v in (deployment["metadata"].get("annotations") or {}).items() if k not in _NOT_COPIED}
    annotations.update(
        {
            REVISION: str(revision),
            DESIRED_REPLICAS: str(replicas_of(deployment)),
            MAX_REPLICAS: str(replicas_of(deployment) + surge),
        }
    )
    rs_spec: Obj = {"replicas": replicas, "selector": selector, "template": template}
    if spec.get("minReadySeconds"):
        rs_spec["minReadySeconds"] = spec["minReadySeconds"]
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": f"{deployment['metadata']['name']}-{template_key}",
            "namespace": deployment["metadata"].get("namespace", "default"),
            "labels": dict(template["metadata"]["labels"]),
            "annotations": annotations,
            "ownerReferences": [owner_reference(deployment)],
        },
        "spec": rs_spec,
    }


def _scaled(deployment: Obj, rs: Obj, replicas: int) -> Obj:
    """``rs`` at ``replicas``, its replica annotations set for the Deployment (scaleReplicaSet)."""
    surge, _ = fenceposts(deployment)
    updated = copy.deepcopy(rs)
    updated.setdefault("spec", {})["replicas"] = replicas
    annotations = updated["metadata"].setdefault("annotations", {})
    annotations[DESIRED_REPLICAS] = str(replicas_of(deployment))
    annotations[MAX_REPLICAS] = str(replicas_of(deployment) + surge)
    return updated


def _scale(step: _Step, deployment: Obj, rs: Obj, replicas: int) -> None:
    was = replicas_of(rs)
    step.scale.append(_scaled(deployment, rs, replicas))
    if replicas != was:
        direction = "up" if replicas > was else "down"
        step.events.append(
            (
                "Normal",
                "ScalingReplicaSet",
                f"Scaled {direction} replica set {rs['metadata']['name']} to {replicas} from {was}",
            )
        )


def plan_deployment(deployment: Obj, replica_sets: list[Obj], *, now: float) -> DeploymentPlan:
    """One sync of ``deployment``; ``replica_sets``: those it controls."""
    spec = deployment.get("spec") or {}
    desired = replicas_of(deployment)
    key = template_hash(spec.get("template") or {})
    new = next((rs for rs in replica_sets if template_hash((rs.get("spec") or {}).get("template") or {}) == key), None)
    olds = sorted(
        (rs for rs in replica_sets if rs is not new),
        key=lambda rs: (parse_time(str(rs["metadata"].get("creationTimestamp", ""))) or 0.0, rs["metadata"]["name"]),
    )
    step = _Step()
    paused = bool(spec.get("paused"))
    strategy = (spec.get("strategy") or {}).get("type", "RollingUpdate")
    max_old = max((_revision(rs) for rs in olds), default=0)
    annotations = dict(deployment["metadata"].get("annotations") or {})

    if new is not None:
        new = _with_annotations(deployment, new, max_old, step)
    elif not paused and (
        strategy == "RollingUpdate" or not any(replicas_of(rs) or _status_count(rs, "replicas") for rs in olds)
    ):
        replicas = desired
        if strategy == "RollingUpdate":
            surge, _ = fenceposts(deployment)
            current = sum(replicas_of(rs) for rs in olds)
            replicas = max(0, min(desired + surge - current, desired))
        new = new_replica_set(deployment, replicas, max_old + 1, key)
        step.create = new
        if replicas:
            step.events.append(
                ("Normal", "ScalingReplicaSet", f"Scaled up replica set {new['metadata']['name']} to {replicas} from 0")
            )
        step.progressing = _condition(
            "Progressing", "True", "NewReplicaSetCreated", f'Created new replica set "{new["metadata"]["name"]}"', now
        )

    if new is not None and annotations.get(REVISION) != (new["metadata"].get("annotations") or {}).get(REVISION):
        annotations[REVISION] = (new["metadata"].get("annotations") or {})[REVISION]
    changed_annotations = annotations if annotations != (deployment["metadata"].get("annotations") or {}) else None

    all_sets = [*olds, *([new] if new is not None else [])]
    if step.create is None:
        if paused:
            if new is not None and not any(replicas_of(rs) for rs in olds) and replicas_of(new) != desired:
                _scale(step, deployment, new, desired)
        elif strategy == "Recreate":
            _recreate(step, deployment, new, olds)
        else:
            _roll(step, deployment, new, olds)
        if not step.scale and not paused and _complete(deployment, new, all_sets):
            step.delete = _history_to_delete(deployment, olds)
    # The status reads the ReplicaSets as written now (the real controller reads them back after scaling). A
    # ReplicaSet written twice (its revision, then its scale) is written once, as it ends up: the later copy
    # carries both changes.
    written = {rs["metadata"]["name"]: rs for rs in step.scale}
    sets_now = [written.get(rs["metadata"]["name"], rs) for rs in all_sets]
    new_now = written.get(new["metadata"]["name"], new) if new is not None else None
    status, wake_at = _status(deployment, new_now, sets_now, step.progressing, paused=paused, now=now)
    return DeploymentPlan(
        status,
        create=step.create,
        scale=tuple(written.values()),
        delete=tuple(step.delete),
        annotations=changed_annotations,
        events=tuple(step.events),
        wake_at=wake_at,
    )


def _with_annotations(deployment: Obj, new: Obj, max_old: int, step: _Step) -> Obj:
    """The new ReplicaSet with the Deployment's annotations copied on (a ``kubernetes.io/change-cause`` added
    after the rollout began reaches ``kubectl rollout history``) and a revision above every old one's
    (SetNewReplicaSetAnnotations). Annotations the Deployment dropped stay, as there."""
    copied = {k: v for k, v in (deployment["metadata"].get("annotations") or {}).items() if k not in _NOT_COPIED}
    current = new["metadata"].get("annotations") or {}
    revision = _revision(new)
    if revision > max_old and all(current.get(k) == v for k, v in copied.items()):
        return new
    updated = copy.deepcopy(new)
    annotations = updated["metadata"].setdefault("annotations", {})
    annotations.update(copied)
    if revision <= max_old:
        if revision:
            history = [h for h in annotations.get(REVISION_HISTORY, "").split(",") if h]
            annotations[REVISION_HISTORY] = ",".join([*history, str(revision)])
        annotations[REVISION] = str(max_old + 1)
    step.scale.append(updated)
    return updated


def _roll(step: _Step, deployment: Obj, new: Obj | None, olds: list[Obj]) -> None:
    """rolloutRolling: reconcileNewReplicaSet, else reconcileOldReplicaSets."""
    if new is None:
        return
    desired = replicas_of(deployment)
    surge, unavailable = fenceposts(deployment)
    new_replicas = replicas_of(new)
    if new_replicas > desired:
        _scale(step, deployment, new, desired)
        return
    if new_replicas < desired:
        total = new_replicas + sum(replicas_of(rs) for rs in olds)
        if total < desired + surge:
            _scale(step, deployment, new, min(desired + surge - total, desired - new_replicas) + new_replicas)
            return
    active_olds = [rs for rs in olds if replicas_of(rs) > 0]
    if not active_olds:
        return
    all_replicas = replicas_of(new) + sum(replicas_of(rs) for rs in olds)
    min_available = desired - unavailable
    new_unavailable = replicas_of(new) - _status_count(new, "availableReplicas")
    room = all_replicas - min_available - new_unavailable
    if room <= 0:
        return
    scaled: dict[str, int] = {}
    # cleanupUnhealthyReplicas: old pods that are not available go first, oldest ReplicaSet first.
    for rs in active_olds:
        if room <= 0:
            break
        unhealthy = replicas_of(rs) - _status_count(rs, "availableReplicas")
        if unhealthy <= 0:
            continue
        cut = min(room, unhealthy)
        scaled[rs["metadata"]["name"]] = replicas_of(rs) - cut
        room -= cut
    # scaleDownOldReplicaSetsForRollingUpdate: then available ones, keeping minAvailable.
    available = _status_count(new, "availableReplicas") + sum(_status_count(rs, "availableReplicas") for rs in olds)
    to_cut = available - min_available
    for rs in active_olds:
        if to_cut <= 0:
            break
        left = scaled.get(rs["metadata"]["name"], replicas_of(rs))
        if left == 0:
            continue
        cut = min(left, to_cut)
        scaled[rs["metadata"]["name"]] = left - cut
        to_cut -= cut
    for rs in active_olds:
        if rs["metadata"]["name"] in scaled:
            _scale(step, deployment, rs, scaled[rs["metadata"]["name"]])


def _recreate(step: _Step, deployment: Obj, new: Obj | None, olds: list[Obj]) -> None:
    active = [rs for rs in olds if replicas_of(rs) > 0]
    if active:
        for rs in active:
            _scale(step, deployment, rs, 0)
        return
    if any(_status_count(rs, "replicas") for rs in olds):
        return  # old pods still running: wait for them to go
    if new is not None and replicas_of(new) != replicas_of(deployment):
        _scale(step, deployment, new, replicas_of(deployment))


def _complete(deployment: Obj, new: Obj | None, all_sets: list[Obj]) -> bool:
    desired = replicas_of(deployment)
    return (
        new is not None
        and _status_count(new, "replicas") == desired
        and sum(_status_count(rs, "replicas") for rs in all_sets) == desired
        and sum(_status_count(rs, "availableReplicas") for rs in all_sets) == desired
    )


def _history_to_delete(deployment: Obj, olds: list[Obj]) -> list[str]:
    limit = int((deployment.get("spec") or {}).get("revisionHistoryLimit", DEFAULT_HISTORY_LIMIT))
    cleanable = sorted(olds, key=_revision)
    doomed = []
    for rs in cleanable[: max(0, len(cleanable) - limit)]:
        if replicas_of(rs) or _status_count(rs, "replicas"):
            continue
        if int(rs["metadata"].get("generation", 1)) > int((rs.get("status") or {}).get("observedGeneration", 0)):
            continue
        doomed.append(rs["metadata"]["name"])
    return doomed


def _status(
    deployment: Obj, new: Obj | None, all_sets: list[Obj], progressing: Obj | None, *, paused: bool, now: float
) -> tuple[Obj, float | None]:
    """calculateStatus and syncRolloutStatus."""
    spec = deployment.get("spec") or {}
    old_status = deployment.get("status") or {}
    desired = replicas_of(deployment)
    _, unavailable = fenceposts(deployment)
    available = sum(_status_count(rs, "availableReplicas") for rs in all_sets)
    total = sum(replicas_of(rs) for rs in all_sets)
    status: Obj = {
        "observedGeneration": int(deployment["metadata"].get("generation", 1)),
        "replicas": sum(_status_count(rs, "replicas") for rs in all_sets),
        "updatedReplicas": _status_count(new, "replicas") if new is not None else 0,
        "readyReplicas": sum(_status_count(rs, "readyReplicas") for rs in all_sets),
        "availableReplicas": available,
        "unavailableReplicas": max(0, total - available),
    }
    if old_status.get("collisionCount") is not None:
        status["collisionCount"] = old_status["collisionCount"]
    conditions = [dict(c) for c in old_status.get("conditions") or []]
    if available >= desired - unavailable:
        wanted = _condition(
            "Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.", now
        )
    else:
        wanted = _condition(
            "Available", "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.", now
        )
    conditions = _set_condition(conditions, wanted)
    current = next((c for c in conditions if c.get("type") == "Progressing"), None)
    if progressing is not None:
        conditions = _set_condition(conditions, progressing)
    elif new is not None and current is None:
        conditions = _set_condition(
            conditions,
            _condition(
                "Progressing", "True", "FoundNewReplicaSet", f'Found new replica set "{new["metadata"]["name"]}"', now
            ),
        )
    current = next((c for c in conditions if c.get("type") == "Progressing"), None)
    wake_at = None
    if paused:
        if current is None or current.get("reason") != "DeploymentPaused":
            conditions = _set_condition(
                conditions, _condition("Progressing", "Unknown", "DeploymentPaused", "Deployment is paused", now)
            )
    else:
        if current is not None and current.get("reason") == "DeploymentPaused":
            conditions = _set_condition(
                conditions, _condition("Progressing", "Unknown", "DeploymentResumed", "Deployment is resumed", now)
            )
            current = next(c for c in conditions if c.get("type") == "Progressing")
        deadline = float(spec.get("progressDeadlineSeconds", DEFAULT_PROGRESS_DEADLINE_S))
        subject = (
            f'ReplicaSet "{new["metadata"]["name"]}"'
            if new is not None
            else f'Deployment "{deployment["metadata"]["name"]}"'
        )
        complete = status["updatedReplicas"] == desired and status["replicas"] == desired and available == desired
        already = (
            current is not None
            and current.get("reason") == "NewReplicaSetAvailable"
            and status["replicas"] == status["updatedReplicas"]
        )
        if not already:
            if complete:
                conditions = _set_condition(
                    conditions,
                    _condition(
                        "Progressing", "True", "NewReplicaSetAvailable", f"{subject} has successfully progressed.", now
                    ),
                )
            elif _progressed(old_status, status):
                fresh = _condition("Progressing", "True", "ReplicaSetUpdated", f"{subject} is progressing.", now)
                if current is not None and current.get("status") == "True":
                    fresh["lastTransitionTime"] = current.get("lastTransitionTime")
                conditions = [c for c in conditions if c.get("type") != "Progressing"] + [fresh]
            else:
                since = parse_time(str((current or {}).get("lastUpdateTime", "")))
                if (
                    current is not None
                    and current.get("reason") != "ProgressDeadlineExceeded"
                    and since is not None
                    and since + deadline < now
                ):
                    conditions = _set_condition(
                        conditions,
                        _condition(
                            "Progressing",
                            "False",
                            "ProgressDeadlineExceeded",
                            f"{subject} has timed out progressing.",
                            now,
                        ),
                    )
        # requeueStuckDeployment: look again when the deadline passes, unless done or already timed out.
        latest = next((c for c in conditions if c.get("type") == "Progressing"), None)
        since = parse_time(str((latest or {}).get("lastUpdateTime", "")))
        if latest is not None and latest.get("status") == "True" and latest.get("reason") != "NewReplicaSetAvailable":
            wake_at = (since or now) + deadline + 1.0
    status["conditions"] = conditions
    return status, wake_at


def _progressed(old: dict[str, Any], new: Obj) -> bool:
    """deploymentutil.DeploymentProgressing: more updated, ready or available pods, or fewer old ones."""
    old_olds = int(old.get("replicas", 0)) - int(old.get("updatedReplicas", 0))
    new_olds = int(new["replicas"]) - int(new["updatedReplicas"])
    return (
        new["updatedReplicas"] > int(old.get("updatedReplicas", 0))
        or new_olds < old_olds
        or new["readyReplicas"] > int(old.get("readyReplicas", 0))
        or new["availableReplicas"] > int(old.get("availableReplicas", 0))
    )
