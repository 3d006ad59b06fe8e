"""The console's live feed: the fleet as heat-map cells, read at most once per ``COALESCE_S`` however many browsers
listen, and the batches of changed cells each browser's event stream sends (``GET /api/v1/events``).

One ``FleetFeed`` per app (``create_app`` puts it in the lifespan state). A frame is built from the fleet state
(``reading.read_fleet``: copies under the fleet lock, judged outside it) and the view models
(``console.views``); the alert tally and the rollouts, which read the database, are refreshed every
``EXTRAS_EVERY_S``: the counters, and the activity tokens (``Activity``) that tell the alert and rollout pages to
read their API again. Each stream keeps the cells it has sent and sends what differs from the newest frame,
so a browser that missed frames still ends up with the fleet as it is. Called from a thread pool, never on the
event loop: a frame of 2,000 boxes takes milliseconds (docs/performance.md).
"""

from __future__ import annotations

import logging
import threading
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from edgefleet.cloud.access.authorizing import Principal
from edgefleet.cloud.api.deps import FleetReader
from edgefleet.cloud.api.reading import read_fleet
from edgefleet.cloud.console.views import BoxCell, Counters, RegionView, count, fleet_cells, fleet_layout
from edgefleet.cloud.fleet import FleetState
from edgefleet.errors import EdgefleetError
from edgefleet.ids import BoxId

log = logging.getLogger(__name__)

# Changes reach a browser within this (plus the network): well inside the 2 s the console promises, and at most
# two reads of the fleet a second whatever the number of browsers.
COALESCE_S: Final = 0.5
# The alert tally and the rollout list are database reads (a few milliseconds); every second keeps the counters
# fresh, and an acknowledge or a rollout command shows on the pages within the 2 s the console promises.
EXTRAS_EVERY_S: Final = 1.0
# A rollout page this long holds every active rollout: one is active per app, and a fleet runs a few apps.
ROLLOUT_PAGE: Final = 200


@dataclass(frozen=True, slots=True)
class Frame:
    """The fleet as cells at one moment, for every site (each stream keeps what its caller may read)."""

    at: float
    inventory_version: str
    layout: tuple[RegionView, ...]
    cells: Mapping[BoxId, BoxCell]
    # When it was built by the controller clock's monotonic time, and from which fleet state (a test's in-memory
    # controller starts a new one): what decides whether it is still fresh.
    built: float
    state: FleetState


@dataclass(slots=True)
class _Extras:
    at: float
    value: int | None
    token: str | None  # changes when what was read changes (None: not known)


@dataclass(frozen=True, slots=True)
class Activity:
    """Tokens that change when the rollouts, or the caller's active alerts, change: a page showing them reads its
    API again (event ``activity`` of the stream). None: not known (that service does not run, or not readable)."""

    rollouts: str | None
    alerts: str | None


def _token(value: object) -> str:
    return format(zlib.crc32(repr(value).encode()), "08x")


