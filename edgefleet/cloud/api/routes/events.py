"""``/api/v1/overview`` and ``/api/v1/events``: the fleet as the console's heat map, whole, then as it changes;
``/api/v1/versions``: the versions matrix (apps by sites).

``/api/v1/events`` is the one event stream a browser opens (server-sent events): first a ``snapshot`` event (the
body of ``/api/v1/overview``) and an ``activity`` event, then a ``changes`` event whenever cells or counters
changed, an ``activity`` event whenever the rollouts or the caller's alerts changed (``live.Activity``: pages that
show them read their API again), each at most one per ``live.COALESCE_S``, and a comment line every
``KEEPALIVE_S`` while nothing changes (so proxies keep the connection). A new inventory sends a new ``snapshot``. The stream ends when the server shuts down
(``end_streams``). Both go through the access check like every route, and
carry only the sites the caller may read.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator
from typing import Annotated, Final

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from edgefleet.cloud.access.authorizing import Principal
from edgefleet.cloud.api.console_schemas import (
    ActivityPublic,
    OverviewPublic,
    VersionsPublic,
    changes_public,
    overview_public,
    versions_public,
)
from edgefleet.cloud.api.deps import PrincipalDep, require_access
from edgefleet.cloud.api.errors import Unavailable
from edgefleet.cloud.api.live import ROLLOUT_PAGE, Activity, FleetFeed, readable_layout, visible
from edgefleet.cloud.api.reading import read_fleet
from edgefleet.cloud.api.schemas import error_responses
from edgefleet.cloud.console.views import ActiveRollout, changed_cells, versions_matrix
from edgefleet.errors import EdgefleetError
from edgefleet.ids import BoxId

# Proxies and load balancers close a connection silent for a minute or so; a comment line every 15 s keeps it.
KEEPALIVE_S: Final = 15.0
# zlib's default trade of time for size: the snapshot of 2,000 cells in a few milliseconds.
GZIP_LEVEL: Final = 6
# 16 + 15: a gzip header and trailer around a 32 KB window (what Content-Encoding: gzip means).
GZIP_WBITS: Final = 31
# How soon a browser reconnects after the stream broke (the EventSource's own retry, in milliseconds).
RETRY_MS: Final = 2000

router = APIRouter(
    prefix="/api/v1",
    tags=["console"],
    dependencies=[Depends(require_access)],
    responses=error_responses(401, 403, 429, 500),
)


def get_feed(request: Request) -> FleetFeed:
    feed: FleetFeed = request.state.console_feed
    return feed


FeedDep = Annotated[FleetFeed, Depends(get_feed)]


@router.get("/overview", summary="Show the fleet as a heat map", response_model=OverviewPublic)
def get_overview(feed: FeedDep, principal: PrincipalDep) -> OverviewPublic:
    """Every box of the sites the caller may read, as one cell each, grouped by region and site, with the
    overview's counters. The same body is the first event of ``/api/v1/events``."""
    frame = feed.frame()
    layout, cells = visible(frame, principal)
    return overview_public(frame.at, frame.inventory_version, layout, cells, feed.counters(frame, layout, principal))


@router.get(
    "/versions",
    summary="Show which version of each app runs at each site",
    response_model=VersionsPublic,
    responses=error_responses(503),
)
def get_versions(feed: FeedDep, principal: PrincipalDep) -> VersionsPublic:
    """Apps by the sites the caller may read, from each box's latest heartbeat: the versions at each site with how
    many boxes run them, sites with mixed versions and sites lagging behind the app's newest version (the active
    rollout's target while one runs), and each site's wave in the app's active rollout (fleet-wide callers only)."""
    controller = feed.controller
    now = controller.clock.now()
    views = read_fleet(controller.state, now=now)
    layout = readable_layout(feed.frame().layout, principal)
    reports: dict[BoxId, dict[str, str]] = {
        v.box.id: {a.name: a.version for a in v.live.heartbeat.apps.apps} for v in views if v.live.heartbeat is not None
    }
    active: list[ActiveRollout] = []
    if controller.rollouts is not None and principal.may_see(None):
        try:
            page = controller.rollouts.page(limit=ROLLOUT_PAGE)
        except EdgefleetError as exc:
            raise Unavailable(f"cannot read the rollouts now: {exc}") from exc
        active = [
            ActiveRollout(
                id=r.id,
                app=r.app,
                version=r.spec.version,
                waves=tuple(tuple(w.sites) for w in r.spec.waves),
                wave_states=tuple(r.status.waves),
            )
            for r in page
            if r.active
        ]
    return versions_public(now, versions_matrix(layout, reports, active))


