"""``/api/v1/sites``: every site with its box counts and health, one site, and the boxes of a site."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from edgefleet.cloud.api.deps import ControllerDep, PrincipalDep, authorize, require_access
from edgefleet.cloud.api.errors import NotFound
from edgefleet.cloud.api.fields import Name, Text
from edgefleet.cloud.api.reading import read_site
from edgefleet.cloud.api.schemas import (
    BoxPublic,
    SiteDetail,
    SitePublic,
    box_public,
    error_responses,
    site_detail,
    site_public,
)
from edgefleet.cloud.fleet import FleetState, ReachabilityState, SiteHealth, summarize_site
from edgefleet.ids import SiteId
from edgefleet.inventory import BoxRole, Site, SiteKind

router = APIRouter(
    prefix="/api/v1/sites",
    tags=["sites"],
    dependencies=[Depends(require_access)],
    responses=error_responses(403, 422, 500),
)


def find_site(state: FleetState, site: str) -> Site:
    found = state.inventory.sites.get(SiteId(site))
    if found is None:
        raise NotFound(f"no site {site!r} in the inventory; GET /api/v1/sites lists the sites (or 'edgefleet sites')")
    return found


@router.get("", summary="List sites", response_model=list[SitePublic])
def list_sites(
    controller: ControllerDep,
    principal: PrincipalDep,
    health: Annotated[SiteHealth | None, Query(description="Only sites in this health.")] = None,
    region: Annotated[Text | None, Query(description="Only sites of this region, e.g. northeast.")] = None,
    kind: Annotated[SiteKind | None, Query(description="Only transfer centers or only central clusters.")] = None,
) -> list[SitePublic]:
    """Every site the caller may read, by id, with its boxes online out of total and its health."""
    state = controller.state
    now = controller.clock.now()
    answer = []
    for site in sorted(state.inventory.sites.values(), key=lambda s: s.id):
        if not principal.may_read(site.id) or (region and site.region != region) or (kind and site.kind != kind):
            continue
        summary = summarize_site(state, site.id, now=now)
        if health and summary.health != health:
            continue
        answer.append(site_public(site, summary))
    return answer


@router.get("/{site}", summary="Show a site", response_model=SiteDetail, responses=error_responses(404))
def get_site(site: Name, controller: ControllerDep, principal: PrincipalDep) -> SiteDetail:
    """One site: its manifest's settings, box counts by state and health."""
    found = find_site(controller.state, site)
    authorize(principal, found.id)
    return site_detail(found, summarize_site(controller.state, found.id, now=controller.clock.now()))


@router.get(
    "/{site}/boxes", summary="List the boxes of a site", response_model=list[BoxPublic], responses=error_responses(404)
)
def list_site_boxes(
    site: Name,
    controller: ControllerDep,
    principal: PrincipalDep,
    state: Annotated[ReachabilityState | None, Query(description="Only boxes in this state.")] = None,
    role: Annotated[BoxRole | None, Query(description="Only boxes of this role.")] = None,
) -> list[BoxPublic]:
    """The site's boxes in manifest order, each with its reachability and latest heartbeat."""
    found = find_site(controller.state, site)
    authorize(principal, found.id)
    now = controller.clock.now()
    return [
        box_public(v.box, v.live, v.reachability, now=now)
        for v in read_site(controller.state, found.id, now=now)
        if (state is None or v.reachability.state == state) and (role is None or v.box.role == role)
    ]
