"""The bodies the console reads: the overview (``GET /api/v1/overview`` and the events of ``GET /api/v1/events``),
built from the live feed's frames (``live.Frame``), and the versions matrix (``GET /api/v1/versions``), built from
the view models of ``edgefleet.cloud.console.views``, and a cluster's policy part by part
(``GET /api/v1/clusters/{cluster}/policy``).

A cell travels as an array, ``[site, state, gpu temperature C, gpu utilisation %, apps]``: 2,000 of them are
the whole fleet, and an array is a third the size of an object with named fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from pydantic import BaseModel, Field

from edgefleet.cloud.api.schemas import utc
from edgefleet.cloud.console.views import (
    BoxCell,
    CellState,
    Counters,
    PolicyPart,
    RegionView,
    SiteHistoryPoint,
    VersionsMatrix,
)
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


class ActivityPublic(BaseModel):
    """What changed besides the cells, for pages that show it (event ``activity``): each a token that changes when
    the rollouts, or the caller's active alerts, change (a command, a site's state, a firing, an acknowledge)."""

    rollouts: str | None = Field(description="null: rollouts do not run, or not readable by the caller.")
    alerts: str | None = Field(description="null: alerting does not run here.")


class VersionCellPublic(BaseModel):
    site: str
    versions: list[tuple[str, int]] = Field(description="[version, boxes reporting it], newest first.")
    mixed: bool = Field(description="More than one version runs at the site.")
    lagging: bool = Field(description="A box runs a version older than the app's newest (the rollout's target).")
    wave: int | None = Field(description="The site's wave in the app's active rollout (0: the canary).")
    in_current_wave: bool = Field(description="That wave is the one under way.")


class VersionRowPublic(BaseModel):
    app: str
    newest: str = Field(description="The active rollout's version, else the newest any box reports.")
    rollout: str | None = Field(description="The app's active rollout, if any.")
    current_wave: int | None
    cells: list[VersionCellPublic | None] = Field(description="One per site, in the order of sites; null: not there.")


class VersionSitePublic(BaseModel):
    id: str
    display_name: str
    kind: SiteKind
    region: str


class VersionsPublic(BaseModel):
    at: datetime
    sites: list[VersionSitePublic] = Field(description="The matrix's columns, by region, then site.")
    apps: list[VersionRowPublic]


def versions_public(at: float, matrix: VersionsMatrix) -> VersionsPublic:
    return VersionsPublic(
        at=utc(at),
        sites=[
            VersionSitePublic(id=s.id, display_name=s.display_name, kind=s.kind, region=s.region) for s in matrix.sites
        ],
        apps=[
            VersionRowPublic(
                app=row.app,
                newest=row.newest,
                rollout=row.rollout,
                current_wave=row.current_wave,
                cells=[
                    None
                    if c is None
                    else VersionCellPublic(
                        site=c.site,
                        versions=list(c.versions),
                        mixed=c.mixed,
                        lagging=c.lagging,
                        wave=c.wave,
                        in_current_wave=c.in_current_wave,
                    )
                    for c in row.cells
                ],
            )
            for row in matrix.rows
        ],
    )


class SiteHistoryPointPublic(BaseModel):
    at: datetime = Field(description="The step's start.")
    gpu_temperature_max_c: float | None = Field(description="The hottest GPU of the site in the step.")
    gpu_utilization_avg_percent: float | None = Field(description="The mean of the boxes' mean GPU utilisation.")
    boxes: int = Field(description="Boxes with a reading in the step.")


class SiteHistoryPublic(BaseModel):
    site: str
    since: datetime
    step_s: float
    points: list[SiteHistoryPointPublic] = Field(description="Oldest first; a step without readings is left out.")


def site_history_public(
    site: str, since: float, step_s: float, points: tuple[SiteHistoryPoint, ...]
) -> SiteHistoryPublic:
    return SiteHistoryPublic(
        site=site,
        since=utc(since),
        step_s=step_s,
        points=[
            SiteHistoryPointPublic(
                at=utc(p.at),
                gpu_temperature_max_c=p.gpu_temperature_max_c,
                gpu_utilization_avg_percent=p.gpu_utilization_avg_percent,
                boxes=p.boxes,
            )
            for p in points
        ],
    )


class PolicyPartPublic(BaseModel):
    key: str = Field(description="The sentence that says the part: the console's string policy.<key>.")
    values: dict[str, str] = Field(description="What fills the sentence: names, numbers and windows as written.")


class ClusterPolicyPublic(BaseModel):
    cluster: str
    timezone: str | None = Field(description="The cluster's local time zone, the one its windows are in.")
    parts: list[PolicyPartPublic] = Field(description="The policy part by part; empty: the cluster has none.")


def cluster_policy_public(cluster: str, timezone: str | None, parts: tuple[PolicyPart, ...]) -> ClusterPolicyPublic:
    return ClusterPolicyPublic(
        cluster=cluster,
        timezone=timezone,
        parts=[PolicyPartPublic(key=p.key, values=dict(p.values)) for p in parts],
    )
