"""A central cluster's platform policy (``edgefleet.policies``) laid onto the workloads a release renders there, and
the release's autoscaling as a HorizontalPodAutoscaler. Pure; called by ``rendering.render`` for central sites.

What a workload in namespace N of a central cluster gets (N's overrides first, then the cluster's policy):

- each container's CPU and memory requests computed from its limits by the ratios (``requests_from_limits``);
  a resource without a limit or a ratio keeps the request the release gives;
- node affinity (required) to N's host group, when the policy names one;
- a toleration of ``edgefleet.io/exclusive=<group>:NoSchedule`` for every exclusive host group it may use, so it
  is scheduled there while the group is kept (the taint keeps every other workload off);
- soft pod anti-affinity (preferred, by host) to every other app of its anti-affinity groups.

A release's ``spec.autoscaling`` becomes an ``autoscaling/v2`` HorizontalPodAutoscaler of the app's Deployment,
named as it; the Deployment then leaves ``replicas`` out, so applying a release never undoes the autoscaler.
"""

from __future__ import annotations

import copy
from typing import Any, Final

from edgefleet.policies import APP_LABEL, EXCLUSIVE_EFFECT, EXCLUSIVE_TAINT, ClusterPolicy, requests_from_limits
from edgefleet.releases import Autoscaling

WORKLOAD_KINDS: Final = ("Deployment", "DaemonSet", "StatefulSet")
HOSTNAME_KEY: Final = "kubernetes.io/hostname"
# Preferred terms weigh 1-100; the policy's anti-affinity is the one preference edgefleet sets, so it weighs most.
ANTI_AFFINITY_WEIGHT: Final = 100


def exclusive_toleration(host_group: str) -> dict[str, str]:
    return {"key": EXCLUSIVE_TAINT, "operator": "Equal", "value": host_group, "effect": EXCLUSIVE_EFFECT}


def host_group_affinity(labels: dict[str, str]) -> dict[str, Any]:
    """Required node affinity to the nodes carrying every label of a host group."""
    expressions = [{"key": k, "operator": "In", "values": [v]} for k, v in sorted(labels.items())]
    return {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": expressions}]}
    }


def anti_affinity_term(apps: list[str]) -> dict[str, Any]:
    """A preferred pod anti-affinity term: avoid nodes running any of ``apps``."""
    return {
        "weight": ANTI_AFFINITY_WEIGHT,
        "podAffinityTerm": {
            "labelSelector": {"matchExpressions": [{"key": APP_LABEL, "operator": "In", "values": list(apps)}]},
            "topologyKey": HOSTNAME_KEY,
        },
    }


def with_policy(workload: dict[str, Any], policy: ClusterPolicy) -> dict[str, Any]:
    """``workload`` (a Deployment, DaemonSet or StatefulSet) as the policy of its namespace wants it; a copy."""
    out = copy.deepcopy(workload)
    if out.get("kind") not in WORKLOAD_KINDS:
        return out
    namespace = str(out["metadata"].get("namespace") or "default")
    template = out["spec"]["template"]
    pod = template["spec"]
    app = (template.get("metadata") or {}).get("labels", {}).get(APP_LABEL)
    ratios = policy.ratios_in(namespace)
    for container in pod.get("containers", []):
        resources = container.get("resources") or {}
        limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
        computed = requests_from_limits(limits, requests, ratios)
        if computed:
            container["resources"] = {**resources, "requests": computed}
    affinity = pod.setdefault("affinity", {})
    group = policy.host_group_in(namespace)
    if group is not None:
        affinity["nodeAffinity"] = host_group_affinity(dict(policy.host_groups[group]))
    tolerations = pod.setdefault("tolerations", [])
    for exclusive in policy.exclusive_for(namespace, app):
        toleration = exclusive_toleration(exclusive.host_group)
        if toleration not in tolerations:
            tolerations.append(toleration)
    avoided = policy.avoided_by(app) if app is not None else []
    if avoided:
        anti = affinity.setdefault("podAntiAffinity", {})
        anti.setdefault("preferredDuringSchedulingIgnoredDuringExecution", []).append(anti_affinity_term(avoided))
    if not affinity:
        del pod["affinity"]
    if not tolerations:
        del pod["tolerations"]
    return out


def autoscaler(deployment: dict[str, Any], autoscaling: Autoscaling) -> dict[str, Any]:
    """The ``autoscaling/v2`` HorizontalPodAutoscaler of ``deployment``, named and labelled as it."""
    metrics = [
        {"type": "Resource", "resource": {"name": name, "target": {"type": "Utilization", "averageUtilization": value}}}
        for name, value in (("cpu", autoscaling.cpu_utilization), ("memory", autoscaling.memory_utilization))
        if value is not None
    ]
    metadata = deployment["metadata"]
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": metadata["name"], "namespace": metadata["namespace"], "labels": dict(metadata["labels"])},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": metadata["name"]},
            "minReplicas": autoscaling.min_replicas,
            "maxReplicas": autoscaling.max_replicas,
            "metrics": metrics,
        },
    }


def central(
    manifests: list[dict[str, Any]], policy: ClusterPolicy, autoscaling: Autoscaling | None
) -> list[dict[str, Any]]:
    """A release's manifests at a central site: every workload under the policy, and each Deployment followed by
    its autoscaler when the release scales (the Deployment leaving ``replicas`` to it)."""
    out: list[dict[str, Any]] = []
    for manifest in manifests:
        shaped = with_policy(manifest, policy)
        out.append(shaped)
        if autoscaling is not None and shaped.get("kind") == "Deployment":
            shaped["spec"].pop("replicas", None)
            out.append(autoscaler(shaped, autoscaling))
    return out
