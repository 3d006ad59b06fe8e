"""The API's cluster bodies: each Kubernetes cluster of the inventory (``kind: Cluster``) with the sites it holds
and its health as the controller's probe last found it. Built by ``routes/clusters.py`` from the inventory and
the gateway's records (``k8s.health.ClusterHealth``); times ISO 8601 in UTC, as everywhere in the API."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from edgefleet.cloud.api.schemas import _Public, utc, utc_or_none
from edgefleet.cloud.auditing import Audit, Rule
from edgefleet.cloud.k8s.health import ClusterHealth
from edgefleet.inventory import Cluster, ClusterRole, Site
from edgefleet.policies import ClusterPolicy


class ClusterPublic(_Public):
    name: str
    role: ClusterRole = Field(description="kubeedge-host: holds transfer centers' nodes; central: a central cluster.")
    context: str = Field(description="The kubeconfig context the controller reaches the cluster through.")
    region: str
    sites: list[str] = Field(description="The sites whose nodes the cluster holds, by id.")
    reachable: bool | None = Field(
        description="Whether the last probe reached the cluster's API server; null before the first probe."
    )
    latency_ms: float | None = Field(description="How long the last successful probe took (GET /version).")
    version: str | None = Field(description="The API server's version (gitVersion), from the last successful probe.")
    checked_at: datetime | None = Field(description="When the controller last probed the cluster.")
    last_success_at: datetime | None = Field(description="When a probe last reached the cluster.")
    last_error: str | None = Field(
        description="The last failed call that says something about the cluster (unreachable, timed out, refused "
        "credentials, a missing kubeconfig context); it stays after the cluster recovers, with last_error_at."
    )
    last_error_at: datetime | None
    timezone: str | None = Field(default=None, description="The cluster's local time zone (its policy's windows).")
    policy: list[str] = Field(
        default_factory=list, description="The cluster's platform policy in words, one part a line; empty: none."
    )


def policy_lines(policy: ClusterPolicy) -> list[str]:
    """The policy as people read it: ``overcommit cpu 10, memory 1.5``, ``exclusive bigdata 00:00-06:00 ...``."""
    out = []
    ratios = [f"{r} {float(v):g}" for r, v in (("cpu", policy.ratios.cpu), ("memory", policy.ratios.memory)) if v]
    if ratios:
        out.append("overcommit " + ", ".join(ratios))
    for name, labels in sorted(policy.host_groups.items()):
        out.append(f"host group {name}: " + ",".join(f"{k}={v}" for k, v in sorted(labels.items())))
    if policy.host_group is not None:
        out.append(f"workloads on host group {policy.host_group}")
    for e in policy.exclusive:
        who = ", ".join([*e.namespaces, *(f"app {a}" for a in e.apps)])
        out.append(f"exclusive {e.host_group} {e.window if e.window is not None else 'always'} for {who}")
    for name, apps in sorted(policy.anti_affinity.items()):
        out.append(f"anti-affinity {name}: {', '.join(apps)}")
    if policy.events:
        out.append(f"{len(policy.events)} event forwarding rule(s)")
    for name, own in sorted(policy.namespaces.items()):
        parts = []
        if own.ratios is not None:
            parts += [f"{r} {float(v):g}" for r, v in (("cpu", own.ratios.cpu), ("memory", own.ratios.memory)) if v]
        if own.host_group is not None:
            parts.append(f"host group {own.host_group}")
        if not own.audit:
            parts.append("not audited")
        out.append(f"namespace {name}: {', '.join(parts) or 'as the cluster'}")
    return out


class FindingPublic(_Public):
    namespace: str
    kind: str = Field(description="Deployment, DaemonSet or Pod.")
    name: str
    rule: Rule = Field(
        description="off-ratio: requests are not limits / ratio; no-anti-affinity: an app of an anti-affinity "
        "group does not avoid the others; exclusive-host: a pod on an exclusive host while it is kept for others."
    )
    message: str


class ClusterAuditPublic(_Public):
    cluster: str
    checked_at: datetime = Field(description="When the cluster was read.")
    local_time: str = Field(description="The cluster's local time then (its exclusive windows are in it).")
    has_policy: bool = Field(description="Whether the cluster has a policy at all; without one nothing breaks it.")
    workloads: int = Field(description="Deployments and DaemonSets read.")
    pods: int
    findings: list[FindingPublic] = Field(description="Every break of the policy, by namespace, kind and name.")


def audit_public(audit: Audit) -> ClusterAuditPublic:
    return ClusterAuditPublic(
        cluster=audit.cluster,
        checked_at=utc(audit.at),
        local_time=audit.local.isoformat(timespec="minutes"),
        has_policy=audit.has_policy,
        workloads=audit.workloads,
        pods=audit.pods,
        findings=[
            FindingPublic(namespace=f.namespace, kind=f.kind, name=f.name, rule=f.rule, message=f.message)
            for f in audit.findings
        ],
    )


def cluster_public(cluster: Cluster, sites: list[Site], health: ClusterHealth | None) -> ClusterPublic:
    known = health if health is not None else ClusterHealth(cluster.id, cluster.context)
    return ClusterPublic(
        name=cluster.id,
        role=cluster.role,
        context=cluster.context,
        region=cluster.region,
        sites=sorted(s.id for s in sites),
        reachable=known.reachable,
        latency_ms=None if known.latency_s is None else round(known.latency_s * 1000.0, 3),
        version=known.version,
        checked_at=utc_or_none(known.checked_at),
        last_success_at=utc_or_none(known.last_success_at),
        last_error=known.last_error,
        last_error_at=utc_or_none(known.last_error_at),
        timezone=cluster.timezone,
        policy=policy_lines(cluster.policy),
    )
