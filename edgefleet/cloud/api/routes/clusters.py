"""``/api/v1/clusters``: every Kubernetes cluster of the inventory with its sites and health (reachable, latency,
version, last error), and one cluster. The list pages with a cursor (``paging``), as the sites do. Health is what
the controller's periodic probe last found (``edgefleet.cloud.probing``): reading it never calls a cluster."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from edgefleet.cloud.api.cluster_schemas import ClusterPublic, cluster_public
from edgefleet.cloud.api.deps import (
    FLEET_DEFAULT_LIMIT,
    MAX_LIMIT,
    ControllerDep,
    PrincipalDep,
    authorize,
    require_access,
)
from edgefleet.cloud.api.errors import NotFound
from edgefleet.cloud.api.fields import Name
from edgefleet.cloud.api.paging import CursorQuery, decode_cursor, encode_cursor, page_after, set_next_page
from edgefleet.cloud.api.schemas import error_responses
from edgefleet.ids import ClusterId

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
    inventory = controller.state.inventory
    found = inventory.clusters.get(ClusterId(cluster))
    if found is None:
        known = ", ".join(sorted(inventory.clusters)) or "none"
        raise NotFound(
            f"no cluster {cluster!r} in the inventory (known: {known}); GET /api/v1/clusters lists them "
            "(or 'edgefleet clusters')"
        )
    health = {h.cluster: h for h in controller.cluster_health()}
    return cluster_public(found, inventory.cluster_sites(found.id), health.get(found.id))
