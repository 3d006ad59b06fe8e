"""What the API server of a simulated cluster fills in on the way to storage, as kube-apiserver's defaulting
and admission do: a Deployment's, ReplicaSet's, DaemonSet's and StatefulSet's spec defaults (replicas, strategy, history,
progress deadline, their pod template's defaults) on every write, and a new Pod's defaults with the
DefaultTolerationSeconds tolerations (``pods.admit_pod``) when it is created; an HorizontalPodAutoscaler's
``minReplicas`` default and the registry's validation of its bounds and target (``_admit_autoscaler``); a Job's
defaults, generated selector and labels, and the registry's validation of its spec (``_admit_job``).

Defaulting the templates matters beyond looks: the ``pod-template-hash`` of a Deployment's template must be the
same whether the template came from the user or back from a ReplicaSet (``kubectl rollout undo``).

``admit`` is the ``Store``'s admission hook; the servers built by ``server.start_cluster_in_background`` and
``playing`` install it. Pure.
"""

from __future__ import annotations

import copy
from typing import Any

from simulator.cluster.jobs import CONTROLLER_UID_LABELS, JOB_NAME_LABELS
from simulator.cluster.matching import Obj
from simulator.cluster.pods import admit_pod, default_pod_spec
from simulator.cluster.resources import (
    DAEMON_SETS,
    DEPLOYMENTS,
    HORIZONTAL_POD_AUTOSCALERS,
    JOBS,
    PODS,
    REPLICA_SETS,
    STATEFUL_SETS,
    Resource,
)
from simulator.cluster.store import Invalid


def _default_template(spec: Obj) -> None:
    template = spec.get("template")
    metadata = template.get("metadata") if isinstance(template, dict) else None
    # Go clients send a template's empty creationTimestamp as null; the API server's decoding drops it.
    if isinstance(metadata, dict) and metadata.get("creationTimestamp", "") is None:
        del metadata["creationTimestamp"]
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        default_pod_spec(template["spec"])


class FieldsInvalid(Invalid):
    """422 naming each invalid field, as the registry's validation answers: the message joins them, and
    ``details.causes`` carries each (kubectl prints them)."""

    def __init__(self, resource: Resource, name: str, errors: list[tuple[str, str, str]]) -> None:
        said = [f"{field}: {message}" for field, _, message in errors]
        shown = said[0] if len(said) == 1 else "[" + ", ".join(said) + "]"
        super().__init__(
            f'{resource.group_kind} "{name}" is invalid: {shown}', name=name, kind=resource.kind, group=resource.group
        )
        self.errors = errors

    def status(self) -> dict[str, Any]:
        body = super().status()
        body["details"]["causes"] = [
            {"reason": reason, "message": message, "field": field} for field, reason, message in self.errors
        ]
        return body


