"""``/api/v1/clusters``: every Kubernetes cluster of the inventory with its sites, health (reachable, latency,
version, last error) and policy, and one cluster. The list pages with a cursor (``paging``), as the sites do. Health
is what the controller's periodic probe last found (``edgefleet.cloud.probing``): reading it never calls a cluster.
``/{cluster}/audit`` does: it reads the cluster's workloads, pods and nodes through the gateway and lists what
breaks its policy (``edgefleet.cloud.auditing``), changing nothing."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from edgefleet.cloud.api.cluster_schemas import ClusterAuditPublic, ClusterPublic, audit_public, cluster_public
from edgefleet.cloud.api.deps import (
    FLEET_DEFAULT_LIMIT,
    MAX_LIMIT,
    ControllerDep,
    PrincipalDep,
    authorize,
    require_access,
)
from edgefleet.cloud.api.errors import NotFound, Unavailable
from edgefleet.cloud.api.fields import Name
from edgefleet.cloud.api.paging import CursorQuery, decode_cursor, encode_cursor, page_after, set_next_page
from edgefleet.cloud.api.schemas import error_responses
from edgefleet.cloud.auditing import audit_cluster
from edgefleet.cloud.k8s.errors import ClusterError
from edgefleet.ids import ClusterId
from edgefleet.inventory import Cluster

router = APIRouter(
    prefix="/api/v1/clusters",
    tags=["clusters"],
    dependencies=[Depends(require_access)],
    responses=error_responses(403, 422, 500),
)


@router.get("", summary="List clusters", response_model=list[ClusterPublic])
def list_clusters(
    request: Request,
    response: Response,
    controller: ControllerDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="At most this many.")] = FLEET_DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> list[ClusterPublic]:
    """Every cluster of the inventory by name, healthy or not, with the sites it holds; when more follow than
    ``limit``, the ``X-Next-Cursor`` header holds the ``cursor`` of the next page."""
    # A cluster holds many sites' nodes: fleet-wide data.
    authorize(principal, None)
    after = decode_cursor(cursor, "clusters", (str,)) if cursor is not None else None
    inventory = controller.state.inventory
    health = {h.cluster: h for h in controller.cluster_health()}
    answer = [
        cluster_public(cluster, inventory.cluster_sites(cluster.id), health.get(cluster.id))
        for cluster in sorted(inventory.clusters.values(), key=lambda c: c.id)
    ]
    page, more = page_after(answer, lambda c: (c.name,), after, limit)
    set_next_page(request, response, encode_cursor("clusters", (page[-1].name,)) if more else None)
    return page


@router.get("/{cluster}", summary="Show a cluster", response_model=ClusterPublic, responses=error_responses(404))
def get_cluster(cluster: Name, controller: ControllerDep, principal: PrincipalDep) -> ClusterPublic:
    """One cluster: its manifest, the sites it holds and its health."""
    authorize(principal, None)
    found = _cluster(controller, cluster)
    health = {h.cluster: h for h in controller.cluster_health()}
    return cluster_public(found, controller.state.inventory.cluster_sites(found.id), health.get(found.id))


@router.get(
    "/{cluster}/audit",
    summary="Audit a cluster against its policy",
    response_model=ClusterAuditPublic,
    responses=error_responses(404, 503),
)
def audit(cluster: Name, controller: ControllerDep, principal: PrincipalDep) -> ClusterAuditPublic:
    """Every workload and pod in the cluster that breaks its platform policy (requests off the overcommit ratio, a
    missing anti-affinity, a pod on an exclusive host while it is kept for others), whoever deployed it; reads the
    cluster now and changes nothing. 503 when the cluster cannot be read."""
    authorize(principal, None)
    found = _cluster(controller, cluster)
    gateway = controller.gateway
    if gateway is None:
        raise Unavailable("the controller reaches no Kubernetes cluster (its inventory declared none at start)")
    try:
        return audit_public(audit_cluster(gateway, found, clock=controller.clock))
    except ClusterError as exc:
        raise Unavailable(f"cannot read cluster {cluster!r}: {exc}") from exc


def _cluster(controller: ControllerDep, cluster: str) -> Cluster:
    inventory = controller.state.inventory
    found = inventory.clusters.get(ClusterId(cluster))
    if found is None:
        known = ", ".join(sorted(inventory.clusters)) or "none"
        raise NotFound(
            f"no cluster {cluster!r} in the inventory (known: {known}); GET /api/v1/clusters lists them "
            "(or 'edgefleet clusters')"
        )
    return found