@router.get(
    "/events",
    summary="Follow the fleet's changes (server-sent events)",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
            "description": "A `snapshot` event (the body of /api/v1/overview), then `changes` events: the cells "
            "and counters that changed, and `activity` events: tokens that change with the rollouts and the "
            "alerts; each at most two a second.",
        }
    },
)
async def stream_events(request: Request, feed: FeedDep, principal: PrincipalDep) -> StreamingResponse:
    """The one stream a console page listens to; it ends when the browser goes. Gzipped when the browser takes it
    (every browser does), each event flushed whole."""
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Vary": "Accept-Encoding"}
    events = _events(feed, principal)
    if "gzip" in request.headers.get("accept-encoding", "").lower():
        headers["Content-Encoding"] = "gzip"
        return StreamingResponse(_gzipped(events), media_type="text/event-stream", headers=headers)
    return StreamingResponse(events, media_type="text/event-stream", headers=headers)


async def _gzipped(events: AsyncIterator[str]) -> AsyncIterator[bytes]:
    """``events`` as one gzip stream, flushed after each event so that it reaches the browser at once. The snapshot
    of 2,000 cells shrinks about tenfold (docs/performance.md, "Console"); Starlette's GZipMiddleware leaves
    event streams alone, as it cannot know where an event ends."""
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, GZIP_WBITS)
    async for event in events:
        yield compressor.compress(event.encode()) + compressor.flush(zlib.Z_SYNC_FLUSH)
    yield compressor.flush()


def _event(name: str, data: str) -> str:
    return f"event: {name}\ndata: {data}\n\n"


def _activity(activity: Activity) -> str:
    return _event("activity", ActivityPublic(rollouts=activity.rollouts, alerts=activity.alerts).model_dump_json())


async def _events(feed: FleetFeed, principal: Principal) -> AsyncIterator[str]:
    yield f"retry: {RETRY_MS}\n\n"
    frame = await run_in_threadpool(feed.frame)
    layout, sent = visible(frame, principal)
    counters = await run_in_threadpool(feed.counters, frame, layout, principal)
    yield _event(
        "snapshot", overview_public(frame.at, frame.inventory_version, layout, sent, counters).model_dump_json()
    )
    activity = await run_in_threadpool(feed.activity, frame, principal)
    yield _activity(activity)
    quiet_s = 0.0
    while True:
        await asyncio.sleep(feed.coalesce_s)
        if feed.ending.is_set():
            return  # the server shuts down; the browser reconnects to the next one
        newer = await run_in_threadpool(feed.frame)
        if newer is not frame:
            version, frame = frame.inventory_version, newer
            layout, cells = visible(frame, principal)
            now_counters = await run_in_threadpool(feed.counters, frame, layout, principal)
            now_activity = await run_in_threadpool(feed.activity, frame, principal)
            if now_activity != activity:
                yield _activity(now_activity)
                activity, quiet_s = now_activity, 0.0
            if frame.inventory_version != version:  # sites or boxes came or went: the page redraws the map
                body = overview_public(frame.at, frame.inventory_version, layout, cells, now_counters)
                yield _event("snapshot", body.model_dump_json())
                sent, counters, quiet_s = cells, now_counters, 0.0
                continue
            changes = changed_cells(sent, cells)
            if changes or now_counters != counters:
                yield _event("changes", changes_public(frame.at, changes, now_counters).model_dump_json())
                sent, counters, quiet_s = cells, now_counters, 0.0
                continue
        quiet_s += feed.coalesce_s
        if quiet_s >= KEEPALIVE_S:
            yield ": keep-alive\n\n"
            quiet_s = 0.0
