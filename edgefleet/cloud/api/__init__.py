"""The controller's HTTP API (FastAPI): sites, boxes, unknown boxes, clusters, /healthz and /metrics, and the web
console (its pages, its assets at ``/console``, its event stream).

``create_app(settings)`` builds the app; its lifespan builds, starts and stops a ``Controller`` from
``settings``. A caller that already runs a controller (``edgefleet cloud serve``, which starts it first so that
start-up failures are reported in one line; tests, with an in-memory one) passes it as ``controller`` and keeps
owning it. Called by ``edgefleet.cli.cloud`` and by tests; nothing is kept in module globals.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from edgefleet import __version__
from edgefleet.cloud.access.limiting import GuessLimiter
from edgefleet.cloud.access.oidc import OidcClient
from edgefleet.cloud.api import errors
from edgefleet.cloud.api.deps import FleetReader
from edgefleet.cloud.api.live import FleetFeed
from edgefleet.cloud.api.metrics import build_registry
from edgefleet.cloud.api.routes import (
    alerts,
    audit,
    boxes,
    clusters,
    events,
    inventory,
    pages,
    rollouts,
    signin,
    silences,
    sites,
    system,
)
from edgefleet.cloud.api.routes import enrollment as enrollment_routes
from edgefleet.cloud.api.standby import StandbyForwardsWrites
from edgefleet.cloud.console.assets import static_dir
from edgefleet.cloud.enrolling import Enrollment
from edgefleet.cloud.settings import Settings

__all__ = ["create_app", "end_streams"]

TAGS = [
    {"name": "sites", "description": "Parcel transfer centers and central clusters, with box counts and health."},
    {"name": "boxes", "description": "GPU boxes and edge nodes: reachability, latest heartbeat, history."},
    {
        "name": "clusters",
        "description": "The Kubernetes clusters of the inventory: their sites, and whether the controller reaches them.",
    },
    {"name": "system", "description": "The controller's own health and its Prometheus metrics."},
    {"name": "alerts", "description": "Lost-contact and health alerts: firing, acknowledged, resolved."},
    {"name": "inventory", "description": "The site manifests in force; taking the sites directory again."},
    {
        "name": "silences",
        "description": "Planned maintenance: alerts of a site, box or kind not notified until a time.",
    },
    {"name": "rollouts", "description": "Staged rollouts of a release: the plan of waves over the fleet as it is now."},
    {"name": "enrollment", "description": "New boxes trading a single-use token of their site for a broker login."},
    {
        "name": "console",
        "description": "The web console's heat map of the fleet, whole and as it changes (SSE), and who is signed in.",
    },
    {"name": "audit", "description": "Every state-changing action: who, when, what, on what, before and after."},
]


def create_app(
    settings: Settings, *, controller: FleetReader | None = None, enrollment: Enrollment | None = None
) -> FastAPI:
    """The API app. Without ``controller`` its lifespan runs one built from ``settings`` (and its enrollment);
    with one, box enrollment runs when ``enrollment`` is given."""

    # Shared by the lifespan's feed and ``end_streams``, which the server's shutdown calls before the lifespan ends.
    ending = threading.Event()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        if controller is not None:
            with _signing_in(settings) as signing_in:
                yield _state(settings, controller, ending, signing_in, enrollment)
            return
        from edgefleet.clock import SystemClock
        from edgefleet.cloud.controller import Controller

        # Building loads the inventory and opens the database; keep that blocking work off the event loop.
        owned = await run_in_threadpool(lambda: Controller(settings, clock=SystemClock()))
        await run_in_threadpool(owned.start)
        try:
            with _signing_in(settings) as signing_in:
                yield _state(settings, owned, ending, signing_in, owned.enrollment)
        finally:
            await run_in_threadpool(owned.stop)

    app = FastAPI(
        title="edgefleet controller",
        version=__version__,
        summary="Sites, boxes and their live health, as the controller sees them.",
        description=(
            "API of the edgefleet controller: fleet state is read-only; alerts are acknowledged and silences "
            "managed here. Times are ISO 8601 in UTC, durations in seconds. "
            'Every error answers `{"error": {"code": "...", "message": "..."}}`; the message says what to do.'
        ),
        openapi_tags=TAGS,
        lifespan=lifespan,
    )
    # A standby forwards a write to the leader (or refuses it) before it reaches a route (api.standby); added
    # first, so that it runs inside the error shape and the body limit that errors.install adds around it.
    app.add_middleware(StandbyForwardsWrites)
    errors.install(app, max_body_bytes=settings.max_body_bytes)
    app.include_router(sites.router)
    app.include_router(boxes.router)
    app.include_router(system.probes_router)
    app.include_router(system.router)
    app.include_router(alerts.router)
    app.include_router(silences.router)
    app.include_router(inventory.router)
    app.include_router(clusters.router)
    app.include_router(rollouts.router)
    app.include_router(rollouts.holds_router)
    app.include_router(events.router)
    app.include_router(audit.router)
    app.include_router(pages.router)
    app.include_router(signin.router)
    app.include_router(signin.me_router)
    app.include_router(enrollment_routes.router)
    app.include_router(enrollment_routes.tokens_router)
    # The console's scripts, styles and string catalogues: no fleet data, and the sign-in page that identity
    # brings needs them before anyone is signed in; the pages and the data behind them pass the access check.
    app.mount("/console", StaticFiles(directory=static_dir()), name="console")
    app.state.ending_streams = ending
    return app


def end_streams(app: FastAPI) -> None:
    """End the console's event streams (within a batch). A server calls it as it begins to shut down: uvicorn
    waits for open responses before it ends the lifespan, and a browser's stream never ends by itself."""
    ending: threading.Event = app.state.ending_streams
    ending.set()


@contextmanager
def _signing_in(settings: Settings) -> Iterator[signin.SignIn]:
    """The sign-in routes' state: the provider's client where one is set up (its connections closed at the end)."""
    oidc = None if settings.oidc is None else OidcClient(settings.oidc)
    try:
        yield signin.SignIn(oidc=oidc)
    finally:
        if oidc is not None:
            oidc.http.close()


def _state(
    settings: Settings,
    controller: FleetReader,
    ending: threading.Event,
    signing_in: signin.SignIn,
    enrollment: Enrollment | None,
) -> dict[str, Any]:
    """What every request sees as ``request.state``. ``sessions`` is there when the controller keeps console
    sessions: ``deps.require_access`` asks it who a request without a bearer token is."""
    state: dict[str, Any] = {
        "enrollment": enrollment,
        # Failed enrollment tokens per source address (POST /api/v1/enroll is open to any caller).
        "enrollment_guesses": GuessLimiter(),
        "settings": settings,
        "controller": controller,
        "metrics_registry": build_registry(controller),
        "health_log": system.HealthLog(),
        "console_feed": FleetFeed(controller, ending),
        "signin": signing_in,
        # Who may call (``deps.require_access``): the controller's API tokens, and the failed guesses per address.
        "tokens": controller.tokens,
        "guesses": GuessLimiter(),
    }
    if controller.sessions is not None:
        state["sessions"] = controller.sessions
    return state
