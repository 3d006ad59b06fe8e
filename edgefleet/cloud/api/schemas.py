"""The API's response bodies, in the users' words (site, box, health, heartbeat), and how they are built from
the inventory and the live fleet state.

Times are ISO 8601 in UTC; durations are seconds (``*_s``); percentages are 0-100. Only these models leave the
API: the fleet state's own classes and the wire messages stay inside. Used by the routes in ``routes/``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from edgefleet.cloud.fleet import (
    BoxLive,
    HealthPoint,
    Reachability,
    ReachabilityState,
    SiteHealth,
    SiteSummary,
    UnknownBox,
    health_point,
)
from edgefleet.cloud.leading import LeaderView, describe_holder
from edgefleet.cloud.nodes import NODE_STATES, NodeState, NodeStateName, count_ready
from edgefleet.inventory import Box, BoxRole, Site, SiteKind
from edgefleet.messages import AppRunState


def utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=UTC)


def utc_or_none(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else utc(timestamp)


class _Public(BaseModel):
    # Read straight from the wire messages' msgspec structs and the fleet state's dataclasses.
    model_config = ConfigDict(from_attributes=True)


class ErrorDetail(_Public):
    code: str = Field(description="A stable word to branch on: not-found, invalid-request, forbidden, internal.")
    message: str = Field(description="What went wrong and what to do about it.")


class ErrorBody(_Public):
    error: ErrorDetail


_ERROR_MEANINGS: Final = {
    401: "No valid API token (none, unknown, expired or revoked); the message says how to get one.",
    403: "The caller's role may not do this, or it is scoped to sites and this is fleet-wide.",
    413: "The request body is larger than the controller takes.",
    429: "Too many unknown tokens from this address; Retry-After says when to try again.",
    404: "No such site, box or cluster in the inventory.",
    422: "A parameter is invalid; the message names it.",
    409: "The request is right but conflicts with the state the controller is in; the message says what to do.",
    500: "The controller failed to answer; its log has the details.",
    503: "The database cannot be used now; the message says what to check.",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI documentation of the error answers a route or router may give."""
    return {status: {"model": ErrorBody, "description": _ERROR_MEANINGS[status]} for status in statuses}


# --- sites ----------------------------------------------------------------------------------------------


class SitePublic(_Public):
    id: str
    display_name: str
    kind: SiteKind
    region: str
    timezone: str = Field(description="IANA time zone of the site, for its local working hours.")
    cluster: str = Field(description="The Kubernetes cluster that holds the site's nodes (a kind: Cluster manifest).")
    boxes_total: int
    boxes_online: int
    health: SiteHealth = Field(
        description="ok: every box online; degraded: some offline; unreachable: none online; unknown: none seen yet."
    )
    nodes_ready: int | None = Field(
        description="How many of the boxes' Kubernetes nodes are Ready; null when the controller does not watch "
        "the site's cluster (no gateway, not listed yet, or its watch failed)."
    )


class SiteDetail(SitePublic):
    node_group: str | None = Field(
        description="A transfer center's KubeEdge node group: its nodes carry apps.kubeedge.io/belonging-to=<group>. "
        "None for a central site, which is its whole cluster."
    )
    heartbeat_interval_s: float
    missed_beats: int = Field(description="Heartbeats a box may miss before it counts as offline.")
    boxes_by_state: dict[ReachabilityState, int]
    nodes_by_state: dict[NodeStateName, int] = Field(
        description="The boxes' Kubernetes nodes by state: ready, not-ready, unknown, missing, not-watched."
    )


# --- boxes ----------------------------------------------------------------------------------------------


class GpuSpecPublic(_Public):
    """The GPU the inventory says the box has."""

    model: str
    count: int
    driver_version: str


class ReachabilityPublic(_Public):
    state: ReachabilityState
    reason: str = Field(description="Why: connected, heartbeat-timeout, connection-lost, shutdown, never-seen, ...")
    since: datetime | None = Field(
        description="When the box was last known alive: receive time of its latest heartbeat (null: never)."
    )


class TaintPublic(_Public):
    key: str
    effect: str = Field(description="NoSchedule, PreferNoSchedule or NoExecute.")


class NodePublic(_Public):
    """The box's Kubernetes node as the controller's node watch last saw it: the second signal beside the
    agent's reachability."""

    state: NodeStateName = Field(
        description="ready, not-ready, unknown (the Ready condition True, False, Unknown); missing: the cluster "
        "has no node of that name; not-watched: the controller does not know (no gateway, cluster not listed yet, "
        "or its watch failed)."
    )
    reason: str = Field(description="The Ready condition's reason (KubeletReady, NodeStatusUnknown...), or ours.")
    since: datetime | None = Field(description="When the node entered this state (null: not known).")
    name: str = Field(description="The node's name in its cluster (the box id unless the manifest says nodeName).")
    cluster: str
    taints: list[TaintPublic]
    unschedulable: bool = Field(description="Cordoned: no new pods are scheduled on it.")
    last_seen: datetime | None = Field(description="When the controller last received the node from its cluster.")


