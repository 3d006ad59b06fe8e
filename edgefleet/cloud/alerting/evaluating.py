"""Which alerts should be firing now: the level-triggered heart of alerting.

``evaluate(view, track, rules, now=...)`` reads the fleet's observed state (the inventory and every box's
``BoxLive``), computes each box's reachability (``fleet.evaluate_reachability``), takes it into the memory
(``tracking``), and returns every alert that should fire now, which of them must not be notified now
(inhibited), and the new memory. Pure: no I/O, no clock, nothing given is changed. The controller's alert loop
calls it on a snapshot of the fleet state (``fleet.copy_box`` under ``FleetState.lock``) every second or so, then
``reconciling.reconcile_alerts``.

Rules (docs/alerting.md):
- box-lost while a seen box is offline (heartbeat timeout, Last Will, or a clean stop), resolved by its next
  heartbeat;
- box-flapping from ``flapping_transitions`` online/offline changes within ``flapping_window_s``, resolved after a
  window without a change; it inhibits the box's box-lost alert meanwhile;
- site-unreachable when at least ``site_threshold`` of a site's seen boxes went silent (offline, or late: no
  heartbeat for ``late_after_beats`` intervals) within the site window of each other, one of them offline. It
  inhibits the site's box-lost and box-flapping alerts, and their transitions while it lasts do not count as
  flapping. It resolves when the silent share is below the threshold and either every box that went silent
  with the site is back or ``site_recovery_grace_s`` has passed;
- correlation hold: while ``site_suspect_share`` of a site (and at least ``HOLD_MIN_BOXES``) has gone quiet
  together, a box-lost alert of a box that went offline less than ``site_hold_beats`` intervals ago is held
  (inhibited), so the first Last Wills of a site cut do not go out before the site alert that follows them;
- health alerts from heartbeats (``health``);
- edge-node-lost and site-nodes-lost from a box's agent online while its Kubernetes node is lost
  (``node_rules``, over the node states ``FleetView.nodes`` holds).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Final, Protocol

from edgefleet.cloud.alerting.alerts import AlertKey, AlertKind, DesiredAlert, Severity, StoredAlert
from edgefleet.cloud.alerting.health import follow_health, health_alerts, resume_conditions
from edgefleet.cloud.alerting.node_rules import judge_site_nodes, resume_node_tracks
from edgefleet.cloud.alerting.rules import AlertRules, Thresholds
from edgefleet.cloud.alerting.tracking import (
    BoxTrack,
    FleetTrack,
    HealthTrack,
    NodeLostTrack,
    SiteNodesTrack,
    SiteTrack,
    observe,
)
from edgefleet.cloud.fleet import (
    REASON_HEARTBEAT_TIMEOUT,
    BoxLive,
    Reachability,
    SilenceHold,
    evaluate_reachability,
    heartbeat_timeout,
)
from edgefleet.cloud.nodes import NodeBook
from edgefleet.ids import BoxId, SiteId
from edgefleet.inventory import Box, Inventory, Site

_EMPTY_HEALTH: Final = HealthTrack()
# Why an alert is inhibited (StoredAlert.muted_by): stable words plus the key, so they change only with the cause.
HELD_FOR_SITE: Final = "held: its site may be going down"
# A hold needs the box and three more gone quiet: with 1% loss two more late boxes in a site of 20 happen often
# enough (bench/detection.py held, and so never told, 1 of 40 dropped connections that came back within the
# hold); three more at the same time almost never do (~0.04% of drops instead of ~0.9%).
HOLD_MIN_BOXES: Final = 4


class FleetView(Protocol):
    """What evaluation reads: ``FleetState`` satisfies it (read it under its lock, or pass a copy)."""

    @property
    def inventory(self) -> Inventory: ...

    @property
    def boxes(self) -> Mapping[BoxId, BoxLive]: ...

    @property
    def silence_holds(self) -> Sequence[SilenceHold]:
        """Spans the controller could not hear: silence in them is nobody's (``fleet.silence_credit``)."""
        ...

    @property
    def nodes(self) -> NodeBook:
        """What each watched cluster says of its nodes (``FleetState.nodes``)."""
        ...


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The alerts that should be firing at ``at``; ``inhibited`` ones must not be notified (``inhibited_by``
    says by what), and ``track`` is the memory to pass to the next pass."""

    desired: dict[AlertKey, DesiredAlert]
    inhibited: frozenset[AlertKey]
    inhibited_by: Mapping[AlertKey, str]
    track: FleetTrack
    at: float


@dataclass(frozen=True, slots=True)
class _Silent:
    box: BoxId
    # Receive time of its latest heartbeat: when it went silent.
    instant: float
    offline: bool


@dataclass(frozen=True, slots=True)
class _Cluster:
    members: frozenset[BoxId]
    start: float
    share: float
    any_offline: bool


def densest_cluster(silent: list[_Silent], window_s: float, seen: int) -> _Cluster | None:
    """The group of silent boxes whose silences began within ``window_s`` of each other that is the largest
    share of the boxes still reachable before it began (boxes silent since earlier are left out of the count,
    so a site with a few long-lost boxes is judged by the rest)."""
    if not silent or seen <= 0:
        return None
    ordered = sorted(silent, key=lambda s: s.instant)
    best: _Cluster | None = None
    best_rank = (-1.0, -1)
    end = 0
    for start in range(len(ordered)):
        if start > 0 and ordered[start].instant == ordered[start - 1].instant:
            continue
        end = max(end, start)
        while end < len(ordered) and ordered[end].instant - ordered[start].instant <= window_s:
            end += 1
        members = ordered[start:end]
        share = len(members) / (seen - start)
        rank = (share, len(members))
        if rank > best_rank:
            best_rank = rank
            best = _Cluster(
                members=frozenset(m.box for m in members),
                start=ordered[start].instant,
                share=share,
                any_offline=any(m.offline for m in members),
            )
    return best


def _labels(site: Site, key: AlertKey, severity: Severity) -> dict[str, str]:
    labels = {"kind": str(key.kind), "severity": str(severity), "site": site.id, "region": site.region}
    labels["site_kind"] = site.kind
    if key.box is not None:
        labels["box"] = key.box
    if key.detail is not None:
        labels["detail"] = key.detail
    return labels


def _lost_text(box: Box, reachability: Reachability, site: Site) -> tuple[str, str]:
    reason = reachability.reason
    timeout = heartbeat_timeout(site.interval_s, site.missed_beats)
    if reason == REASON_HEARTBEAT_TIMEOUT:
        summary = f"Box {box.id} lost: no heartbeat for {timeout:g} s"
    elif reason == "connection-lost":
        summary = f"Box {box.id} lost: its connection dropped (Last Will)"
    elif reason == "shutdown":
        summary = f"Box {box.id} offline: its agent was stopped"
    else:
        summary = f"Box {box.id} offline: {reason}"
    what = f"{box.role} {box.model}" if box.model else box.role
    return summary, f"{what} at {site.display_name} ({site.id})"


def evaluate(view: FleetView, track: FleetTrack, rules: AlertRules, *, now: float) -> Evaluation:
    """Every alert that should be firing at ``now``, which are inhibited, and the new memory (see the module
    rules). Boxes of the inventory missing from ``view.boxes`` count as never seen."""
    inventory = view.inventory
    reachability: dict[BoxId, Reachability] = {}
    lives: dict[BoxId, BoxLive] = {}
    for site in inventory.sites.values():
        for box_id in site.boxes:
            live = view.boxes.get(box_id) or BoxLive(box_id, site.id)
            lives[box_id] = live
            reachability[box_id] = evaluate_reachability(
                live, now=now, interval_s=site.interval_s, missed_beats=site.missed_beats, holds=view.silence_holds
            )
    observed = observe(track, reachability, now)
    boxes: dict[BoxId, BoxTrack] = dict(observed.boxes)
    health: dict[BoxId, HealthTrack] = {}
    sites: dict[SiteId, SiteTrack] = {}
    desired: dict[AlertKey, DesiredAlert] = {}
    inhibited_by: dict[AlertKey, str] = {}
    limits_cache: dict[tuple[SiteId | None, str | None], Thresholds] = {}
    nodes_lost: dict[BoxId, NodeLostTrack] = {}
    sites_nodes_lost: dict[SiteId, SiteNodesTrack] = {}
    book = view.nodes
    # Without any watch and nothing remembered, no node alert can fire or be held: skip the join.
    judge_nodes = bool(book) or bool(track.nodes_lost) or bool(track.sites_nodes_lost)

    for site in inventory.sites.values():
        site_limits = rules.for_site(site.id)
        window_s, hold_s, late_s = site_limits.heartbeat_dependent(site.interval_s)
        seen = 0
        silent: list[_Silent] = []
        silent_ids: set[BoxId] = set()
        for box_id in site.boxes:
            r = reachability[box_id]
            if r.state == "never-seen":
                continue
            seen += 1
            late = r.state == "online" and r.since is not None and now - r.since > late_s
            if r.state == "offline" or late:
                instant = r.since if r.since is not None else (boxes[box_id].changed_at or now)
                silent.append(_Silent(box_id, instant, r.state == "offline"))
                silent_ids.add(box_id)
        cluster = densest_cluster(silent, window_s, seen)

        # --- the site alert ---
        before = observed.sites.get(site.id)
        site_track: SiteTrack | None = None
        if (
            cluster is not None
            and cluster.any_offline
            and cluster.share >= site_limits.site_threshold
            and len(cluster.members) >= site_limits.site_min_boxes
        ):
            if before is None:
                site_track = SiteTrack(started_at=cluster.start, affected=cluster.members, seen=seen)
            else:
                site_track = replace(before, affected=before.affected | cluster.members, recovering_since=None)
        elif before is not None:
            still_out = before.affected & silent_ids
            recovering = before.recovering_since if before.recovering_since is not None else now
            if still_out and now - recovering < site_limits.site_recovery_grace_s:
                site_track = replace(before, recovering_since=recovering)
        active = site_track or before
        if active is not None:
            # Changes during a site outage are the site's, not its boxes': they must not make boxes "flap".
            for box_id in site.boxes:
                bt = boxes.get(box_id)
                if bt is not None and bt.transitions and bt.transitions[-1] >= active.started_at:
                    boxes[box_id] = replace(bt, transitions=tuple(t for t in bt.transitions if t < active.started_at))
        site_key = AlertKey(AlertKind.SITE_UNREACHABLE, site.id)
        site_cause = str(site_key)
        if site_track is not None:
            sites[site.id] = site_track
            desired[site_key] = _site_alert(site_key, site, site_track, silent_ids)

        # --- each box ---
        hold_cluster = (
            cluster
            if site_track is None
            and cluster is not None
            and cluster.share >= site_limits.site_suspect_share
            and len(cluster.members) >= HOLD_MIN_BOXES
            else None
        )
        for box_id in site.boxes:
            box = inventory.boxes[box_id]
            r = reachability[box_id]
            bt = _follow_flapping(boxes.get(box_id) or BoxTrack(), site_limits, now)
            if bt is not boxes.get(box_id):
                boxes[box_id] = bt
            if bt.flapping_since is not None:
                key = AlertKey(AlertKind.BOX_FLAPPING, site.id, box_id)
                window_min = f"{site_limits.flapping_window_s / 60:g}"
                desired[key] = DesiredAlert(
                    key=key,
                    severity=Severity.WARNING,
                    summary=f"Box {box_id} flapping: {site_limits.flapping_transitions} or more online/offline "
                    f"changes within {window_min} min",
                    description="Its link or agent keeps dropping; its lost/recovered notices are held back until "
                    f"it has been steady for {window_min} min.",
                    labels=_labels(site, key, Severity.WARNING),
                    started_at=bt.flapping_since,
                    details={"last_change_at": bt.transitions[-1] if bt.transitions else None},
                )
                if site_track is not None:
                    inhibited_by[key] = site_cause
            if r.state == "offline":
                key = AlertKey(AlertKind.BOX_LOST, site.id, box_id)
                summary, description = _lost_text(box, r, site)
                desired[key] = DesiredAlert(
                    key=key,
                    severity=Severity.CRITICAL,
                    summary=summary,
                    description=description,
                    labels=_labels(site, key, Severity.CRITICAL),
                    started_at=r.since if r.since is not None else (bt.changed_at or now),
                    details={"reason": r.reason, "last_heartbeat_at": r.since},
                )
                if site_track is not None:
                    inhibited_by[key] = site_cause
                elif bt.flapping_since is not None:
                    inhibited_by[key] = str(AlertKey(AlertKind.BOX_FLAPPING, site.id, box_id))
                elif (
                    hold_cluster is not None
                    and box_id in hold_cluster.members
                    and bt.changed_at is not None
                    and now - bt.changed_at < hold_s
                ):
                    inhibited_by[key] = HELD_FOR_SITE

            # --- health ---
            # Thresholds differ only by site override and box model: resolve each combination once per pass.
            combination = (site.id if site.id in rules.sites else None, box.model)
            limits = limits_cache.get(combination)
            if limits is None:
                limits = limits_cache[combination] = rules.for_box(site.id, box.model)
            before_health = observed.health.get(box_id, _EMPTY_HEALTH)
            after_health = follow_health(before_health, lives[box_id], limits)
            if after_health.conditions or after_health.heartbeat_at is not None:
                health[box_id] = after_health
            if after_health.conditions:
                for alert in health_alerts(after_health, site.id, box_id, limits, partial(_labels, site), now=now):
                    desired[alert.key] = alert

        # --- the boxes' nodes ---
        if judge_nodes:
            # When evaluation saw each box come online (the change that made it "online"), if it did.
            online_since = {b: bt.changed_at for b in site.boxes if (bt := boxes.get(b)) is not None}
            judged = judge_site_nodes(
                site,
                inventory.boxes,
                reachability,
                online_since,
                book,
                track.nodes_lost,
                track.sites_nodes_lost.get(site.id),
                site_limits,
                partial(_labels, site),
                now=now,
            )
            for alert in judged.desired:
                desired[alert.key] = alert
            inhibited_by.update(judged.inhibited_by)
            nodes_lost.update(judged.boxes)
            if judged.site is not None:
                sites_nodes_lost[site.id] = judged.site

    # Only boxes of the inventory are remembered: one removed from it is forgotten.
    kept = {box_id: bt for box_id, bt in boxes.items() if box_id in reachability}
    new_track = FleetTrack(
        boxes=kept,
        health=health,
        sites=sites,
        evaluated_at=now,
        nodes_lost=nodes_lost,
        sites_nodes_lost=sites_nodes_lost,
    )
    return Evaluation(
        desired=desired,
        inhibited=frozenset(inhibited_by),
        inhibited_by=inhibited_by,
        track=new_track,
        at=now,
    )


def _follow_flapping(track: BoxTrack, limits: Thresholds, now: float) -> BoxTrack:
    """Start flapping at ``flapping_transitions`` changes within the window; end it after a window without one."""
    if not track.transitions and track.flapping_since is None:
        return track
    recent = [t for t in track.transitions if now - t < limits.flapping_window_s]
    if track.flapping_since is None:
        if len(recent) >= limits.flapping_transitions:
            return replace(track, flapping_since=recent[0])
        return track
    if not recent:
        return replace(track, flapping_since=None)
    return track


def _site_alert(key: AlertKey, site: Site, track: SiteTrack, silent: set[BoxId]) -> DesiredAlert:
    still_out = tuple(sorted(track.affected & silent))
    what = "Central cluster" if site.kind == "central" else "Site"
    if track.recovering_since is None:
        summary = f"{what} {site.display_name} ({site.id}) unreachable: {len(silent)} of {track.seen} boxes silent"
    else:
        back = len(track.affected) - len(still_out)
        summary = f"{what} {site.display_name} ({site.id}) coming back: {back} of {len(track.affected)} boxes back"
    return DesiredAlert(
        key=key,
        severity=Severity.CRITICAL,
        summary=summary,
        description="Most of its boxes went silent together: the site's WAN link or power is down. "
        "Alerts of its single boxes are held while this one fires.",
        labels=_labels(site, key, Severity.CRITICAL),
        started_at=track.started_at,
        details={
            "silent_boxes": still_out,
            "affected": len(track.affected),
            "seen": track.seen,
            "recovering_since": track.recovering_since,
        },
    )


def resume_track(stored: Iterable[StoredAlert]) -> FleetTrack:
    """Evaluation's memory rebuilt from the active stored alerts, for a controller that restarts: alerts whose
    condition needs memory (sustained health readings, flapping, a site alert) go on firing instead of resolving
    and firing again. Reachability needs no memory: it is recomputed from receive times."""
    stored = list(stored)
    boxes: dict[BoxId, BoxTrack] = {}
    health: dict[BoxId, HealthTrack] = {}
    sites: dict[SiteId, SiteTrack] = {}
    nodes_lost, sites_nodes_lost = resume_node_tracks(stored)
    for alert in stored:
        if not alert.active:
            continue
        key, details = alert.key, alert.details
        if key.kind == AlertKind.SITE_UNREACHABLE:
            silent = details.get("silent_boxes")
            seen = details.get("seen")
            recovering = details.get("recovering_since")
            sites[key.site] = SiteTrack(
                started_at=alert.started_at,
                affected=frozenset(BoxId(b) for b in silent) if isinstance(silent, tuple) else frozenset(),
                seen=seen if isinstance(seen, int) else 0,
                recovering_since=float(recovering) if isinstance(recovering, int | float) else None,
            )
        elif key.box is None or key.kind == AlertKind.EDGE_NODE_LOST:
            continue
        elif key.kind == AlertKind.BOX_FLAPPING:
            last = details.get("last_change_at")
            changes = (float(last),) if isinstance(last, int | float) else (alert.updated_at,)
            boxes[key.box] = BoxTrack(transitions=changes, flapping_since=alert.started_at)
        else:
            conditions = resume_conditions(alert)
            if conditions:
                before = health.get(key.box, _EMPTY_HEALTH)
                health[key.box] = replace(before, conditions={**before.conditions, **conditions})
    return FleetTrack(boxes=boxes, health=health, sites=sites, nodes_lost=nodes_lost, sites_nodes_lost=sites_nodes_lost)
