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
The versions matrix (``versions_matrix``) is apps by sites from each box's latest report, with mixed and lagging
sites and an active rollout's waves; a site's charts (``site_history``) are its boxes' health points in steps; a
central cluster's policy (``policy_parts``) is said part by part, each a sentence of the string catalogues.

Called by ``edgefleet.cloud.api.live`` (which reads the fleet and streams the cells), the console's routes and
the tests.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Final, Literal

from edgefleet.cloud.fleet import BoxLive, HealthPoint, Reachability, ReachabilityState, site_health
from edgefleet.cloud.nodes import NodeState
from edgefleet.ids import BoxId, SiteId
from edgefleet.inventory import Box, Inventory, SiteKind
from edgefleet.messages import APP_UP_STATES, Heartbeat
from edgefleet.policies import ClusterPolicy, Ratios

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
    """An app that is not running (nor completed), or no GPU readings from a box that the inventory says has a GPU."""
    if any(app.state not in APP_UP_STATES for app in heartbeat.apps.apps):
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


# --- the versions matrix: apps by sites ------------------------------------------------------------------


def version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """A version as comparable parts: numbers as numbers, other runs as text ("1.10.0" > "1.9.2"). The same rule
    as the rollouts' (``rollouts.service.version_key``), which the console may not import: it reaches the store."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.findall(r"\d+|[A-Za-z]+", version))


@dataclass(frozen=True, slots=True)
class ActiveRollout:
    """What the matrix marks of a rollout that runs: its target version, its waves' sites and states."""

    id: str
    app: str
    version: str
    waves: tuple[tuple[SiteId, ...], ...]
    wave_states: tuple[str, ...]  # waiting, awaiting-approval, running or passed, one per wave


@dataclass(frozen=True, slots=True)
class VersionCell:
    """What one app runs at one site: each version with how many boxes report it, newest first."""

    site: SiteId
    versions: tuple[tuple[str, int], ...]
    mixed: bool  # more than one version at the site
    lagging: bool  # a box runs an older version than the app's newest (the rollout's target while one runs)
    wave: int | None  # the site's wave in the app's active rollout
    in_current_wave: bool  # ... and that wave is the one under way now


@dataclass(frozen=True, slots=True)
class VersionRow:
    app: str
    newest: str  # the version the sites should reach: the active rollout's, else the newest reported
    rollout: str | None  # the active rollout's id
    current_wave: int | None
    cells: tuple[VersionCell | None, ...]  # one per site of the matrix; None: no box of the site reports the app


@dataclass(frozen=True, slots=True)
class VersionsMatrix:
    sites: tuple[SiteView, ...]
    rows: tuple[VersionRow, ...]


def current_wave(wave_states: Iterable[str]) -> int | None:
    """The wave under way: the first running or awaiting approval, else the first still waiting; None when every
    wave passed."""
    states = list(wave_states)
    for wanted in (("running", "awaiting-approval"), ("waiting",)):
        for number, state in enumerate(states):
            if state in wanted:
                return number
    return None


def versions_matrix(
    layout: Iterable[RegionView],
    reports: Mapping[BoxId, Mapping[str, str]],
    rollouts: Iterable[ActiveRollout],
) -> VersionsMatrix:
    """Apps (by name) by sites (those of ``layout``, in its order): which version runs where, from each box's
    latest report (``reports``: box -> app -> version). A site with two versions of an app is mixed; one with a
    box below the app's newest version (the active rollout's target while it runs) is lagging; the active
    rollout's wave of each site is marked, and the wave under way."""
    sites = tuple(site for region in layout for site in region.sites)
    by_app: dict[str, dict[SiteId, dict[str, int]]] = {}
    for site in sites:
        for box in site.boxes:
            for app, version in reports.get(box, {}).items():
                counts = by_app.setdefault(app, {}).setdefault(site.id, {})
                counts[version] = counts.get(version, 0) + 1
    active = {r.app: r for r in rollouts}
    rows = []
    for app in sorted(set(by_app) | set(active)):
        at_sites = by_app.get(app, {})
        rollout = active.get(app)
        seen = {version for per_site in at_sites.values() for version in per_site}
        newest = rollout.version if rollout is not None else max(seen, key=version_key)
        wave_of = {s: n for n, wave in enumerate(rollout.waves) for s in wave} if rollout is not None else {}
        under_way = current_wave(rollout.wave_states) if rollout is not None else None
        cells: list[VersionCell | None] = []
        for site in sites:
            here = at_sites.get(site.id)
            if here is None:
                cells.append(None)
                continue
            versions = tuple(sorted(here.items(), key=lambda item: version_key(item[0]), reverse=True))
            wave = wave_of.get(site.id)
            cells.append(
                VersionCell(
                    site=site.id,
                    versions=versions,
                    mixed=len(versions) > 1,
                    lagging=version_key(versions[-1][0]) < version_key(newest),
                    wave=wave,
                    in_current_wave=wave is not None and wave == under_way,
                )
            )
        rows.append(
            VersionRow(
                app=app,
                newest=newest,
                rollout=rollout.id if rollout is not None else None,
                current_wave=under_way,
                cells=tuple(cells),
            )
        )
    return VersionsMatrix(sites, tuple(rows))


