"""The API's cluster bodies: each Kubernetes cluster of the inventory (``kind: Cluster``) with the sites it holds
and its health as the controller's probe last found it. Built by ``routes/clusters.py`` from the inventory and
the gateway's records (``k8s.health.ClusterHealth``); times ISO 8601 in UTC, as everywhere in the API."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from edgefleet.cloud.api.schemas import _Public, utc_or_none
from edgefleet.cloud.k8s.health import ClusterHealth
from edgefleet.inventory import Cluster, ClusterRole, Site


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
    )
