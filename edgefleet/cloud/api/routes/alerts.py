"""``/api/v1/alerts``: the stored alerts (newest first, filtered by state, site, kind, muting and the start of
their id), how many active ones there are by state and muting (``/counts``: what a filtered page leaves out),
one alert, and acknowledging one (``POST /api/v1/alerts/{alert}/ack``).

Wherever a route takes an alert id, a unique start of one (``short_id``, as the CLI shows it) will do, as with
git: it is resolved here through the store, among the alerts the caller may read, before the loop is asked.

The routes read and act through the controller's alert loop (``alerting.running.AlertLoop``, as ``AlertingDep``);
a controller without one (the API tests' in-memory controller) answers 503. This module also holds the two errors
the alert and silence routes add to ``errors.py``'s: ``Conflict`` (409) and ``Invalid`` (422).
"""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Final

from fastapi import APIRouter, Depends, Query

from edgefleet.cloud.alerting.alerts import AlertKind, AlertState, AlertStateError, StoredAlert
from edgefleet.cloud.alerting.running import AlertLoop, AlertNotFound
from edgefleet.cloud.api.alert_schemas import (
    AcknowledgeBody,
    AlertCountPublic,
    AlertPublic,
    alert_count_public,
    alert_error_responses,
    alert_public,
)
from edgefleet.cloud.api.deps import ControllerDep, Principal, PrincipalDep, authorize, require_access
from edgefleet.cloud.api.errors import ApiError, NotFound, Unavailable
from edgefleet.errors import EdgefleetError
from edgefleet.ids import SiteId

# A page of alerts; the CLI shows the newest first, ops filter for more.
DEFAULT_LIMIT: Final = 100
MAX_LIMIT: Final = 1000
# What may start an alert or silence id: lowercase letters, digits and dashes, four at least (as git wants).
ID_START: Final = r"^[0-9a-z][0-9a-z-]{3,63}$"
# An ambiguous start names this many of the ids it starts, so that the caller can pick.
MAX_CANDIDATES: Final = 5


class Conflict(ApiError):
    """The request is right, but not now: the alert or silence is in a state that does not allow it."""

    status: ClassVar[int] = 409
    code: ClassVar[str] = "conflict"


class Invalid(ApiError):
    """A body that parses but cannot be taken (a silence naming an unknown site, ...); lists every problem."""

    status: ClassVar[int] = 422
    code: ClassVar[str] = "invalid-request"


def get_alerting(controller: ControllerDep) -> AlertLoop:
    alerting = getattr(controller, "alerting", None)
    if not isinstance(alerting, AlertLoop):
        raise Unavailable("alerting does not run in this controller; start it with 'edgefleet cloud serve'")
    return alerting


AlertingDep = Annotated[AlertLoop, Depends(get_alerting)]


def unavailable(exc: EdgefleetError) -> Unavailable:
    """The database behind the alert store failed; the store's message names it and what to check."""
    return Unavailable(f"cannot use the alert store now: {exc}")


router = APIRouter(
    prefix="/api/v1/alerts",
    tags=["alerts"],
    dependencies=[Depends(require_access)],
    responses=alert_error_responses(403, 422, 500, 503),
)


