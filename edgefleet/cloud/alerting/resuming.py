"""Restart repair, pure: what a restarted alert loop does before its first pass.

The loop (``looping.AlertLoop``) saves an alert pass in two transactions, outbox first (the planner's state with
the messages), then the alert store. If the controller dies between the two, the planner's state holds alerts, or
newer versions of them, that the store lacks. At start-up ``resume_transitions`` compares the two: the planner's
versions are written into the store, and the planner is handed what it missed (an acknowledgement, an alert no
plan ever saw, such as one that fired while there was no notification file). So a restart tells nothing twice and
forgets nothing that fired. ``resume_memory`` rebuilds evaluation's memory (``tracking.FleetTrack``) from the
stored alerts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from edgefleet.cloud.alerting.alerts import (
    RESOLVED_BY_CONTROLLER,
    AlertKey,
    AlertKind,
    StoredAlert,
    Transition,
)
from edgefleet.cloud.alerting.evaluating import resume_track
from edgefleet.cloud.alerting.rules import TRANSITION_MEMORY
from edgefleet.cloud.alerting.tracking import BoxTrack, FleetTrack
from edgefleet.cloud.fleet import ReachabilityState
from edgefleet.ids import BoxId, SiteId


@dataclass(frozen=True, slots=True)
class Resume:
    """What a restarted loop does before its first pass: ``repairs`` are alerts to write into the store (the
    planner had them, the store's write was lost), ``transitions`` are handed to the first pass's plan."""

    repairs: tuple[StoredAlert, ...]
    transitions: tuple[Transition, ...]


def resume_transitions(
    active: Mapping[AlertKey, StoredAlert],
    latest: Mapping[AlertKey, StoredAlert],
    planned: Mapping[AlertKey, StoredAlert],
    *,
    now: float,
) -> Resume:
    """Make the alert store and the planner's memory agree after a restart. Pure.

    ``active``: the store's active alerts; ``latest``: the store's newest firing of the other keys the planner
    knows; ``planned``: the planner's latest version of each alert it took (``NotifierState.alerts``: active,
    unmuted ones). Per key:
    - the planner has a firing the store lacks, or a newer version of it: the store's write was lost after the
      outbox's; the planner's version is written (and an older firing it replaced is resolved);
    - the store resolved an alert the planner still has, or holds a newer version (an acknowledgement): the
      planner is given the transition, a resolve being told;
    - the store has an active, unmuted alert the planner never took (it fired while there was no notification
      file, or the planner's state was unreadable): it is told as firing now.
    """
    repairs: list[StoredAlert] = []
    transitions: list[Transition] = []
    for key in sorted(active.keys() | planned.keys(), key=lambda k: k.sort_key):
        stored = active.get(key) or latest.get(key)
        told = planned.get(key)
        if told is None:
            if stored is not None and stored.active and stored.muted is None:
                transitions.append(Transition("fire", stored, None, notify=True, at=now))
            continue
        if stored is None or (stored.id != told.id and stored.fired_at < told.fired_at):
            if stored is not None and stored.active:
                repairs.append(
                    dataclasses.replace(
                        stored,
                        state="resolved",
                        resolved_by=RESOLVED_BY_CONTROLLER,
                        resolved_at=told.fired_at,
                        updated_at=told.fired_at,
                    )
                )
            repairs.append(told)
        elif not stored.active:
            transitions.append(Transition("resolve", stored, told, notify=True, at=now))
        elif stored.id != told.id or stored.updated_at > told.updated_at:
            acknowledged = stored.state == "acknowledged" and told.state != "acknowledged"
            transitions.append(
                Transition("acknowledge" if acknowledged else "update", stored, told, notify=False, at=now)
            )
        elif stored.updated_at < told.updated_at:
            repairs.append(told)
    return Resume(tuple(repairs), tuple(transitions))


def resume_memory(
    active: Iterable[StoredAlert], history: Iterable[StoredAlert], *, seen: Collection[BoxId]
) -> FleetTrack:
    """Evaluation's memory for a restarted loop, from the stored alerts. Pure.

    ``evaluating.resume_track`` rebuilds what active alerts need (health conditions, flapping, site alerts); this
    adds each box's reachability as the last pass saw it and its recent online/offline transitions:
    - a box with an active box-lost alert was offline since it fired; one of ``seen`` (boxes the fleet state has
      a heartbeat of) without one was online; the others were never seen. Left to be observed anew, a lost box
      would count as "just went offline": with a few quiet boxes beside it the correlation hold would mute its
      alert and unmute it a moment later, telling it twice; and a box that went offline during the restart would
      not count the change;
    - the transitions are the fire and resolve times of its box-lost alerts in ``history`` (a box-lost alert
      fires in the very pass that sees the box go offline and resolves in the one that sees it back), but those
      while its site's site-unreachable alert was active: evaluation does not count those either.
    ``history``: box-lost and site-unreachable alerts, any state, at least those changed within the flapping
    window.
    """
    current = list(active)
    track = resume_track(current)
    outages: dict[SiteId, list[tuple[float, float]]] = {}
    changes: dict[BoxId, list[float]] = {}
    lost: dict[BoxId, StoredAlert] = {}
    for alert in [*history, *current]:
        key = alert.key
        if key.kind == AlertKind.SITE_UNREACHABLE:
            end = alert.resolved_at if alert.resolved_at is not None else float("inf")
            outages.setdefault(key.site, []).append((alert.started_at, end))
        elif key.kind == AlertKind.BOX_LOST and key.box is not None:
            times = changes.setdefault(key.box, [])
            times += [t for t in (alert.fired_at, alert.resolved_at) if t is not None]
            if alert.active:
                lost[key.box] = alert
    boxes = dict(track.boxes)
    sites = {alert.key.box: alert.key.site for alert in [*history, *current] if alert.key.box is not None}
    for box in set(seen) | changes.keys() | lost.keys():
        before = boxes.get(box, BoxTrack())
        quiet = outages.get(sites[box], []) if box in sites else []
        transitions = sorted({t for t in changes.get(box, []) if not any(start <= t <= end for start, end in quiet)})[
            -TRANSITION_MEMORY:
        ]
        if box in lost:
            state: ReachabilityState = "offline"
            changed_at: float | None = lost[box].fired_at
        else:
            state = "online" if box in seen else "never-seen"
            changed_at = transitions[-1] if transitions else None
        boxes[box] = dataclasses.replace(
            before,
            state=state,
            changed_at=changed_at,
            transitions=tuple(transitions) if transitions else before.transitions,
        )
    return dataclasses.replace(track, boxes=boxes)