def _admit_autoscaler(obj: Obj) -> Obj:
    """An HorizontalPodAutoscaler defaulted (``minReplicas: 1``) and validated as the API server's registry does
    (``pkg/apis/autoscaling/validation``): replicas bounds, a target to scale, metrics with a positive target."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return obj
    obj = copy.deepcopy(obj)
    spec = obj["spec"]
    spec.setdefault("minReplicas", 1)
    errors: list[tuple[str, str, str]] = []  # field, cause reason, message
    low, high = spec.get("minReplicas"), spec.get("maxReplicas")
    if isinstance(low, int) and low < 1:
        errors.append(
            ("spec.minReplicas", "FieldValueInvalid", f"Invalid value: {low}: must be greater than or equal to 1")
        )
    if high is None:
        errors.append(("spec.maxReplicas", "FieldValueRequired", "Required value"))
    elif isinstance(high, int) and high < 1:
        errors.append(("spec.maxReplicas", "FieldValueInvalid", f"Invalid value: {high}: must be greater than 0"))
    elif isinstance(high, int) and isinstance(low, int) and high < low:
        errors.append(
            (
                "spec.maxReplicas",
                "FieldValueInvalid",
                f"Invalid value: {high}: must be greater than or equal to `minReplicas`",
            )
        )
    target = spec.get("scaleTargetRef")
    for part in ("kind", "name"):
        if not isinstance(target, dict) or not target.get(part):
            errors.append((f"spec.scaleTargetRef.{part}", "FieldValueRequired", "Required value"))
    for i, metric in enumerate(spec.get("metrics") or []):
        aim = ((metric or {}).get("resource") or {}).get("target") or {}
        value = aim.get("averageUtilization")
        if isinstance(value, int) and value < 1:
            errors.append(
                (
                    f"spec.metrics[{i}].resource.target.averageUtilization",
                    "FieldValueInvalid",
                    f"Invalid value: {value}: must be greater than 0",
                )
            )
    if errors:
        raise FieldsInvalid(HORIZONTAL_POD_AUTOSCALERS, str((obj.get("metadata") or {}).get("name") or ""), errors)
    return obj


def _non_negative(spec: Obj, name: str, errors: list[tuple[str, str, str]]) -> None:
    value = spec.get(name)
    if isinstance(value, int) and value < 0:
        errors.append(
            (f"spec.{name}", "FieldValueInvalid", f"Invalid value: {value}: must be greater than or equal to 0")
        )


def _admit_job(obj: Obj) -> Obj:
    """A Job defaulted as ``SetDefaults_Job`` does (parallelism and completions 1 when neither is set, backoffLimit
    6, NonIndexed, not suspended, its template's pod defaults), given the selector and labels the registry
    generates from its uid (``batch.kubernetes.io/controller-uid`` and ``job-name``, with the legacy unprefixed
    pair) unless ``manualSelector``, and validated as ``pkg/apis/batch/validation`` does: a template with
    containers, a restartPolicy of OnFailure or Never, no negative counts."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return obj
    obj = copy.deepcopy(obj)
    spec = obj["spec"]
    metadata = obj["metadata"]
    name = str(metadata.get("name") or metadata.get("generateName") or "")
    if "completions" not in spec and "parallelism" not in spec:
        spec["completions"] = 1
    spec.setdefault("parallelism", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed" if not spec.get("podFailurePolicy") else "Failed")
    template = spec.setdefault("template", {})
    if isinstance(template, dict):
        template.setdefault("spec", {})
        _default_template(spec)
    errors: list[tuple[str, str, str]] = []  # field, cause reason, message
    pod_spec = template.get("spec") if isinstance(template, dict) else None
    uid = metadata.get("uid")
    if not spec.get("manualSelector") and uid and isinstance(template, dict):
        # The registry's generateSelector: the job's own uid, so no other Job's pods can match.
        template_meta = template.setdefault("metadata", {})
        labels = template_meta.setdefault("labels", {})
        for key in CONTROLLER_UID_LABELS:
            labels[key] = str(uid)
        for key in JOB_NAME_LABELS:
            labels[key] = name
        spec.setdefault("selector", {"matchLabels": {CONTROLLER_UID_LABELS[0]: str(uid)}})
        if not metadata.get("labels"):
            # SetDefaults_Job: a Job without labels takes its template's.
            metadata["labels"] = dict(labels)
    elif spec.get("manualSelector") and not spec.get("selector"):
        errors.append(("spec.selector", "FieldValueRequired", "Required value"))
    for field in ("parallelism", "completions", "backoffLimit", "activeDeadlineSeconds"):
        _non_negative(spec, field, errors)
    if not isinstance(pod_spec, dict) or not pod_spec.get("containers"):
        errors.append(("spec.template.spec.containers", "FieldValueRequired", "Required value"))
    policy = pod_spec.get("restartPolicy") if isinstance(pod_spec, dict) else None
    if policy not in ("OnFailure", "Never"):
        errors.append(
            (
                "spec.template.spec.restartPolicy",
                "FieldValueNotSupported",
                f'Unsupported value: "{policy or ""}": supported values: "OnFailure", "Never"',
            )
        )
    if errors:
        raise FieldsInvalid(JOBS, name, errors)
    return obj


def admit(resource: Resource, obj: Obj, *, creating: bool) -> Obj:
    """``obj`` as it is stored; a copy when anything is filled in."""
    if resource is PODS:
        return admit_pod(obj) if creating else obj
    if resource is JOBS:
        return _admit_job(obj)
    if resource is HORIZONTAL_POD_AUTOSCALERS:
        return _admit_autoscaler(obj)
    if resource not in (DEPLOYMENTS, REPLICA_SETS, DAEMON_SETS, STATEFUL_SETS):
        return obj
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return obj
    obj = copy.deepcopy(obj)
    spec = obj["spec"]
    if resource is DAEMON_SETS:
        strategy = spec.setdefault("updateStrategy", {})
        if isinstance(strategy, dict):
            strategy.setdefault("type", "RollingUpdate")
            if strategy["type"] == "RollingUpdate":
                rolling = strategy.setdefault("rollingUpdate", {})
                if isinstance(rolling, dict):
                    rolling.setdefault("maxUnavailable", 1)
                    rolling.setdefault("maxSurge", 0)
        spec.setdefault("revisionHistoryLimit", 10)
    else:
        spec.setdefault("replicas", 1)
    if resource is STATEFUL_SETS:
        spec.setdefault("podManagementPolicy", "OrderedReady")
        strategy = spec.setdefault("updateStrategy", {})
        if isinstance(strategy, dict):
            strategy.setdefault("type", "RollingUpdate")
            if strategy["type"] == "RollingUpdate":
                rolling = strategy.setdefault("rollingUpdate", {})
                if isinstance(rolling, dict):
                    rolling.setdefault("partition", 0)
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("persistentVolumeClaimRetentionPolicy", {"whenDeleted": "Retain", "whenScaled": "Retain"})
    if resource is DEPLOYMENTS:
        strategy = spec.setdefault("strategy", {})
        if isinstance(strategy, dict):
            strategy.setdefault("type", "RollingUpdate")
            if strategy["type"] == "RollingUpdate":
                rolling = strategy.setdefault("rollingUpdate", {})
                if isinstance(rolling, dict):
                    rolling.setdefault("maxUnavailable", "25%")
                    rolling.setdefault("maxSurge", "25%")
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
    _default_template(spec)
    return obj
