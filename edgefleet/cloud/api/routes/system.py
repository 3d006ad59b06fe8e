"""Operations routes: ``/healthz`` for probes and load balancers, ``/readyz`` and ``/livez`` for Kubernetes' readiness
and liveness probes (these three need no token: ``probes_router``),
``/metrics`` for Prometheus (a token that reads the whole fleet), and ``/api/v1/unknown-boxes`` (boxes that publish but are in no site manifest) for ops.

``/readyz`` is 200 while the controller's storage and broker connection are up, else 503 with what is down: the
narrower question a readiness probe asks (a "degraded" controller still serves reads and alerts, so it stays in).

``/healthz`` has three answers. "ok" (200); "degraded" (200): the controller serves and alerts but cannot save
(its database answers a ping but refuses writes, e.g. a full disk), keeping what it could not save in memory:
a load balancer keeps it in, since another controller on the same database could save no better, and a
person must fix the database (``problems`` says what); "unavailable" (503): the broker or the database is away.

``/healthz`` also says who leads the database (``leadership``: this controller's role, the leader, its address,
since when and the fencing epoch), and ``/readyz`` stays 200 on a standby whose broker and database are up: it
serves reads from its own live state at once (writes it forwards to the leader: ``api.standby``).

The probes cost the database no session of their own, however often they come: who leads is the election's last
read of the lease row (``leading.Election.view``, at most 5 s old, else it says the database has not answered),
and the database check is given again for 2 s (``store.Store.check``), so an outage shows within seconds.

``/healthz`` logs when the controller's health changes (``HealthLog``), not at every probe: a load balancer
probing every few seconds through an hour's outage must leave one warning and one recovery line, not thousands.
"""

from __future__ import annotations

import logging
import threading
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response

from edgefleet.cloud.api.deps import (
    FLEET_DEFAULT_LIMIT,
    MAX_LIMIT,
    ControllerDep,
    FleetReader,
    OptionalEnrollmentDep,
    PrincipalDep,
    SettingsDep,
    authorize,
    require_access,
)
from edgefleet.cloud.api.errors import Unavailable
from edgefleet.cloud.api.metrics import CONTENT_TYPE, render
from edgefleet.cloud.api.paging import CursorQuery, decode_cursor, encode_cursor, page_after, set_next_page
from edgefleet.cloud.api.reading import read_unknown
from edgefleet.cloud.api.schemas import (
    Healthz,
    LeadershipPublic,
    Livez,
    Readyz,
    UnknownBoxPublic,
    error_responses,
    leadership_public,
    unknown_box_public,
)
from edgefleet.cloud.fleet import summarize_site
from edgefleet.cloud.leading import LeaderView
from edgefleet.cloud.settings import Settings
from edgefleet.errors import EdgefleetError
from edgefleet.ids import SiteId

log = logging.getLogger(__name__)


