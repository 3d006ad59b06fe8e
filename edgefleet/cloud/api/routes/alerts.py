"""``/api/v1/alerts``: the stored alerts (newest first, filtered by state, site and kind), one alert, and
acknowledging one (``POST /api/v1/alerts/{alert}/ack``).

The routes read and act through the controller's alert loop (``alerting.running.AlertLoop``, as ``AlertingDep``);
a controller without one (the API tests' in-memory controller) answers 503. This module also holds the two errors
the alert and silence routes add to ``errors.py``'s: ``Conflict`` (409) and ``Invalid`` (422).
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Final

from fastapi import APIRouter, Depends, Query

from edgefleet.cloud.alerting.alerts import AlertKind, AlertState, AlertStateError
from edgefleet.cloud.alerting.running import AlertLoop, AlertNotFound
from edgefleet.cloud.api.alert_schemas import AcknowledgeBody, AlertPublic, alert_error_responses, alert_public
from edgefleet.cloud.api.deps import ControllerDep, PrincipalDep, authorize, require_access
from edgefleet.cloud.api.errors import ApiError, NotFound, Unavailable
from edgefleet.errors import EdgefleetError
from edgefleet.ids import SiteId

# A page of alerts; the CLI shows the newest first, ops filter for more.
DEFAULT_LIMIT: Final = 100
MAX_LIMIT: Final = 1000


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
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="At most this many.")] = DEFAULT_LIMIT,
) -> list[AlertPublic]:
    """The alerts the caller may read, newest first (by when they fired)."""
    if site is not None:
        if SiteId(site) not in controller.state.inventory.sites:
            raise NotFound(f"no site {site!r} in the inventory; GET /api/v1/sites lists the sites")
        authorize(principal, SiteId(site))
    try:
        alerts = alerting.list_alerts(
            state=state,
            site=SiteId(site) if site is not None else None,
            kind=kind,
            sites=principal.sites,
            limit=limit,
        )
    except EdgefleetError as exc:
        raise unavailable(exc) from exc
    return [alert_public(a) for a in alerts]


@router.get("/{alert}", summary="Show an alert", response_model=AlertPublic, responses=alert_error_responses(404))
def get_alert(alert: str, alerting: AlertingDep, principal: PrincipalDep) -> AlertPublic:
    """One alert with its whole lifecycle: fired, acknowledged, resolved, by whom and when."""
    try:
        found = alerting.alert(alert)
    except AlertNotFound as exc:
        raise NotFound(str(exc)) from exc
    except EdgefleetError as exc:
        raise unavailable(exc) from exc
    authorize(principal, found.key.site)
    return alert_public(found)


@router.post(
    "/{alert}/ack",
    summary="Acknowledge an alert",
    response_model=AlertPublic,
    responses=alert_error_responses(404, 409),
)
def acknowledge_alert(alert: str, body: AcknowledgeBody, alerting: AlertingDep, principal: PrincipalDep) -> AlertPublic:
    """Someone takes the alert: it stays active and resolves by itself, but is no longer repeated."""
    try:
        found = alerting.alert(alert)
        authorize(principal, found.key.site)
        acknowledged = alerting.acknowledge(alert, body.by)
    except AlertNotFound as exc:
        raise NotFound(str(exc)) from exc
    except AlertStateError as exc:
        raise Conflict(str(exc)) from exc
    except ValueError as exc:
        raise Invalid(f"body field 'by': {exc}") from exc
    except EdgefleetError as exc:
        raise unavailable(exc) from exc
    return alert_public(acknowledged)