class HostPublic(_Public):
    cpu_percent: float | None
    load1: float | None
    load5: float | None
    load15: float | None
    memory_total_bytes: int | None
    memory_available_bytes: int | None
    disk_path: str
    disk_total_bytes: int | None
    disk_free_bytes: int | None


class GpuPublic(_Public):
    index: int
    name: str
    uuid: str
    utilization_percent: float | None
    memory_used_bytes: int | None
    memory_total_bytes: int | None
    temperature_c: float | None
    power_w: float | None
    throttle_reasons: list[str]
    ecc_corrected_errors: int | None
    ecc_uncorrected_errors: int | None


class GpuReportPublic(_Public):
    available: bool
    reason: str | None = Field(description="Why there are no GPU readings (no driver, no NVML, no GPU).")
    driver_version: str | None
    gpus: list[GpuPublic]


class AppPublic(_Public):
    name: str
    version: str
    state: AppRunState
    detail: str | None
    figures: dict[str, float] | None = Field(
        default=None,
        description="The app's health figures as the box last reported them (upload_backlog, error_rate_percent, "
        "fps, inference_latency_ms; docs/protocol.md); absent when it reports none.",
    )


class AppReportPublic(_Public):
    source: str = Field(description="Where the box read its apps: file:<path>, metaserver:<url> or none.")
    error: str | None
    apps: list[AppPublic]


class HeartbeatPublic(_Public):
    """The box's latest heartbeat as it sent it."""

    sent_at: datetime = Field(description="By the box's own clock; see clock_skew_s.")
    interval_s: float
    uptime_s: float
    host: HostPublic
    gpu: GpuReportPublic
    apps: AppReportPublic


class BoxPublic(_Public):
    id: str
    site: str
    role: BoxRole
    model: str | None
    gpu: GpuSpecPublic | None
    reachability: ReachabilityPublic
    node: NodePublic
    last_seen: datetime | None = Field(description="When the controller last received a heartbeat (its own clock).")
    last_seen_age_s: float | None = Field(description="Seconds from last_seen to the time of this answer.")
    clock_skew_s: float | None = Field(description="The box's clock minus the controller's, at its latest heartbeat.")
    boot: str | None = Field(description="Id of the agent's current run; new at each agent start.")
    seq: int = Field(description="Sequence number of the latest heartbeat within this boot.")
    agent_version: str | None
    gpu_temperature_max_c: float | None = Field(description="The hottest GPU in the latest heartbeat.")
    gpu_utilization_avg_percent: float | None = Field(description="Mean utilisation of the GPUs, latest heartbeat.")
    latest: HeartbeatPublic | None = Field(description="The latest heartbeat's host, GPU and apps sections.")


class HealthPointPublic(_Public):
    at: datetime
    cpu_percent: float | None
    memory_used_percent: float | None
    disk_used_percent: float | None
    gpu_temperature_max_c: float | None
    gpu_utilization_avg_percent: float | None


class BoxDetail(BoxPublic):
    history_since: datetime
    history: list[HealthPointPublic] = Field(description="Health points from history_since on, oldest first.")


class UnknownBoxPublic(_Public):
    """A box that publishes but is in no site manifest: add it to sites/ or switch it off."""

    box: str
    claimed_site: str | None = Field(description="The site the box says it belongs to, if it said one.")
    enrolled_site: str | None = Field(
        default=None,
        description="The site whose enrollment token the box used (checked by the controller, unlike "
        "claimed_site): adopt it by adding it to that site's manifest. None: not enrolled.",
    )
    first_seen: datetime
    last_seen: datetime
    messages: int


# --- system ---------------------------------------------------------------------------------------------


class LeadershipPublic(_Public):
    role: Literal["leader", "standby"] = Field(
        description="leader: writes, alerts, delivers and reconciles; standby: serves reads and takes over when the "
        "leader's lease runs out (writes sent to it are forwarded to the leader)."
    )
    leader: str | None = Field(description="The leader as host, pid and since; null while nobody leads.")
    leader_address: str | None = Field(description="Where the leader's API listens; send writes there.")
    leader_since: datetime | None = Field(description="When the leader took over, by the database's clock.")
    epoch: int = Field(description="The fencing epoch: one more at every takeover.")
    lease_expires_in_s: float | None = Field(
        description="How long the leader's lease runs unless renewed (null on SQLite, where one controller leads)."
    )


class Healthz(_Public):
    status: Literal["ok", "degraded", "unavailable"] = Field(
        description="ok; degraded (200): serving, but the database refuses to save (problems says what waits in "
        "memory) or box silence is not judged now (hearing says why); unavailable (503): the broker or the "
        "database is away."
    )
    broker_connected: bool
    database_ok: bool = Field(description="The database answers and takes every save.")
    hearing: str = Field(description="hearing, recovering, behind or deaf: whether box silence is judged now.")
    inventory_version: str = Field(description="Content hash of the site manifests in force.")
    boxes_online: int
    boxes_total: int
    problems: list[str] = Field(description="What is down and what to check; empty when status is ok.")
    leadership: LeadershipPublic = Field(description="Whether this controller leads the database, and who does.")