@router.get("", summary="List alerts", response_model=list[AlertPublic], responses=alert_error_responses(404))
def list_alerts(
    controller: ControllerDep,
    alerting: AlertingDep,
    principal: PrincipalDep,
    state: Annotated[AlertState | None, Query(description="Only alerts in this state.")] = None,
    site: Annotated[str | None, Query(description="Only alerts of this site.")] = None,
    kind: Annotated[AlertKind | None, Query(description="Only alerts of this kind.")] = None,
    muted: Annotated[
        bool | None, Query(description="Only muted alerts (true: silenced or inhibited), or only the others (false).")
    ] = None,
    id_prefix: Annotated[
        str | None, Query(pattern=ID_START, description="Only alerts whose id starts so (4 characters at least).")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="At most this many.")] = DEFAULT_LIMIT,
) -> list[AlertPublic]:
    """The alerts the caller may read, newest first (by when they fired)."""
    _check_site(controller, principal, site)
    try:
        alerts = alerting.alerts.find(
            state=state,
            site=SiteId(site) if site is not None else None,
            kind=kind,
            sites=principal.sites,
            muted=muted,
            id_prefix=id_prefix,
            limit=limit,
        )
        return _public(alerting, alerts)
    except EdgefleetError as exc:
        raise unavailable(exc) from exc


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
    site: Annotated[str | None, Query(description="Only alerts of this site.")] = None,
    kind: Annotated[AlertKind | None, Query(description="Only alerts of this kind.")] = None,
) -> list[AlertCountPublic]:
    """The firing and acknowledged alerts the caller may read, counted by state and by what mutes them (largest
    count first): what a list filtered to the firing, unmuted ones leaves out, however many there are."""
    _check_site(controller, principal, site)
    try:
        tallies = alerting.alerts.tally(
            site=SiteId(site) if site is not None else None, kind=kind, sites=principal.sites
        )
    except EdgefleetError as exc:
        raise unavailable(exc) from exc
    return [alert_count_public(t) for t in tallies]


@router.get("/{alert}", summary="Show an alert", response_model=AlertPublic, responses=alert_error_responses(404, 409))
def get_alert(alert: str, alerting: AlertingDep, principal: PrincipalDep) -> AlertPublic:
    """One alert with its whole lifecycle: fired, acknowledged, resolved, by whom and when. ``alert`` is its id or
    a unique start of it (409 when it starts several, naming some)."""
    try:
        found = resolve_alert(alerting, principal, alert)
        authorize(principal, found.key.site)
        return _public(alerting, [found])[0]
    except AlertNotFound as exc:
        raise NotFound(str(exc)) from exc
    except EdgefleetError as exc:
        raise unavailable(exc) from exc


@router.post(
    "/{alert}/ack",
    summary="Acknowledge an alert",
    response_model=AlertPublic,
    responses=alert_error_responses(404, 409),
)
def acknowledge_alert(alert: str, body: AcknowledgeBody, alerting: AlertingDep, principal: PrincipalDep) -> AlertPublic:
    """Someone takes the alert (its id or a unique start of it): it stays active and resolves by itself, but is
    no longer repeated."""
    try:
        found = resolve_alert(alerting, principal, alert)
        authorize(principal, found.key.site)
        acknowledged = alerting.acknowledge(found.id, body.by)
        return _public(alerting, [acknowledged])[0]
    except AlertNotFound as exc:
        raise NotFound(str(exc)) from exc
    except AlertStateError as exc:
        raise Conflict(str(exc)) from exc
    except ValueError as exc:
        raise Invalid(f"body field 'by': {exc}") from exc
    except EdgefleetError as exc:
        raise unavailable(exc) from exc


def resolve_alert(alerting: AlertLoop, principal: Principal, given: str) -> StoredAlert:
    """The alert ``given`` names: the one with that id, else the only one whose id starts so among those the
    caller may read. Raises AlertNotFound, or Conflict naming up to MAX_CANDIDATES ids that it starts."""
    try:
        return alerting.alert(given)
    except AlertNotFound:
        if not re.fullmatch(ID_START, given):
            raise
    found = alerting.alerts.find(id_prefix=given, sites=principal.sites, limit=MAX_CANDIDATES + 1)
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


def _check_site(controller: ControllerDep, principal: Principal, site: str | None) -> None:
    if site is not None:
        if SiteId(site) not in controller.state.inventory.sites:
            raise NotFound(f"no site {site!r} in the inventory; GET /api/v1/sites lists the sites")
        authorize(principal, SiteId(site))


def _public(alerting: AlertLoop, alerts: list[StoredAlert]) -> list[AlertPublic]:
    short = alerting.alerts.short_ids([a.id for a in alerts])
    return [alert_public(a, short_id=short[a.id]) for a in alerts]