@dataclass(slots=True)
class FleetFeed:
    controller: FleetReader
    # Set when the server begins to shut down (``edgefleet.cloud.api.end_streams``): every stream then ends within
    # a batch, so the server's graceful shutdown is not kept waiting by a browser left open.
    ending: threading.Event = field(default_factory=threading.Event)
    coalesce_s: float = COALESCE_S
    extras_every_s: float = EXTRAS_EVERY_S
    _frame: Frame | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # Firing alerts by the set of sites the caller may read (None: all); active rollouts are fleet-wide.
    _alerts: dict[frozenset[str] | None, _Extras] = field(default_factory=dict)
    _rollouts: _Extras | None = None

    def frame(self) -> Frame:
        """The newest frame, built anew when the last one is ``coalesce_s`` old (blocking: call it off the loop)."""
        clock, state = self.controller.clock, self.controller.state
        with self._lock:
            frame = self._frame
            built = clock.monotonic()
            if frame is None or frame.state is not state or not 0 <= built - frame.built < self.coalesce_s:
                now = clock.now()
                inventory = state.inventory
                views = read_fleet(state, now=now)
                cells = fleet_cells((v.box, v.live, v.reachability, v.node) for v in views)
                layout = fleet_layout(inventory, lambda _: True)
                frame = self._frame = Frame(now, inventory.version, layout, cells, built, state)
            return frame

    def counters(self, frame: Frame, layout: tuple[RegionView, ...], principal: Principal) -> Counters:
        """The overview's counters as ``principal`` may see them (blocking: reads the database now and then)."""
        return count(
            layout,
            frame.cells,
            active_rollouts=self._active_rollouts(frame.at).value if principal.may_see(None) else None,
            firing_alerts=self._firing_alerts(frame.at, principal).value,
        )

    def activity(self, frame: Frame, principal: Principal) -> Activity:
        """The activity tokens as ``principal`` may see them (blocking, as ``counters``; the same reads)."""
        return Activity(
            rollouts=self._active_rollouts(frame.at).token if principal.may_see(None) else None,
            alerts=self._firing_alerts(frame.at, principal).token,
        )

    def _firing_alerts(self, now: float, principal: Principal) -> _Extras:
        # ``now`` is the frame's: the tally is as fresh as the frame it goes out with, give or take EXTRAS_EVERY_S.
        key = None if principal.sites is None else frozenset(principal.sites)
        with self._lock:
            known = self._alerts.get(key)
            if known is not None and 0 <= now - known.at < self.extras_every_s:
                return known
        alerting = self.controller.alerting
        value: int | None = None
        token: str | None = None
        if alerting is not None:
            try:
                tallies = alerting.tally(sites=principal.sites)
                # The newest alert too: one firing while another resolves leaves the tally as it was.
                newest = alerting.list_alerts(sites=principal.sites, limit=1)
            except EdgefleetError as exc:
                log.warning("Could not count firing alerts for the console", extra={"error": str(exc)})
            else:
                value = sum(t.count for t in tallies if t.state == "firing" and t.muted is None)
                token = _token((tallies, [(a.id, a.state) for a in newest]))
        extras = _Extras(now, value, token)
        with self._lock:
            self._alerts[key] = extras
        return extras

    def _active_rollouts(self, now: float) -> _Extras:
        with self._lock:
            known = self._rollouts
            if known is not None and 0 <= now - known.at < self.extras_every_s:
                return known
        rollouts = self.controller.rollouts
        value: int | None = None
        token: str | None = None
        if rollouts is not None:
            try:
                page = rollouts.page(limit=ROLLOUT_PAGE)
            except EdgefleetError as exc:
                log.warning("Could not count active rollouts for the console", extra={"error": str(exc)})
            else:
                value = sum(1 for r in page if r.active)
                # A tick that changes a site's state or gates updates the rollout (its updated_at).
                token = _token([(r.id, r.status.state, r.updated_at) for r in page])
        extras = _Extras(now, value, token)
        with self._lock:
            self._rollouts = extras
        return extras


def visible(frame: Frame, principal: Principal) -> tuple[tuple[RegionView, ...], dict[BoxId, BoxCell]]:
    """The part of ``frame`` that ``principal`` may read: its layout and cells."""
    if principal.sites is None:
        return frame.layout, dict(frame.cells)
    layout = readable_layout(frame.layout, principal)
    cells = {box: frame.cells[box] for region in layout for site in region.sites for box in site.boxes}
    return layout, cells


def readable_layout(layout: tuple[RegionView, ...], principal: Principal) -> tuple[RegionView, ...]:
    """The regions and sites of ``layout`` that ``principal`` may read; a region left with none goes."""
    kept = (RegionView(r.name, tuple(s for s in r.sites if principal.may_see(s.id))) for r in layout)
    return tuple(r for r in kept if r.sites)
