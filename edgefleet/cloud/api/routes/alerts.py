"""``/api/v1/alerts``: the alerts (newest first, filtered by state, site, kind, muting and the start of their id,
a page at a time: ``paging``; those the controller holds but could not store yet included), how many active ones there are by state and muting (``/counts``: what a filtered page leaves out),
one alert, and acknowledging one (``POST /api/v1/alerts/{alert}/ack``).

Wherever a route takes an alert id, a unique start of one (``short_id``, as the CLI shows it) will do, as with
git: it is resolved here through the store, among the alerts the caller may read, before the loop is asked.

The routes read and act through the controller's ``AlertService`` (``alerting.service``, as ``AlertingDep``); a
controller without alerting (the API tests' in-memory controller) answers 503.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from edgefleet.cloud.access.audit_log import AuditRecord, Json, Target, summary_of
from edgefleet.cloud.access.authorizing import Principal
from edgefleet.cloud.alerting.alerts import AlertKind, AlertState, AlertStateError, StoredAlert, page_key
from edgefleet.cloud.alerting.service import AlertNotFound, AlertService
from edgefleet.cloud.api.alert_schemas import (
    AcknowledgeBody,
    AlertCountPublic,
    AlertPublic,
    alert_count_public,
    alert_error_responses,
    alert_public,
)
from edgefleet.cloud.api.deps import (
    DEFAULT_LIMIT,
    ID_START,
    MAX_CANDIDATES,
    MAX_LIMIT,
    ActorDep,
    AlertingDep,
    ControllerDep,
    PrincipalDep,
    authorize,
    record_change,
    require_access,
    store_unavailable,
)
from edgefleet.cloud.api.errors import Conflict, Invalid, NotFound
from edgefleet.cloud.api.fields import Name
from edgefleet.cloud.api.paging import CursorQuery, decode_cursor, encode_cursor, set_next_page
from edgefleet.errors import EdgefleetError
from edgefleet.ids import SiteId

router = APIRouter(
    prefix="/api/v1/alerts",
    tags=["alerts"],
    dependencies=[Depends(require_access)],
    responses=alert_error_responses(401, 403, 429, 422, 500, 503),
)


@router.get("", summary="List alerts", response_model=list[AlertPublic], responses=alert_error_responses(404))
def list_alerts(
    request: Request,
    response: Response,
    controller: ControllerDep,
    alerting: AlertingDep,
    principal: PrincipalDep,
    state: Annotated[AlertState | None, Query(description="Only alerts in this state.")] = None,
    site: Annotated[Name | None, Query(description="Only alerts of this site.")] = None,
    kind: Annotated[AlertKind | None, Query(description="Only alerts of this kind.")] = None,
    muted: Annotated[
        bool | None, Query(description="Only muted alerts (true: silenced or inhibited), or only the others (false).")
    ] = None,
    id_prefix: Annotated[
        str | None,
        Query(pattern=ID_START, max_length=64, description="Only alerts whose id starts so (4 characters at least)."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="At most this many.")] = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> list[AlertPublic]:
    """The alerts the caller may read, newest first (by when they fired, then by id), a page at a time: when
    more follow, the ``X-Next-Cursor`` header holds the ``cursor`` of the next page (and ``Link`` its URL).
    Alerts the controller holds but could not store yet (the database refuses writes) are listed too."""
    _check_site(controller, principal, site)
    after = decode_cursor(cursor, "alerts", (float, str)) if cursor is not None else None
    try:
        alerts = alerting.list_alerts(
            state=state,
            site=SiteId(site) if site is not None else None,
            kind=kind,
            sites=principal.sites,
            muted=muted,
            id_prefix=id_prefix,
            after=(float(after[0]), str(after[1])) if after is not None else None,
            limit=limit + 1,  # one more says whether a next page exists
        )
        page = alerts[:limit]
        more = len(alerts) > limit
        set_next_page(request, response, encode_cursor("alerts", page_key(page[-1])) if more else None)
        return _public(alerting, page)
    except EdgefleetError as exc:
        raise store_unavailable(exc) from exc


@router.get(
    "/counts",
    summary="Count the active alerts",
    response_model=list[AlertCountPublic],
    responses=alert_error_responses(404),
)
def count_alerts(
    controller: ControllerDep,
    alerting: AlertingDep,
    principal: PrincipalDep,
    site: Annotated[Name | None, Query(description="Only alerts of this site.")] = None,
    kind: Annotated[AlertKind | None, Query(description="Only alerts of this kind.")] = None,
) -> list[AlertCountPublic]:
    """The firing and acknowledged alerts the caller may read, counted by state and by what mutes them (largest
    count first): what a list filtered to the firing, unmuted ones leaves out, however many there are."""
    _check_site(controller, principal, site)
    try:
        tallies = alerting.tally(site=SiteId(site) if site is not None else None, kind=kind, sites=principal.sites)
    except EdgefleetError as exc:
        raise store_unavailable(exc) from exc
    return [alert_count_public(t) for t in tallies]


@router.get("/{alert}", summary="Show an alert", response_model=AlertPublic, responses=alert_error_responses(404, 409))
def get_alert(alert: Name, alerting: AlertingDep, principal: PrincipalDep) -> AlertPublic:
    """One alert with its whole lifecycle: fired, acknowledged, resolved, by whom and when. ``alert`` is its id or
    a unique start of it (409 when it starts several, naming some)."""
    try:
        found = resolve_alert(alerting, principal, alert)
        authorize(principal, "read", found.key.site)
        return _public(alerting, [found])[0]
    except AlertNotFound as exc:
        raise NotFound(str(exc)) from exc
    except EdgefleetError as exc:
        raise store_unavailable(exc) from exc


@router.post(
    "/{alert}/ack",
    summary="Acknowledge an alert",
    response_model=AlertPublic,
    responses=alert_error_responses(404, 409),
)
def acknowledge_alert(
    alert: Name,
    controller: ControllerDep,
    alerting: AlertingDep,
    principal: PrincipalDep,
    actor: ActorDep,
    body: AcknowledgeBody | None = None,
) -> AlertPublic:
    """The caller takes the alert (its id or a unique start of it): it stays active and resolves by itself, but
    is no longer repeated. Who took it is who signed in."""
    try:
        found = resolve_alert(alerting, principal, alert)
        authorize(principal, "acknowledge", found.key.site)
        acknowledged = alerting.acknowledge(found.id, principal.name)
        record_change(
            controller,
            AuditRecord(
                controller.clock.now(),
                actor,
                "acknowledge-alert",
                Target("alert", found.id, found.key.site),
                f"acknowledge alert {found.id} ({found.key})",
                before=_ack_state(found),
                after=_ack_state(acknowledged),
            ),
        )
        return _public(alerting, [acknowledged])[0]
    except AlertNotFound as exc:
        raise NotFound(str(exc)) from exc
    except AlertStateError as exc:
        raise Conflict(str(exc)) from exc
    except ValueError as exc:
        raise Invalid(f"cannot record {principal.name!r} as who acknowledged: {exc}") from exc
    except EdgefleetError as exc:
        raise store_unavailable(exc) from exc


def resolve_alert(alerting: AlertService, principal: Principal, given: str) -> StoredAlert:
    """The alert ``given`` names: the one with that id, else the only one whose id starts so among those the
    caller may read. Raises AlertNotFound, or Conflict naming up to MAX_CANDIDATES ids that it starts."""
    try:
        return alerting.alert(given)
    except AlertNotFound:
        if not re.fullmatch(ID_START, given):
            raise
    found = alerting.list_alerts(id_prefix=given, sites=principal.sites, limit=MAX_CANDIDATES + 1)
    if not found:
        raise AlertNotFound(
            f"no alert {given!r}, nor one whose id starts so; GET /api/v1/alerts (or 'edgefleet alerts --all') "
            "lists the ids"
        )
    if len(found) > 1:
        more = len(found) > MAX_CANDIDATES
        listed = ", ".join(f"{a.id} ({a.key})" for a in found[:MAX_CANDIDATES])
        raise Conflict(
            f"{given!r} starts the id of {'more than ' if more else ''}{min(len(found), MAX_CANDIDATES)} alerts: "
            f"{listed}{', ...' if more else ''}; give more of the id"
        )
    return found[0]


def _ack_state(alert: StoredAlert) -> dict[str, Json]:
    return summary_of({"state": alert.state, "acknowledged_by": alert.acknowledged_by})


def _check_site(controller: ControllerDep, principal: Principal, site: str | None) -> None:
    if site is not None:
        if SiteId(site) not in controller.state.inventory.sites:
            raise NotFound(f"no site {site!r} in the inventory; GET /api/v1/sites lists the sites")
        authorize(principal, "read", SiteId(site))


def _public(alerting: AlertService, alerts: list[StoredAlert]) -> list[AlertPublic]:
    short = alerting.short_ids([a.id for a in alerts])
    return [alert_public(a, short_id=short[a.id]) for a in alerts]
