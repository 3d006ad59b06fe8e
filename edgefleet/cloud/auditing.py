"""The policy audit of a central cluster (``edgefleet clusters audit C``, ``GET /api/v1/clusters/{name}/audit``):
every workload and pod in the cluster that breaks its platform policy (``edgefleet.policies``), whoever deployed
it. The audit only reads: what edgefleet does not deploy is never changed.

``find_violations(policy, workloads, pods, nodes, local=...)`` is pure, over what the gateway lists; ``local`` is
the cluster's local time (the exclusive windows are in it). It finds, in every namespace the policy audits:

- ``off-ratio``: a container whose CPU or memory request is not its limit divided by the namespace's ratio, within
  the rounding unit (a millicore, a Mi). A request left out counts as the limit, as Kubernetes defaults it.
- ``no-anti-affinity``: a workload of an app in an anti-affinity group whose pods do not avoid (preferred or
  required, by host) every other app of the group.
- ``exclusive-host``: a pod on a node of an exclusive host group while the group is kept (its window is open, or
  it has none) that the group is not kept for (its namespace or app is not granted).

The workloads are every kind with a pod template (``WORKLOAD_KINDS``: Deployments, DaemonSets, StatefulSets and
Jobs), each judged by its template. A finished Job (condition Complete or Failed) is left out: its pods hold
nothing and none will start again, so its template breaks nothing any more; its pods, finished, are left out of
``exclusive-host`` likewise.

``audit_cluster`` is the shell: it lists through the gateway and reads the clock.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from edgefleet.clock import Clock
from edgefleet.cloud.k8s.gateway import ClusterGateway, Kind
from edgefleet.ids import ClusterId
from edgefleet.inventory import Cluster
from edgefleet.policies import (
    APP_LABEL,
    OVERCOMMITTED,
    ClusterPolicy,
    format_quantity,
    parse_quantity,
    request_for,
    unit_of,
)

Rule = Literal["off-ratio", "no-anti-affinity", "exclusive-host"]
RULES: Final[tuple[Rule, ...]] = ("off-ratio", "no-anti-affinity", "exclusive-host")
HOSTNAME_KEY: Final = "kubernetes.io/hostname"
# Phases of a pod that holds no node any more.
_DONE: Final = frozenset({"Succeeded", "Failed"})
# The kinds whose pod templates the audit reads, in the order it lists them.
WORKLOAD_KINDS: Final[tuple[Kind, ...]] = ("Deployment", "DaemonSet", "StatefulSet", "Job")


@dataclass(frozen=True, slots=True, order=True)
class Finding:
    """One break of the policy: what (kind, namespace, name), which rule, and why in words."""

    namespace: str
    kind: str
    name: str
    rule: Rule
    message: str


def _labels(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Whether a label selector (matchLabels and matchExpressions) selects ``labels``; an empty one selects all,
    a missing one nothing (the API server's rule for affinity terms)."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression.get("key"), expression.get("operator"), expression.get("values") or []
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def _off_ratio(policy: ClusterPolicy, kind: str, workload: Mapping[str, Any]) -> list[Finding]:
    metadata = workload["metadata"]
    namespace, name = str(metadata.get("namespace") or "default"), str(metadata["name"])
    ratios = policy.ratios_in(namespace)
    containers = (((workload.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
    out = []
    for container in containers:
        resources = container.get("resources") or {}
        limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
        for resource in OVERCOMMITTED:
            ratio, limit_text = ratios.of(resource), limits.get(resource)
            if ratio is None or limit_text is None:
                continue
            request_text = requests.get(resource, limit_text)
            try:
                limit, request = parse_quantity(str(limit_text)), parse_quantity(str(request_text))
            except ValueError as exc:
                out.append(Finding(namespace, kind, name, "off-ratio", f"container {container.get('name')}: {exc}"))
                continue
            expected = request_for(resource, limit, ratio)
            if abs(request - expected) > unit_of(resource):
                out.append(
                    Finding(
                        namespace,
                        kind,
                        name,
                        "off-ratio",
                        f"container {container.get('name')}: {resource} request {request_text} is not its limit "
                        f"{limit_text} / {float(ratio):g} (about {format_quantity(resource, expected)})",
                    )
                )
    return out


def _avoids(pod_spec: Mapping[str, Any], app: str) -> bool:
    """Whether the pod spec's anti-affinity (preferred or required) keeps its pods off hosts running ``app``."""
    anti = (pod_spec.get("affinity") or {}).get("podAntiAffinity") or {}
    terms = [t.get("podAffinityTerm") or {} for t in anti.get("preferredDuringSchedulingIgnoredDuringExecution") or []]
    terms += list(anti.get("requiredDuringSchedulingIgnoredDuringExecution") or [])
    return any(
        t.get("topologyKey") == HOSTNAME_KEY and selects(t.get("labelSelector"), {APP_LABEL: app}) for t in terms
    )