class Livez(_Public):
    alive: bool = Field(description="Always true: the answer itself is the news.")


class Readyz(_Public):
    ready: bool = Field(description="The controller's database and broker connection are up: send it traffic.")
    problems: list[str] = Field(description="What is down and what to check; empty when ready.")


# --- builders -------------------------------------------------------------------------------------------


def leadership_public(view: LeaderView, *, leading: bool) -> LeadershipPublic:
    """``view`` as /healthz shows it; ``leading``: whether this controller runs the leader's part now."""
    return LeadershipPublic(
        role="leader" if leading else "standby",
        leader=describe_holder(view.leader) if view.leader is not None else None,
        leader_address=view.address,
        leader_since=datetime.fromtimestamp(view.since, UTC) if view.since is not None else None,
        epoch=view.epoch,
        lease_expires_in_s=view.expires_in_s,
    )


def site_public(site: Site, summary: SiteSummary, nodes: list[NodeState]) -> SitePublic:
    return SitePublic(
        id=site.id,
        display_name=site.display_name,
        kind=site.kind,
        region=site.region,
        timezone=site.timezone,
        cluster=site.cluster,
        boxes_total=summary.boxes_total,
        boxes_online=summary.boxes_online,
        health=summary.health,
        nodes_ready=count_ready(nodes),
    )


def site_detail(site: Site, summary: SiteSummary, nodes: list[NodeState]) -> SiteDetail:
    return SiteDetail(
        **site_public(site, summary, nodes).model_dump(),
        node_group=site.node_group,
        heartbeat_interval_s=site.interval_s,
        missed_beats=site.missed_beats,
        boxes_by_state={
            "online": summary.boxes_online,
            "offline": summary.boxes_offline,
            "never-seen": summary.boxes_never_seen,
        },
        nodes_by_state={state: sum(1 for n in nodes if n.state == state) for state in NODE_STATES},
    )


def node_public(node: NodeState) -> NodePublic:
    return NodePublic(
        state=node.state,
        reason=node.reason,
        since=utc_or_none(node.since),
        name=node.node,
        cluster=node.cluster,
        taints=[TaintPublic(key=t.key, effect=t.effect) for t in node.taints],
        unschedulable=node.unschedulable,
        last_seen=utc_or_none(node.seen_at),
    )


def box_public(box: Box, live: BoxLive, reachability: Reachability, node: NodeState, *, now: float) -> BoxPublic:
    heartbeat = live.heartbeat
    # The same figures the history charts show, so the latest point and the table never disagree.
    figures = health_point(heartbeat, at=now) if heartbeat is not None else None
    return BoxPublic(
        id=box.id,
        site=box.site,
        role=box.role,
        model=box.model,
        gpu=GpuSpecPublic.model_validate(box.gpu) if box.gpu is not None else None,
        reachability=ReachabilityPublic(
            state=reachability.state, reason=reachability.reason, since=utc_or_none(reachability.since)
        ),
        node=node_public(node),
        last_seen=utc_or_none(live.last_seen),
        last_seen_age_s=None if live.last_seen is None else max(0.0, now - live.last_seen),
        clock_skew_s=live.clock_skew_s,
        boot=live.boot,
        seq=live.seq,
        agent_version=heartbeat.agent_version if heartbeat is not None else None,
        gpu_temperature_max_c=figures.gpu_temperature_max_c if figures else None,
        gpu_utilization_avg_percent=figures.gpu_utilization_avg_percent if figures else None,
        latest=(
            HeartbeatPublic(
                sent_at=utc(heartbeat.sent_at),
                interval_s=heartbeat.interval_s,
                uptime_s=heartbeat.uptime_s,
                host=HostPublic.model_validate(heartbeat.host),
                gpu=GpuReportPublic.model_validate(heartbeat.gpu),
                apps=AppReportPublic.model_validate(heartbeat.apps),
            )
            if heartbeat is not None
            else None
        ),
    )


def health_point_public(point: HealthPoint) -> HealthPointPublic:
    return HealthPointPublic(
        at=utc(point.at),
        cpu_percent=point.cpu_percent,
        memory_used_percent=point.memory_used_percent,
        disk_used_percent=point.disk_used_percent,
        gpu_temperature_max_c=point.gpu_temperature_max_c,
        gpu_utilization_avg_percent=point.gpu_utilization_avg_percent,
    )


def unknown_box_public(unknown: UnknownBox, enrolled_site: str | None = None) -> UnknownBoxPublic:
    return UnknownBoxPublic(
        box=unknown.box,
        claimed_site=unknown.claimed_site,
        enrolled_site=enrolled_site,
        first_seen=utc(unknown.first_seen),
        last_seen=utc(unknown.last_seen),
        messages=unknown.messages,
    )
