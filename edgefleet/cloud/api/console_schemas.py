"""The bodies the console's overview reads (``GET /api/v1/overview`` and the events of ``GET /api/v1/events``),
built from the live feed's frames (``live.Frame``) and the view models of ``edgefleet.cloud.console.views``.

A cell travels as an array, ``[site, state, gpu temperature C, gpu utilisation %, apps]``: 2,000 of them are
the whole fleet, and an array is a third the size of an object with named fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from pydantic import BaseModel, Field

from edgefleet.cloud.api.schemas import utc
from edgefleet.cloud.console.views import BoxCell, CellState, Counters, RegionView
from edgefleet.ids import BoxId
from edgefleet.inventory import SiteKind

CellPublic = tuple[str, CellState, float | None, float | None, str | None]


class SitePlacePublic(BaseModel):
    id: str
    display_name: str
    kind: SiteKind
    boxes: list[str] = Field(description="The site's boxes in manifest order: the order of its cells.")


class RegionPublic(BaseModel):
    name: str
    sites: list[SitePlacePublic]


class CountersPublic(BaseModel):
    sites: int
    boxes: int
    boxes_online: int = Field(description="Boxes whose agent is online (all well, degraded, or node not ready).")
    boxes_lost: int = Field(description="Boxes offline, alone or with their whole site.")
    active_rollouts: int | None = Field(description="null: rollouts do not run, or not readable by the caller.")
    firing_alerts: int | None = Field(description="Firing alerts not muted; null: alerting does not run here.")


class ChangesPublic(BaseModel):
    at: datetime
    counters: CountersPublic
    cells: dict[str, CellPublic] = Field(
        description="Changed cells by box: [site, state, GPU temperature C, GPU utilisation %, apps]. state is "
        "online, degraded, node-not-ready, lost, unreachable (the whole site) or never-seen."
    )


class OverviewPublic(ChangesPublic):
    inventory_version: str
    regions: list[RegionPublic]


def cell_public(cell: BoxCell) -> CellPublic:
    return (cell.site, cell.state, cell.gpu_temperature_c, cell.gpu_utilization_percent, cell.apps)


def counters_public(counters: Counters) -> CountersPublic:
    return CountersPublic(
        sites=counters.sites,
        boxes=counters.boxes,
        boxes_online=counters.boxes_online,
        boxes_lost=counters.boxes_lost,
        active_rollouts=counters.active_rollouts,
        firing_alerts=counters.firing_alerts,
    )


def changes_public(at: float, cells: Mapping[BoxId, BoxCell], counters: Counters) -> ChangesPublic:
    return ChangesPublic(
        at=utc(at),
        counters=counters_public(counters),
        cells={box: cell_public(cell) for box, cell in cells.items()},
    )


def overview_public(
    at: float,
    inventory_version: str,
    layout: tuple[RegionView, ...],
    cells: Mapping[BoxId, BoxCell],
    counters: Counters,
) -> OverviewPublic:
    return OverviewPublic(
        at=utc(at),
        counters=counters_public(counters),
        cells={box: cell_public(cell) for box, cell in cells.items()},
        inventory_version=inventory_version,
        regions=[
            RegionPublic(
                name=region.name,
                sites=[
                    SitePlacePublic(id=s.id, display_name=s.display_name, kind=s.kind, boxes=list(s.boxes))
                    for s in region.sites
                ],
            )
            for region in layout
        ],
    )
