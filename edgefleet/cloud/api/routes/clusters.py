"""``/api/v1/clusters``: every Kubernetes cluster of the inventory with its sites, health (reachable, latency,
version, last error) and policy, and one cluster. The list pages with a cursor (``paging``), as the sites do. Health
is what the controller's periodic probe last found (``edgefleet.cloud.probing``): reading it never calls a cluster.
``/{cluster}/audit`` does: it reads the cluster's workloads, pods and nodes through the gateway and lists what
breaks its policy (``edgefleet.cloud.auditing``), changing nothing. ``/{cluster}/gpus`` reads its nodes and pods and
joins them with the heartbeats of the agents on its GPU nodes (``edgefleet.cloud.cluster_gpus``). ``/{cluster}/policy``
is the policy part by part, for the console to say in its language (``console.views.policy_parts``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from edgefleet.cloud.api.cluster_schemas import (
    ClusterAuditPublic,
    ClusterGpusPublic,
    ClusterPublic,
    RestartPublic,
    RestartRequest,
    audit_public,
    cluster_public,
    gpus_public,
    restart_public,
)
from edgefleet.cloud.api.console_schemas import ClusterPolicyPublic, cluster_policy_public
from edgefleet.cloud.api.deps import (
    FLEET_DEFAULT_LIMIT,
    MAX_LIMIT,
    ActorDep,
    ControllerDep,
    PrincipalDep,
    authorize,
    require_access,
)
from edgefleet.cloud.api.errors import Conflict, NotFound, Unavailable
from edgefleet.cloud.api.fields import Name
from edgefleet.cloud.api.paging import CursorQuery, decode_cursor, encode_cursor, page_after, set_next_page
from edgefleet.cloud.api.schemas import error_responses
from edgefleet.cloud.auditing import audit_cluster
from edgefleet.cloud.cluster_gpus import cluster_gpus
from edgefleet.cloud.console.views import policy_parts
from edgefleet.cloud.k8s.errors import ClusterError
from edgefleet.ids import ClusterId
from edgefleet.inventory import Cluster

router = APIRouter(
    prefix="/api/v1/clusters",
    tags=["clusters"],
    dependencies=[Depends(require_access)],
    responses=error_responses(401, 403, 429, 422, 500),
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
    authorize(principal, "read", None)
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
    authorize(principal, "read", None)
    found = _cluster(controller, cluster)
    health = {h.cluster: h for h in controller.cluster_health()}
    return cluster_public(found, controller.state.inventory.cluster_sites(found.id), health.get(found.id))


@router.get(
    "/{cluster}/policy",
    summary="A cluster's policy, part by part",
    response_model=ClusterPolicyPublic,
    responses=error_responses(404),
)
def policy(cluster: Name, controller: ControllerDep, principal: PrincipalDep) -> ClusterPolicyPublic:
    """The cluster's platform policy from its manifest, each part a sentence key and the values that fill it (the
    console says them in its language; ``GET /api/v1/clusters/{cluster}`` has them in English words). Reads the
    inventory, never the cluster."""
    authorize(principal, "read", None)
    found = _cluster(controller, cluster)
    return cluster_policy_public(found.id, found.timezone, policy_parts(found.policy))


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
    authorize(principal, "read", None)
    found = _cluster(controller, cluster)
    gateway = controller.gateway
    if gateway is None:
        raise Unavailable("the controller reaches no Kubernetes cluster (its inventory declared none at start)")
    try:
        return audit_public(audit_cluster(gateway, found, clock=controller.clock))
    except ClusterError as exc:
        raise Unavailable(f"cannot read cluster {cluster!r}: {exc}") from exc


@router.get(
    "/{cluster}/gpus",
    summary="A cluster's GPUs: allocated, requested, and as their agents see them",
    response_model=ClusterGpusPublic,
    responses=error_responses(404, 503),
)
def gpus(cluster: Name, controller: ControllerDep, principal: PrincipalDep) -> ClusterGpusPublic:
    """GPUs allocatable and requested per node and per namespace, as the cluster's API server says now, beside
    the utilisation, temperature and memory the agents on its GPU nodes last reported (the boxes of the cluster's
    sites, matched by node name). 503 when the cluster cannot be read."""
    authorize(principal, "read", None)
    found = _cluster(controller, cluster)
    gateway = controller.gateway
    if gateway is None:
        raise Unavailable("the controller reaches no Kubernetes cluster (its inventory declared none at start)")
    try:
        view = cluster_gpus(gateway, controller.state, found)
    except ClusterError as exc:
        raise Unavailable(f"cannot read cluster {cluster!r}: {exc}") from exc
    return gpus_public(found.id, view, at=controller.clock.now())


@router.post(
    "/{cluster}/restart",
    summary="Restart a cluster's Deployments in batches",
    response_model=RestartPublic,
    status_code=202,
    responses=error_responses(404, 409, 503),
)
def restart(
    cluster: Name,
    body: RestartRequest,
    response: Response,
    controller: ControllerDep,
    principal: PrincipalDep,
    actor: ActorDep,
) -> RestartPublic:
    """Restart every Deployment of the cluster (of ``namespace``, matching ``selector``) as ``kubectl rollout
    restart`` does, at most ``max_in_flight`` at a time, each batch waited for until it has rolled out, stopping at
    the first that does not within its progress deadline. ``dry_run`` only names the Deployments (200); a start
    must give ``expect``, the number confirmed, and is refused with 409 when the selection holds another number
    now. 202 with the restart's id: ``GET .../restarts/{id}`` follows it. Every step goes to the audit."""
    authorize(principal, "restart-cluster", None)
    found = _cluster(controller, cluster)
    restarts = controller.restarts
    if restarts is None:
        raise Unavailable("the controller reaches no Kubernetes cluster (its inventory declared none at start)")
    by = principal.name
    try:
        targets = restarts.select(found.id, namespace=body.namespace, selector=body.selector)
    except ClusterError as exc:
        raise Unavailable(f"cannot list the Deployments of cluster {cluster!r}: {exc}") from exc
    if body.dry_run:
        response.status_code = 200
        return restart_public(None, cluster=found.id, targets=targets, by=by, max_in_flight=body.max_in_flight)
    if body.expect != len(targets):
        confirmed = "no number was confirmed" if body.expect is None else f"{body.expect} were confirmed"
        raise Conflict(
            f"the selection holds {len(targets)} Deployment(s) of cluster {cluster!r} now and {confirmed}; "
            "ask with dry_run, confirm that number, and send it as expect"
        )
    if not targets:
        raise Conflict(f"the selection holds no Deployment of cluster {cluster!r}: nothing to restart")
    job = restarts.start(found.id, targets, max_in_flight=body.max_in_flight, who=by, actor=actor)
    return restart_public(job, cluster=found.id, targets=targets, by=by, max_in_flight=body.max_in_flight)


@router.get(
    "/{cluster}/restarts/{restart_id}",
    summary="Follow a batch restart",
    response_model=RestartPublic,
    responses=error_responses(404, 503),
)
def get_restart(
    cluster: Name,
    restart_id: Annotated[str, Path(max_length=64, pattern=r"^[0-9a-f]+$", description="The restart's id.")],
    controller: ControllerDep,
    principal: PrincipalDep,
) -> RestartPublic:
    """A batch restart's Deployments, its steps so far, and where it stopped, if it did. Restarts are kept in the
    controller's memory: a restarted controller knows none (the audit keeps what they did)."""
    authorize(principal, "read", None)
    found = _cluster(controller, cluster)
    restarts = controller.restarts
    if restarts is None:
        raise Unavailable("the controller reaches no Kubernetes cluster (its inventory declared none at start)")
    job = restarts.get(restart_id)
    if job is None or job.cluster != found.id:
        raise NotFound(f"no batch restart {restart_id!r} of cluster {cluster!r} (a restarted controller forgets them)")
    return restart_public(job, cluster=found.id, targets=job.targets, by=job.who, max_in_flight=job.max_in_flight)


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