class HealthLog:
    """What ``/healthz`` last answered, so that only changes are logged. One per app, kept in the lifespan
    state (``create_app``); probes run in the server's thread pool, hence the lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # What is down, as (broker connected, database usable, saves failing, hearing); None before the first
        # probe. The problems' text is left out: a driver's message may differ from probe to probe while the same
        # thing is down, and the hearing's reason carries changing figures.
        self._last: tuple[bool, bool, bool, str] | None = None

    def answered(self, *, status: str, what: tuple[bool, bool, bool, str], problems: list[str]) -> None:
        """Log the answer if what is down differs from the last answer's: unavailable or degraded with its
        problems, or ok again."""
        with self._lock:
            last, self._last = self._last, what
        if what == last:
            return
        if status != "ok":
            log.warning("Answered health check as %s", status, extra={"problems": problems})
        elif last is not None:
            log.info("Answered health check as ok again")


def get_health_log(request: Request) -> HealthLog:
    health_log: HealthLog = request.state.health_log
    return health_log


HealthLogDep = Annotated[HealthLog, Depends(get_health_log)]

router = APIRouter(dependencies=[Depends(require_access)], responses=error_responses(401, 403, 500))
# The probes answer without a token: Kubernetes' probes and load balancers carry none, and they show only whether
# the controller serves and aggregate counts (no site, no box, no secret; URLs masked). docs/security.md lists them.
probes_router = APIRouter(responses=error_responses(500))


@probes_router.get(
    "/healthz",
    tags=["system"],
    summary="Is the controller healthy",
    response_model=Healthz,
    responses={503: {"model": Healthz, "description": "The broker or the database is down; problems says which."}},
)
def healthz(response: Response, controller: ControllerDep, settings: SettingsDep, health_log: HealthLogDep) -> Healthz:
    """200 while the controller is connected to the broker and can use its database, else 503 saying which.
    200 with status "degraded" (and ``database_ok`` false) while the database answers but refuses to save the
    fleet state or the alerts: ``problems`` says what waits in memory and what to check.

    Only aggregate counts: probes carry no identity, so nothing of a single site is shown.
    """
    broker_connected, database_ok, problems = _connections(controller, settings)
    saving = controller.saving()
    saving_problems = saving.problems()
    now = controller.clock.now()
    summaries = [summarize_site(controller.state, site, now=now) for site in controller.state.inventory.sites]
    hearing = controller.hearing
    if problems:
        response.status_code = 503
    elif not hearing.judging:
        saving_problems.append(f"not judging box silence: the controller is {hearing.state} ({hearing.reason})")
    status: Literal["ok", "degraded", "unavailable"] = (
        "unavailable" if problems else "degraded" if saving_problems else "ok"
    )
    health_log.answered(
        status=status,
        what=(broker_connected, database_ok, bool(saving.problems()), hearing.state),
        problems=problems + saving_problems,
    )
    return Healthz(
        status=status,
        broker_connected=broker_connected,
        database_ok=database_ok and not saving.problems(),
        hearing=hearing.state,
        inventory_version=controller.state.inventory.version,
        boxes_online=sum(s.boxes_online for s in summaries),
        boxes_total=sum(s.boxes_total for s in summaries),
        problems=problems + saving_problems,
        leadership=_leadership(controller),
    )


def _leadership(controller: FleetReader) -> LeadershipPublic:
    """Who leads, from the lease row; while the database is away, what this controller knows of itself."""
    leadership = controller.leadership
    try:
        view = leadership.view()
    except EdgefleetError:
        view = LeaderView(None, None, leadership.epoch or 0, None, False, None)
    return leadership_public(view, leading=leadership.leader)


def _connections(controller: FleetReader, settings: Settings) -> tuple[bool, bool, list[str]]:
    """Whether the broker is connected and the database usable now, and what to check for each that is not."""
    problems: list[str] = []
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
    return broker_connected, database_ok, problems


@probes_router.get("/livez", tags=["system"], summary="Is the controller's process serving", response_model=Livez)
async def livez() -> Livez:
    """200 whenever the process answers HTTP: a Kubernetes liveness probe's question. Runs on the server's event
    loop, so a loop that hangs fails it. It never looks at the broker or the database: restarting a controller
    whose database is away would lose the saves it holds in memory until the database is back."""
    return Livez(alive=True)


@probes_router.get(
    "/readyz",
    tags=["system"],
    summary="Is the controller ready for traffic",
    response_model=Readyz,
    responses={503: {"model": Readyz, "description": "The broker or the database is down; problems says which."}},
)
def readyz(response: Response, controller: ControllerDep, settings: SettingsDep) -> Readyz:
    """200 while the controller's database answers and its broker connection is up, else 503 saying which: a
    Kubernetes readiness probe's question. Saves that fail or a controller that is not judging box silence yet
    leave it ready (``/healthz`` says "degraded" for those)."""
    _broker, _database, problems = _connections(controller, settings)
    if problems:
        response.status_code = 503
    return Readyz(ready=not problems, problems=problems)


@router.get(
    "/metrics",
    tags=["system"],
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text exposition format 0.0.4."}},
)
def metrics(request: Request, principal: PrincipalDep) -> Response:
    """Per-box up, last seen and clock skew; per-GPU temperature and utilisation; boxes per site and state;
    ingest counters by outcome; unknown boxes. Read from the live state at each scrape. Needs a token that reads
    the whole fleet (any role but site staff): Prometheus sends one from ``bearer_token_file``."""
    authorize(principal, "read", None)
    return Response(render(request.state.metrics_registry), media_type=CONTENT_TYPE)


@router.get(
    "/api/v1/unknown-boxes", summary="List unknown boxes", tags=["boxes"], response_model=list[UnknownBoxPublic]
)
def list_unknown_boxes(
    request: Request,
    response: Response,
    controller: ControllerDep,
    principal: PrincipalDep,
    enrollment: OptionalEnrollmentDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="At most this many.")] = FLEET_DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> list[UnknownBoxPublic]:
    """Boxes that publish but are in no site manifest, most recently seen first: add them to sites/ or switch
    them off. ``enrolled_site`` names the site a box enrolled for with a token (docs/security.md, Enrollment):
    adding it to that site's manifest adopts it. When more follow than ``limit``, the ``X-Next-Cursor`` header holds the ``cursor`` of the next
    page. A box heard again between two pages moves to the front of the list: a second pass from the first page
    shows it, the page after the cursor may not. The controller keeps 1,000 at most, so the default page holds
    all of them."""
    authorize(principal, "read", None)
    after = decode_cursor(cursor, "unknown boxes", (float, str)) if cursor is not None else None
    page, more = page_after(read_unknown(controller.state), lambda u: (-u.last_seen, u.box), after, limit)
    set_next_page(
        request, response, encode_cursor("unknown boxes", (-page[-1].last_seen, page[-1].box)) if more else None
    )
    enrolled: dict[str, SiteId] = {}
    if enrollment is not None and page:
        try:
            enrolled = enrollment.tokens.enrolled_sites([u.box for u in page])
        except EdgefleetError as exc:
            raise Unavailable(f"cannot read which sites the unknown boxes enrolled for: {exc}") from None
    return [unknown_box_public(u, enrolled.get(u.box)) for u in page]
