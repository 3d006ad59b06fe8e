"""Operations routes: ``/healthz`` for probes and load balancers, ``/metrics`` for Prometheus, and
``/api/v1/unknown-boxes`` (boxes that publish but are in no site manifest) for ops.

``/healthz`` logs when the controller's health changes (``HealthLog``), not at every probe: a load balancer
probing every few seconds through an hour's outage must leave one warning and one recovery line, not thousands.
"""

from __future__ import annotations

import logging
import threading
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from edgefleet.cloud.api.deps import ControllerDep, PrincipalDep, SettingsDep, authorize, require_access
from edgefleet.cloud.api.metrics import CONTENT_TYPE, render
from edgefleet.cloud.api.reading import read_unknown
from edgefleet.cloud.api.schemas import Healthz, UnknownBoxPublic, error_responses, unknown_box_public
from edgefleet.cloud.fleet import summarize_site
from edgefleet.errors import EdgefleetError

log = logging.getLogger(__name__)


class HealthLog:
    """What ``/healthz`` last answered, so that only changes are logged. One per app, kept in the lifespan
    state (``create_app``); probes run in the server's thread pool, hence the lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # What is down, as (broker connected, database usable); None before the first probe. The problems' text is
        # left out: a driver's message may differ from probe to probe while the same thing is down.
        self._last: tuple[bool, bool] | None = None

    def answered(self, *, broker_connected: bool, database_ok: bool, problems: list[str]) -> None:
        """Log the answer if it differs from the last one: unavailable with its problems, or ok again."""
        state = (broker_connected, database_ok)
        with self._lock:
            last, self._last = self._last, state
        if state == last:
            return
        if problems:
            log.warning("Answered health check as unavailable", extra={"problems": problems})
        elif last is not None:
            log.info("Answered health check as ok again")


def get_health_log(request: Request) -> HealthLog:
    health_log: HealthLog = request.state.health_log
    return health_log


HealthLogDep = Annotated[HealthLog, Depends(get_health_log)]

router = APIRouter(dependencies=[Depends(require_access)], responses=error_responses(403, 500))


@router.get(
    "/healthz",
    tags=["system"],
    summary="Is the controller healthy",
    response_model=Healthz,
    responses={503: {"model": Healthz, "description": "The broker or the database is down; problems says which."}},
)
def healthz(response: Response, controller: ControllerDep, settings: SettingsDep, health_log: HealthLogDep) -> Healthz:
    """200 while the controller is connected to the broker and can use its database, else 503 saying which.

    Only aggregate counts: probes carry no identity, so nothing of a single site is shown.
    """
    problems = []
    broker_connected = controller.ingest.connected
    if not broker_connected:
        problems.append(
            f"not connected to the broker at {settings.broker_url}; check that it runs and the controller's log"
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
    if problems:
        response.status_code = 503
    health_log.answered(broker_connected=broker_connected, database_ok=database_ok, problems=problems)
    return Healthz(
        status="unavailable" if problems else "ok",
        broker_connected=broker_connected,
        database_ok=database_ok,
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
