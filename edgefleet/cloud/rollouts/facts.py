"""What the live fleet says of each site, as ``planning.SiteFacts``: reachable (a box of the site is online now)
and the versions of an app its boxes report in their latest heartbeats; and a site's health figures per version
(``site_figures``) for the health gate. Reads ``FleetState`` under its lock; called by the plan route and, later,
by the rollout's reconciler."""

from __future__ import annotations

from edgefleet.cloud.fleet import FleetState, box_reachability
from edgefleet.cloud.rollouts.figures import VersionFigures, mean_figures
from edgefleet.cloud.rollouts.planning import SiteFacts
from edgefleet.ids import SiteId
from edgefleet.messages import AppState


def site_facts(state: FleetState, app: str, *, now: float) -> dict[SiteId, SiteFacts]:
    """Every site of the inventory: whether any of its boxes is online at ``now``, and the app's versions its
    boxes last reported (a box that went offline still counts with what it last said)."""
    facts: dict[SiteId, SiteFacts] = {}
    with state.lock:
        for site in state.inventory.sites.values():
            reachable = False
            versions: set[str] = set()
            for box_id in site.boxes:
                box = state.boxes[box_id]
                if box_reachability(state, box, now=now).state == "online":
                    reachable = True
                if box.heartbeat is not None:
                    versions.update(a.version for a in box.heartbeat.apps.apps if a.name == app)
            facts[site.id] = SiteFacts(reachable=reachable, versions=frozenset(versions))
    return facts


def site_figures(state: FleetState, site: SiteId, app: str, *, now: float | None = None) -> VersionFigures:
    """The site's current health figures for ``app``: per version, the mean of each figure over the site's boxes
    that run it (``figures.mean_figures``), from their latest heartbeats. With ``now``, only the boxes online at
    ``now`` count: an offline box's last figures are old news. An unknown site has no figures."""
    apps: list[AppState] = []
    with state.lock:
        known = state.inventory.sites.get(site)
        for box_id in known.boxes if known is not None else ():
            box = state.boxes[box_id]
            if box.heartbeat is None:
                continue
            if now is not None and box_reachability(state, box, now=now).state != "online":
                continue
            apps.extend(a for a in box.heartbeat.apps.apps if a.name == app)
    return mean_figures(apps)