# --- a site's history charts -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SiteHistoryPoint:
    """One step of a site's charts: the hottest GPU of the site and its boxes' mean GPU utilisation."""

    at: float  # the step's start
    gpu_temperature_max_c: float | None
    gpu_utilization_avg_percent: float | None
    boxes: int  # boxes with a reading in the step


def site_history(
    points: Mapping[BoxId, Sequence[HealthPoint]], *, since: float, step_s: float
) -> tuple[SiteHistoryPoint, ...]:
    """The boxes' health points from ``since`` on as steps of ``step_s``, oldest first; a step without any point
    is left out (the chart shows a gap). The utilisation is the mean of each box's mean in the step, so that a box
    that beats more often does not count more."""
    temperatures: dict[int, float] = {}
    utilizations: dict[int, dict[BoxId, list[float]]] = {}
    boxes: dict[int, set[BoxId]] = {}
    for box, series in points.items():
        for point in series:
            if point.at < since:
                continue
            step = int((point.at - since) // step_s)
            boxes.setdefault(step, set()).add(box)
            if point.gpu_temperature_max_c is not None:
                temperatures[step] = max(
                    temperatures.get(step, point.gpu_temperature_max_c), point.gpu_temperature_max_c
                )
            if point.gpu_utilization_avg_percent is not None:
                utilizations.setdefault(step, {}).setdefault(box, []).append(point.gpu_utilization_avg_percent)
    out = []
    for step in sorted(boxes):
        per_box = [sum(values) / len(values) for values in utilizations.get(step, {}).values()]
        out.append(
            SiteHistoryPoint(
                at=since + step * step_s,
                gpu_temperature_max_c=temperatures.get(step),
                gpu_utilization_avg_percent=sum(per_box) / len(per_box) if per_box else None,
                boxes=len(boxes[step]),
            )
        )
    return tuple(out)


# --- a central cluster's policy, in the console's words ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class PolicyPart:
    """One part of a cluster's policy as the console says it: ``key`` names the sentence in the string
    catalogues (``policy.<key>``), ``values`` fill it. Names, numbers and windows are the manifest's own; the
    sentence around them is the language's."""

    key: str
    values: Mapping[str, str]


def _number(value: Fraction | None) -> str | None:
    return None if value is None else f"{float(value):g}"


def _ratios(ratios: Ratios) -> dict[str, str]:
    out = {}
    for resource, value in (("cpu", _number(ratios.cpu)), ("memory", _number(ratios.memory))):
        if value is not None:
            out[resource] = value
    return out


def policy_parts(policy: ClusterPolicy) -> tuple[PolicyPart, ...]:
    """The policy part by part, in the order ``edgefleet clusters`` prints it: overcommit, host groups, the
    cluster's host group, exclusive hosts, anti-affinity, event forwarding, then each namespace's own. Empty: no
    policy. A ratio set for one resource only says that one (``overcommit_cpu``, ``overcommit_memory``)."""
    parts: list[PolicyPart] = []
    ratios = _ratios(policy.ratios)
    if ratios:
        parts.append(PolicyPart("overcommit" if len(ratios) == 2 else f"overcommit_{next(iter(ratios))}", ratios))
    for name, labels in sorted(policy.host_groups.items()):
        parts.append(
            PolicyPart("host_group", {"name": name, "labels": ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))})
        )
    if policy.host_group is not None:
        parts.append(PolicyPart("workloads_on", {"group": policy.host_group}))
    for exclusive in policy.exclusive:
        values = {
            "group": exclusive.host_group,
            "namespaces": ", ".join(exclusive.namespaces),
            "apps": ", ".join(exclusive.apps),
        }
        who = "both" if exclusive.namespaces and exclusive.apps else "apps" if exclusive.apps else "namespaces"
        if exclusive.window is None:
            parts.append(PolicyPart(f"exclusive_always_{who}", values))
        else:
            parts.append(PolicyPart(f"exclusive_{who}", {**values, "window": str(exclusive.window)}))
    for name, apps in sorted(policy.anti_affinity.items()):
        parts.append(PolicyPart("anti_affinity", {"name": name, "apps": ", ".join(apps)}))
    if policy.events:
        parts.append(PolicyPart("events", {"n": str(len(policy.events))}))
    for name, own in sorted(policy.namespaces.items()):
        own_ratios = _ratios(own.ratios) if own.ratios is not None else {}
        said_of = {"namespace": name, **own_ratios, **({"group": own.host_group} if own.host_group else {})}
        said = [*(f"overcommit_{r}" for r in own_ratios), *(["group"] if own.host_group is not None else [])]
        if not said and own.audit:
            parts.append(PolicyPart("namespace_as_cluster", said_of))
        for what in said:
            parts.append(PolicyPart(f"namespace_{what}", said_of))
        if not own.audit:
            parts.append(PolicyPart("namespace_not_audited", said_of))
    return tuple(parts)