def _no_anti_affinity(policy: ClusterPolicy, kind: str, workload: Mapping[str, Any]) -> list[Finding]:
    template = (workload.get("spec") or {}).get("template") or {}
    app = _labels(template).get(APP_LABEL)
    if app is None:
        return []
    missing = [other for other in policy.avoided_by(app) if not _avoids(template.get("spec") or {}, other)]
    if not missing:
        return []
    metadata = workload["metadata"]
    return [
        Finding(
            str(metadata.get("namespace") or "default"),
            kind,
            str(metadata["name"]),
            "no-anti-affinity",
            f"app {app} should avoid the hosts of {', '.join(missing)} (anti-affinity group); its pods do not",
        )
    ]


def _exclusive_hosts(
    policy: ClusterPolicy, pods: Iterable[Mapping[str, Any]], nodes: Iterable[Mapping[str, Any]], local: dt.datetime
) -> list[Finding]:
    kept: dict[str, list[int]] = {}  # node name -> indexes of the exclusive entries keeping it now
    for node in nodes:
        labels = _labels(node)
        for i, entry in enumerate(policy.exclusive):
            group = policy.host_groups.get(entry.host_group, {})
            if entry.open_at(local) and group and all(labels.get(k) == v for k, v in group.items()):
                kept.setdefault(str(node["metadata"]["name"]), []).append(i)
    out = []
    for pod in pods:
        metadata, spec = pod["metadata"], pod.get("spec") or {}
        namespace, on = str(metadata.get("namespace") or "default"), str(spec.get("nodeName") or "")
        if on not in kept or not policy.audited(namespace) or (pod.get("status") or {}).get("phase") in _DONE:
            continue
        app = _labels(pod).get(APP_LABEL)
        for i in kept[on]:
            entry = policy.exclusive[i]
            if entry.admits(namespace, app):
                continue
            when = f"from {entry.window} ({local:%H:%M} now)" if entry.window is not None else "always"
            out.append(
                Finding(
                    namespace,
                    "Pod",
                    str(metadata["name"]),
                    "exclusive-host",
                    f"runs on {on}, of host group {entry.host_group}, kept {when} for "
                    f"{_granted(entry.namespaces, entry.apps)}",
                )
            )
    return out


def _granted(namespaces: tuple[str, ...], apps: tuple[str, ...]) -> str:
    parts = ([f"namespaces {', '.join(namespaces)}"] if namespaces else []) + (
        [f"apps {', '.join(apps)}"] if apps else []
    )
    return " and ".join(parts)


def finished_job(kind: str, workload: Mapping[str, Any]) -> bool:
    """A Job that is Complete or Failed: it will start no pod again."""
    conditions = (workload.get("status") or {}).get("conditions") or []
    return kind == "Job" and any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True" for c in conditions
    )


def find_violations(
    policy: ClusterPolicy,
    workloads: Iterable[tuple[str, Mapping[str, Any]]],
    pods: Iterable[Mapping[str, Any]],
    nodes: Iterable[Mapping[str, Any]],
    *,
    local: dt.datetime,
) -> list[Finding]:
    """Every break of ``policy`` among ``workloads`` ((kind, object) pairs), ``pods`` and ``nodes`` at the
    cluster-local time ``local``, sorted by namespace, kind, name and rule; pure."""
    out: list[Finding] = []
    for kind, workload in workloads:
        namespace = str(workload["metadata"].get("namespace") or "default")
        if not policy.audited(namespace) or finished_job(kind, workload):
            continue
        out += _off_ratio(policy, kind, workload)
        out += _no_anti_affinity(policy, kind, workload)
    out += _exclusive_hosts(policy, pods, nodes, local)
    return sorted(out)


@dataclass(frozen=True, slots=True)
class Audit:
    cluster: ClusterId
    # When the cluster was read (epoch seconds) and its local time then.
    at: float
    local: dt.datetime
    # Whether the cluster has a policy at all (without one nothing can break it).
    has_policy: bool
    workloads: int
    pods: int
    findings: list[Finding]


def local_time(cluster: Cluster, at: float) -> dt.datetime:
    zone = zoneinfo.ZoneInfo(cluster.timezone) if cluster.timezone is not None else dt.UTC
    return dt.datetime.fromtimestamp(at, zone)


def audit_cluster(gateway: ClusterGateway, cluster: Cluster, *, clock: Clock) -> Audit:
    """Reads the cluster's workloads of every ``WORKLOAD_KINDS``, pods and nodes through the gateway and finds what
    breaks its policy; raises the gateway's ClusterError when the cluster cannot be read."""
    workloads: list[tuple[str, Mapping[str, Any]]] = [
        (kind, obj) for kind in WORKLOAD_KINDS for obj in gateway.list_objects(cluster.id, kind).items
    ]
    pods = gateway.list_objects(cluster.id, "Pod").items
    nodes = gateway.list_objects(cluster.id, "Node").items
    at = clock.now()
    local = local_time(cluster, at)
    findings = find_violations(cluster.policy, workloads, pods, nodes, local=local)
    return Audit(cluster.id, at, local, cluster.policy != ClusterPolicy(), len(workloads), len(pods), findings)
