"""The API's cluster bodies: each Kubernetes cluster of the inventory (``kind: Cluster``) with the sites it holds
and its health as the controller's probe last found it. Built by ``routes/clusters.py`` from the inventory and
the gateway's records (``k8s.health.ClusterHealth``); times ISO 8601 in UTC, as everywhere in the API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from edgefleet.cloud.api.fields import PRINTABLE, Name
from edgefleet.cloud.api.schemas import _Public, utc, utc_or_none
from edgefleet.cloud.auditing import Audit, Rule
from edgefleet.cloud.cluster_gpus import GpuView
from edgefleet.cloud.k8s.health import ClusterHealth
from edgefleet.cloud.restarting import Target
from edgefleet.cloud.restarts import RestartJob
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


class GpuReadingPublic(_Public):
    index: int
    name: str
    utilization_percent: float | None
    temperature_c: float | None
    memory_used_bytes: int | None
    memory_total_bytes: int | None


class NodeGpusPublic(_Public):
    node: str
    allocatable: int = Field(description="The node's status.allocatable['nvidia.com/gpu'].")
    requested: int = Field(description="GPUs its pods (not finished) request.")
    box: str | None = Field(description="The box whose node this is; null when no box of the cluster's sites is.")
    seen_at: datetime | None = Field(description="When the controller received the box's latest heartbeat.")
    agent_reason: str | None = Field(description="Why the box's agent reports no GPU, when it says so.")
    gpus: list[GpuReadingPublic] = Field(description="The GPUs of the box's latest heartbeat; empty: none heard.")


class NamespaceGpusPublic(_Public):
    namespace: str
    requested: int = Field(description="GPUs its pods bound to a node request.")
    pending: int = Field(description="GPUs its pods not bound to a node yet request.")
    pods: int = Field(description="Its pods (not finished) that request GPUs.")


class ClusterGpusPublic(_Public):
    cluster: str
    checked_at: datetime = Field(description="When the cluster was read.")
    allocatable: int
    requested: int
    nodes: list[NodeGpusPublic] = Field(description="Nodes with GPUs allocatable or requested, by name.")
    namespaces: list[NamespaceGpusPublic] = Field(description="Namespaces whose pods request GPUs, by name.")
    problems: list[str] = Field(description="GPU quantities that could not be read (counted as 0).")


def gpus_public(cluster: str, view: GpuView, *, at: float) -> ClusterGpusPublic:
    return ClusterGpusPublic(
        cluster=cluster,
        checked_at=utc(at),
        allocatable=view.allocatable,
        requested=view.requested,
        nodes=[
            NodeGpusPublic(
                node=n.node,
                allocatable=n.allocatable,
                requested=n.requested,
                box=n.box,
                seen_at=utc_or_none(n.seen_at),
                agent_reason=n.agent_reason,
                gpus=[
                    GpuReadingPublic(
                        index=g.index,
                        name=g.name,
                        utilization_percent=g.utilization_percent,
                        temperature_c=g.temperature_c,
                        memory_used_bytes=g.memory_used_bytes,
                        memory_total_bytes=g.memory_total_bytes,
                    )
                    for g in n.gpus
                ],
            )
            for n in view.nodes
        ],
        namespaces=[
            NamespaceGpusPublic(namespace=ns.namespace, requested=ns.requested, pending=ns.pending, pods=ns.pods)
            for ns in view.namespaces
        ],
        problems=list(view.problems),
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


# --- batch restart ------------------------------------------------------------------------------------------------

# A label selector as kubectl takes it (the API server parses it; a bad one comes back as its 400).
Selector = Annotated[str, StringConstraints(min_length=1, max_length=1000, pattern=PRINTABLE)]
# More than this many Deployments rolling at once is no batch any more.
MAX_IN_FLIGHT: Final = 50


class RestartRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    namespace: Name | None = Field(default=None, description="Only this namespace's Deployments (default: all).")
    selector: Selector | None = Field(default=None, description="Only the Deployments this label selector matches.")
    max_in_flight: int = Field(default=1, ge=1, le=MAX_IN_FLIGHT, description="Deployments restarted at once.")
    dry_run: bool = Field(default=False, description="Only say which Deployments a restart would touch now.")
    expect: int | None = Field(
        default=None,
        ge=0,
        description="The number of Deployments the caller confirmed (from a dry run); a restart whose selection "
        "holds another number now is refused with 409, so a confirmation never covers more than was shown.",
    )


class RestartStepPublic(_Public):
    deployment: str = Field(description="namespace/name")
    state: Literal["restarting", "rolled-out", "failed"]
    at: datetime
    message: str


class RestartPublic(_Public):
    id: str | None = Field(description="The restart's id (null for a dry run).")
    cluster: str
    state: Literal["planned", "running", "done", "failed"]
    by: str
    max_in_flight: int
    deployments: list[str] = Field(
        description="Every Deployment of the restart, in the order they go (namespace/name)."
    )
    steps: list[RestartStepPublic] = Field(description="What happened so far, in order.")
    failed: str | None = Field(description="The Deployment the restart stopped at.")
    reason: str | None = Field(description="Why it stopped (kubectl's message, or the cluster's error).")
    not_started: list[str] = Field(description="Deployments never restarted because the restart stopped.")


def restart_public(
    job: RestartJob | None, *, cluster: str, targets: list[Target], by: str, max_in_flight: int
) -> RestartPublic:
    if job is None:
        return RestartPublic(
            id=None, cluster=cluster, state="planned", by=by, max_in_flight=max_in_flight,
            deployments=[str(t) for t in targets], steps=[], failed=None, reason=None, not_started=[],
        )  # fmt: skip
    outcome = job.outcome
    return RestartPublic(
        id=job.id,
        cluster=job.cluster,
        state=job.state,
        by=job.who,
        max_in_flight=job.max_in_flight,
        deployments=[str(t) for t in job.targets],
        steps=[
            RestartStepPublic(deployment=str(s.target), state=s.state, at=utc(s.at), message=s.message)
            for s in list(job.steps)
        ],
        failed=str(outcome.failed) if outcome is not None and outcome.failed is not None else None,
        reason=(outcome.reason if outcome is not None else None) or job.error,
        not_started=[str(t) for t in outcome.not_started] if outcome is not None else [],
    )
