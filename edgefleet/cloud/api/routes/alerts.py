"""``/api/v1/alerts``: the stored alerts (newest first, filtered by state, site and kind), one alert, and
acknowledging one (``POST /api/v1/alerts/{alert}/ack``).

The routes read and act through the controller's ``AlertService`` (``alerting.service``, as ``AlertingDep``); a
controller without alerting (the API tests' in-memory controller) answers 503.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from edgefleet.cloud.alerting.alerts import AlertKind, AlertState, AlertStateError
from edgefleet.cloud.alerting.service import AlertNotFound
from edgefleet.cloud.api.alert_schemas import AcknowledgeBody, AlertPublic, alert_error_responses, alert_public
from edgefleet.cloud.api.deps import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    AlertingDep,
    ControllerDep,
    PrincipalDep,
    authorize,
    require_access,
    store_unavailable,
)
from edgefleet.cloud.api.errors import Conflict, Invalid, NotFound
from edgefleet.errors import EdgefleetError
from edgefleet.ids import SiteId

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
        raise store_unavailable(exc) from exc
    return [alert_public(a) for a in alerts]


@router.get("/{alert}", summary="Show an alert", response_model=AlertPublic, responses=alert_error_responses(404))
def get_alert(alert: str, alerting: AlertingDep, principal: PrincipalDep) -> AlertPublic:
    """One alert with its whole lifecycle: fired, acknowledged, resolved, by whom and when."""
    try:
        found = alerting.alert(alert)
    except AlertNotFound as exc:
        raise NotFound(str(exc)) from exc
    except EdgefleetError as exc:
        raise store_unavailable(exc) from exc
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
        raise store_unavailable(exc) from exc
    return alert_public(acknowledged)
