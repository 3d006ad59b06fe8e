"""``/api/v1/sites``: every site with its box counts and health, one site, the boxes of a site, and the site's GPU
history in steps (the console's site charts). Both lists page with a cursor (``paging``); a page holds up to
``FLEET_DEFAULT_LIMIT`` unless ``limit`` says fewer."""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Depends, Query, Request, Response

from edgefleet.cloud.api.console_schemas import SiteHistoryPublic, site_history_public
from edgefleet.cloud.api.deps import (
    FLEET_DEFAULT_LIMIT,
    MAX_LIMIT,
    ControllerDep,
    PrincipalDep,
    authorize,
    require_access,
)
from edgefleet.cloud.api.errors import Invalid, NotFound, Unavailable
from edgefleet.cloud.api.fields import Name, Seconds, Text
from edgefleet.cloud.api.paging import CursorQuery, decode_cursor, encode_cursor, page_after, set_next_page
from edgefleet.cloud.api.reading import read_site, read_site_nodes
from edgefleet.cloud.api.schemas import (
    BoxPublic,
    SiteDetail,
    SitePublic,
    box_public,
    error_responses,
    site_detail,
    site_public,
)
from edgefleet.cloud.console.views import site_history
from edgefleet.cloud.fleet import FleetState, ReachabilityState, SiteHealth, summarize_site
from edgefleet.errors import EdgefleetError
from edgefleet.ids import SiteId
from edgefleet.inventory import BoxRole, Site, SiteKind

# Three hours: a shift's worth, what site staff look back on. A day at most (what the controller keeps by default).
DEFAULT_HISTORY_S: Final = 3 * 3600.0
MAX_HISTORY_S: Final = 24 * 3600.0
# A chart a few hundred pixels wide shows no more than a few hundred steps: the step grows with the span.
MAX_STEPS: Final = 360

router = APIRouter(
    prefix="/api/v1/sites",
    tags=["sites"],
    dependencies=[Depends(require_access)],
    responses=error_responses(401, 403, 429, 422, 500),
)


def find_site(state: FleetState, site: str) -> Site:
    found = state.inventory.sites.get(SiteId(site))
    if found is None:
        raise NotFound(f"no site {site!r} in the inventory; GET /api/v1/sites lists the sites (or 'edgefleet sites')")
    return found


@router.get("", summary="List sites", response_model=list[SitePublic])
def list_sites(
    request: Request,
    response: Response,
    controller: ControllerDep,
    principal: PrincipalDep,
    health: Annotated[SiteHealth | None, Query(description="Only sites in this health.")] = None,
    region: Annotated[Text | None, Query(description="Only sites of this region, e.g. northeast.")] = None,
    kind: Annotated[SiteKind | None, Query(description="Only transfer centers or only central clusters.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="At most this many.")] = FLEET_DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> list[SitePublic]:
    """Every site the caller may read, by id, with its boxes online out of total and its health; when more
    follow than ``limit``, the ``X-Next-Cursor`` header holds the ``cursor`` of the next page."""
    after = decode_cursor(cursor, "sites", (str,)) if cursor is not None else None
    state = controller.state
    now = controller.clock.now()
    answer = []
    for site in sorted(state.inventory.sites.values(), key=lambda s: s.id):
        if not principal.may_see(site.id) or (region and site.region != region) or (kind and site.kind != kind):
            continue
        if after is not None and (site.id,) <= after:
            continue
        summary = summarize_site(state, site.id, now=now)
        if health and summary.health != health:
            continue
        answer.append(site_public(site, summary, read_site_nodes(state, site.id)))
    page, more = page_after(answer, lambda s: (s.id,), None, limit)
    set_next_page(request, response, encode_cursor("sites", (page[-1].id,)) if more else None)
    return page


@router.get("/{site}", summary="Show a site", response_model=SiteDetail, responses=error_responses(404))
def get_site(site: Name, controller: ControllerDep, principal: PrincipalDep) -> SiteDetail:
    """One site: its manifest's settings, box counts by state and health, its boxes' nodes by state."""
    found = find_site(controller.state, site)
    authorize(principal, "read", found.id)
    state = controller.state
    return site_detail(
        found, summarize_site(state, found.id, now=controller.clock.now()), read_site_nodes(state, found.id)
    )


@router.get(
    "/{site}/boxes", summary="List the boxes of a site", response_model=list[BoxPublic], responses=error_responses(404)
)
def list_site_boxes(
    request: Request,
    response: Response,
    site: Name,
    controller: ControllerDep,
    principal: PrincipalDep,
    state: Annotated[ReachabilityState | None, Query(description="Only boxes in this state.")] = None,
    role: Annotated[BoxRole | None, Query(description="Only boxes of this role.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="At most this many.")] = FLEET_DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> list[BoxPublic]:
    """The site's boxes in manifest order, each with its reachability and latest heartbeat; when more follow
    than ``limit``, the ``X-Next-Cursor`` header holds the ``cursor`` of the next page."""
    found = find_site(controller.state, site)
    authorize(principal, "read", found.id)
    now = controller.clock.now()
    views = read_site(controller.state, found.id, now=now)
    if cursor is not None:
        (last,) = decode_cursor(cursor, f"boxes of {found.id}", (str,))
        order = [str(v.box.id) for v in views]
        if last not in order:
            # Manifest order has no place for a box that left the site: say so rather than guess where to go on.
            raise Invalid(
                f"query parameter 'cursor': box {last!r} is no longer in site {found.id!r} (the inventory changed "
                "since the page before); start again without cursor"
            )
        views = views[order.index(str(last)) + 1 :]
    matching = [
        v for v in views if (state is None or v.reachability.state == state) and (role is None or v.box.role == role)
    ]
    page = matching[:limit]
    more = len(matching) > limit
    set_next_page(request, response, encode_cursor(f"boxes of {found.id}", (page[-1].box.id,)) if more else None)
    return [box_public(v.box, v.live, v.reachability, v.node, now=now) for v in page]


@router.get(
    "/{site}/history",
    summary="Show a site's GPU history in steps",
    response_model=SiteHistoryPublic,
    responses=error_responses(404, 503),
)
def get_site_history(
    site: Name,
    controller: ControllerDep,
    principal: PrincipalDep,
    history_s: Annotated[
        Seconds, Query(gt=0, le=MAX_HISTORY_S, description="How far back the history goes, in seconds.")
    ] = DEFAULT_HISTORY_S,
) -> SiteHistoryPublic:
    """The hottest GPU and the boxes' mean GPU utilisation of the site, in steps of at least a minute (at most
    360 steps), from the boxes' stored health points."""
    found = find_site(controller.state, site)
    authorize(principal, "read", found.id)
    now = controller.clock.now()
    since = now - history_s
    step_s = max(60.0, history_s / MAX_STEPS)
    try:
        points = {box: controller.box_history(box, since) for box in found.boxes}
    except EdgefleetError as exc:  # history older than memory holds comes from the database
        raise Unavailable(f"cannot read the history of site {site!r} now: {exc}") from exc
    return site_history_public(found.id, since, step_s, site_history(points, since=since, step_s=step_s))
