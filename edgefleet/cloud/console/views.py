"""What the console's pages show, made from the fleet state: pure functions, no I/O and no clock of their own.

The fleet overview is a heat map of cells, one per box, grouped by region and site. Each cell says one state
(``cell_state``), worst first:

- ``unreachable``: the box's whole site is out of reach (no box of it online, some seen: ``fleet.site_health``);
- ``lost``: the box is offline while others of its site are online;
- ``never-seen``: no word from the box yet;
- ``node-not-ready``: the agent is online but Kubernetes has lost the box's node (not-ready, unknown, missing);
- ``degraded``: online, but an app is not running, or a box the inventory gives a GPU reports none;
- ``online``: all well.

Readings are rounded (``TEMPERATURE_STEP_C``, ``UTILIZATION_STEP_PERCENT``) before they go into a cell, so a
cell changes when its colour can, not at every heartbeat: that keeps the event stream's batches small.
Called by ``edgefleet.cloud.api.live`` (which reads the fleet and streams the cells) and by the tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

from edgefleet.cloud.fleet import BoxLive, Reachability, ReachabilityState, site_health
from edgefleet.cloud.nodes import NodeState
from edgefleet.ids import BoxId, SiteId
from edgefleet.inventory import Box, Inventory, SiteKind
from edgefleet.messages import Heartbeat

CellState = Literal["online", "degraded", "node-not-ready", "lost", "unreachable", "never-seen"]
# Worst first: the order of the legend, and of the counters' "what is down".
CELL_STATES: Final[tuple[CellState, ...]] = (
    "unreachable",
    "lost",
    "never-seen",
    "node-not-ready",
    "degraded",
    "online",
)
# The states in which the box's agent speaks to the controller (it counts as online in the counters).
AGENT_ONLINE: Final[frozenset[CellState]] = frozenset({"online", "degraded", "node-not-ready"})
AGENT_LOST: Final[frozenset[CellState]] = frozenset({"lost", "unreachable"})

# The temperature colour scale runs in steps of a few degrees; a degree is finer than the eye can tell.
TEMPERATURE_STEP_C: Final = 1.0
# Utilisation swings by a few percent between heartbeats; 5 % steps keep the map calm and the stream small.
UTILIZATION_STEP_PERCENT: Final = 5.0


@dataclass(frozen=True, slots=True)
class BoxCell:
    """One box on the heat map: its state and the readings of the alternative colourings."""

    box: BoxId
    site: SiteId
    state: CellState
    gpu_temperature_c: float | None  # the hottest GPU, rounded to TEMPERATURE_STEP_C
    gpu_utilization_percent: float | None  # the GPUs' mean, rounded to UTILIZATION_STEP_PERCENT
    apps: str | None  # "name version" of each app, by name, comma-separated; None before the first heartbeat


@dataclass(frozen=True, slots=True)
class SiteView:
    id: SiteId
    display_name: str
    kind: SiteKind
    region: str
    boxes: tuple[BoxId, ...]


@dataclass(frozen=True, slots=True)
class RegionView:
    name: str
    sites: tuple[SiteView, ...]


@dataclass(frozen=True, slots=True)
class Counters:
    """The figures across the top of the overview. ``None``: not known now (that service does not run, or its
    store could not be read)."""

    sites: int
    boxes: int
    boxes_online: int
    boxes_lost: int
    active_rollouts: int | None
    firing_alerts: int | None


def is_degraded(box: Box, heartbeat: Heartbeat) -> bool:
    """An app that is not running, or no GPU readings from a box that the inventory says has a GPU."""
    if any(app.state != "running" for app in heartbeat.apps.apps):
        return True
    return box.gpu is not None and not heartbeat.gpu.available


def cell_state(
    box: Box, live: BoxLive, reachability: Reachability, node: NodeState, *, site_unreachable: bool
) -> CellState:
    if reachability.state != "online":
        if site_unreachable:
            return "unreachable"
        return "never-seen" if reachability.state == "never-seen" else "lost"
    if node.lost:
        return "node-not-ready"
    if live.heartbeat is not None and is_degraded(box, live.heartbeat):
        return "degraded"
    return "online"


def _rounded(value: float | None, step: float) -> float | None:
    return None if value is None else round(value / step) * step


def _apps(heartbeat: Heartbeat | None) -> str | None:
    if heartbeat is None:
        return None
    return ", ".join(f"{app.name} {app.version}" for app in sorted(heartbeat.apps.apps, key=lambda a: a.name))


def box_cell(
    box: Box, live: BoxLive, reachability: Reachability, node: NodeState, *, site_unreachable: bool
) -> BoxCell:
    heartbeat = live.heartbeat
    temperature: float | None = None
    utilization: float | None = None
    if heartbeat is not None and heartbeat.gpu.gpus:
        temperatures = [g.temperature_c for g in heartbeat.gpu.gpus if g.temperature_c is not None]
        utilizations = [g.utilization_percent for g in heartbeat.gpu.gpus if g.utilization_percent is not None]
        temperature = max(temperatures) if temperatures else None
        utilization = sum(utilizations) / len(utilizations) if utilizations else None
    return BoxCell(
        box=box.id,
        site=box.site,
        state=cell_state(box, live, reachability, node, site_unreachable=site_unreachable),
        gpu_temperature_c=_rounded(temperature, TEMPERATURE_STEP_C),
        gpu_utilization_percent=_rounded(utilization, UTILIZATION_STEP_PERCENT),
        apps=_apps(heartbeat),
    )


def fleet_cells(boxes: Iterable[tuple[Box, BoxLive, Reachability, NodeState]]) -> dict[BoxId, BoxCell]:
    """A cell for each box given (a whole site's boxes together: a site is unreachable as a whole)."""
    given = list(boxes)
    by_site: dict[SiteId, list[ReachabilityState]] = {}
    for box, _, reachability, _ in given:
        by_site.setdefault(box.site, []).append(reachability.state)
    unreachable = {site for site, states in by_site.items() if site_health(states) == "unreachable"}
    return {
        box.id: box_cell(box, live, reachability, node, site_unreachable=box.site in unreachable)
        for box, live, reachability, node in given
    }


def fleet_layout(inventory: Inventory, may_read: Callable[[SiteId], bool]) -> tuple[RegionView, ...]:
    """The regions and their sites that ``may_read`` admits, by name, each site's boxes in manifest order."""
    regions: dict[str, list[SiteView]] = {}
    for site in sorted(inventory.sites.values(), key=lambda s: s.id):
        if may_read(site.id):
            regions.setdefault(site.region, []).append(
                SiteView(site.id, site.display_name, site.kind, site.region, site.boxes)
            )
    return tuple(RegionView(name, tuple(sites)) for name, sites in sorted(regions.items()))


def count(
    layout: Iterable[RegionView],
    cells: Mapping[BoxId, BoxCell],
    *,
    active_rollouts: int | None,
    firing_alerts: int | None,
) -> Counters:
    """The counters over the sites of ``layout`` (those the caller may read)."""
    sites = [site for region in layout for site in region.sites]
    states = [cells[box].state for site in sites for box in site.boxes if box in cells]
    return Counters(
        sites=len(sites),
        boxes=len(states),
        boxes_online=sum(1 for s in states if s in AGENT_ONLINE),
        boxes_lost=sum(1 for s in states if s in AGENT_LOST),
        active_rollouts=active_rollouts,
        firing_alerts=firing_alerts,
    )


def changed_cells(sent: Mapping[BoxId, BoxCell], current: Mapping[BoxId, BoxCell]) -> dict[BoxId, BoxCell]:
    """The cells of ``current`` that differ from (or are missing in) what was ``sent``: one batch of changes."""
    return {box: cell for box, cell in current.items() if sent.get(box) != cell}
