"""Operations routes: ``/healthz`` for probes and load balancers, ``/metrics`` for Prometheus, and
``/api/v1/unknown-boxes`` (boxes that publish but are in no site manifest) for ops."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, Request, Response

from edgefleet.cloud.api.deps import ControllerDep, PrincipalDep, SettingsDep, authorize, require_access
from edgefleet.cloud.api.metrics import CONTENT_TYPE, render
from edgefleet.cloud.api.reading import read_unknown
from edgefleet.cloud.api.schemas import Healthz, UnknownBoxPublic, error_responses, unknown_box_public
from edgefleet.cloud.fleet import summarize_site
from edgefleet.errors import EdgefleetError

log = logging.getLogger(__name__)

router = APIRouter(dependencies=[Depends(require_access)], responses=error_responses(403, 500))


@router.get(
    "/healthz",
    tags=["system"],
    summary="Is the controller healthy",
    response_model=Healthz,
    responses={503: {"model": Healthz, "description": "The broker or the database is down; problems says which."}},
)
def healthz(response: Response, controller: ControllerDep, settings: SettingsDep) -> Healthz:
    """200 while the controller is connected to the broker and can use its database, else 503 saying which.

    Only aggregate counts: probes carry no identity, so nothing of a single site is shown.
    """
    problems = []
    broker_connected = controller.ingest.connected
    if not broker_connected:
        # The URL only masked (this answer needs no identity), and the broker's refusal when there was one.
        refused = controller.ingest.refused
        problems.append(
            f"not connected to the broker at {settings.broker_url_shown}: {refused}"
            if refused
            else f"not connected to the broker at {settings.broker_url_shown}; check that it runs and the "
            "controller's log"
        )
    try:
        controller.store.check()
        database_ok = True
    except EdgefleetError as exc:  # the store's own errors say where and what to check
        database_ok = False
        problems.append(str(exc))
    except Exception as exc:  # anything else the driver raises: the probe must still answer, and say why
        database_ok = False
        problems.append(f"cannot use the database {settings.database_url_shown}: {type(exc).__name__}: {exc}")
    now = controller.clock.now()
    summaries = [summarize_site(controller.state, site, now=now) for site in controller.state.inventory.sites]
    hearing = controller.hearing
    if problems:
        response.status_code = 503
        log.warning("Answered health check as unavailable", extra={"problems": problems})
    elif not hearing.judging:
        problems.append(f"not judging box silence: the controller is {hearing.state} ({hearing.reason})")
    status = "unavailable" if response.status_code == 503 else ("degraded" if problems else "ok")
    return Healthz(
        status=status,
        broker_connected=broker_connected,
        database_ok=database_ok,
        hearing=hearing.state,
        inventory_version=controller.state.inventory.version,
        boxes_online=sum(s.boxes_online for s in summaries),
        boxes_total=sum(s.boxes_total for s in summaries),
        problems=problems,
    )


@router.get(
    "/metrics",
    tags=["system"],
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text exposition format 0.0.4."}},
)
def metrics(request: Request, principal: PrincipalDep) -> Response:
    """Per-box up, last seen and clock skew; per-GPU temperature and utilisation; boxes per site and state;
    ingest counters by outcome; unknown boxes. Read from the live state at each scrape."""
    authorize(principal, None)
    return Response(render(request.state.metrics_registry), media_type=CONTENT_TYPE)


@router.get(
    "/api/v1/unknown-boxes", summary="List unknown boxes", tags=["boxes"], response_model=list[UnknownBoxPublic]
)
def list_unknown_boxes(controller: ControllerDep, principal: PrincipalDep) -> list[UnknownBoxPublic]:
    """Boxes that publish but are in no site manifest, most recently seen first: add them to sites/ or switch
    them off."""
    authorize(principal, None)
    return [unknown_box_public(u) for u in read_unknown(controller.state)]
