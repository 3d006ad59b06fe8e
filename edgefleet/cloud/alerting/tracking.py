"""The small memory that alert evaluation keeps between passes: per box, its online/offline transitions (for
flapping) and its health conditions (for "sustained" rules); per site, its site-unreachable alert while active.

Reachability itself is a level (``fleet.evaluate_reachability``, computed from receive times on every pass); this
memory holds only what a level cannot say: how often it changed and since when a reading has been bad. All types
are frozen; ``observe`` and ``evaluating.evaluate`` return a new ``FleetTrack`` and never change the one given,
so a caller can keep the previous one, compare, or throw a pass away. Called by ``evaluating.evaluate``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from edgefleet.cloud.alerting.rules import TRANSITION_MEMORY
from edgefleet.cloud.fleet import Reachability, ReachabilityState
from edgefleet.cloud.nodes import NodeStateName
from edgefleet.ids import BoxId, ClusterId, SiteId

# Reachability states between which a change is a transition; first contact (never-seen -> online) is not one.
_CONTACT_STATES = frozenset({"online", "offline"})


@dataclass(frozen=True, slots=True)
class BoxTrack:
    """What evaluation remembers of one box's reachability."""

    state: ReachabilityState = "never-seen"
    # Evaluation time of the latest change of ``state`` (for the site-correlation hold).
    changed_at: float | None = None
    # Evaluation times of the latest online<->offline changes, oldest first, at most TRANSITION_MEMORY.
    transitions: tuple[float, ...] = ()
    # Set while the box-flapping alert is active.
    flapping_since: float | None = None


@dataclass(frozen=True, slots=True)
class Condition:
    """One bad reading of a box that a rule follows over heartbeats (a hot GPU, an app down, a skewed clock).

    Times are the controller's receive times of heartbeats, so "sustained" means "shown by heartbeats that
    span this long", never "assumed while no heartbeat came".
    """

    since: float
    seen_at: float
    firing: bool = False
    value: float | None = None
    # Consecutive heartbeats that showed it.
    count: int = 1
    note: str = ""


ConditionKey = tuple[str, str | None]


@dataclass(frozen=True, slots=True)
class HealthTrack:
    """What evaluation remembers of one box's health readings."""

    # Receive time of the latest heartbeat taken: a pass without a newer heartbeat changes nothing.
    heartbeat_at: float | None = None
    boot: str | None = None
    conditions: Mapping[ConditionKey, Condition] = field(default_factory=dict)
    # Latest corrected-ECC count per GPU (``gpu-<index>``) of the current boot, to see it rise.
    ecc_corrected: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SiteTrack:
    """A site-unreachable alert while it is active (firing, or recovering until its boxes are back)."""

    # Receive time of the latest heartbeat of the earliest box that went silent: when the site went quiet.
    started_at: float
    # Boxes that went silent with the site (the cluster that fired the alert and those that joined it).
    affected: frozenset[BoxId]
    # Boxes of the site ever seen when the alert fired (the "of N" in its summary).
    seen: int
    # Set when the silent share fell below the threshold: the alert waits for the stragglers until grace ends.
    recovering_since: float | None = None


@dataclass(frozen=True, slots=True)
class NodeLostTrack:
    """A box whose agent is online while its node is lost (``alerting.node_rules``), from when that began."""

    # Controller time since when the node has been lost while the agent was online.
    since: float
    # The node as last judged: kept so that an alert held while the cluster is not watched reads the same.
    state: NodeStateName
    reason: str
    cluster: ClusterId
    node: str
    # The edge-node-lost alert fires (the threshold has passed).
    firing: bool = False


@dataclass(frozen=True, slots=True)
class SiteNodesTrack:
    """A site-nodes-lost alert while it is active."""

    started_at: float
    # The site's boxes whose nodes were lost while their agents were online.
    boxes: tuple[BoxId, ...]


@dataclass(frozen=True, slots=True)
class FleetTrack:
    """Evaluation's whole memory; start with ``FleetTrack()`` (or ``resume_track`` after a restart)."""

    boxes: Mapping[BoxId, BoxTrack] = field(default_factory=dict)
    health: Mapping[BoxId, HealthTrack] = field(default_factory=dict)
    sites: Mapping[SiteId, SiteTrack] = field(default_factory=dict)
    evaluated_at: float | None = None
    # Boxes whose node KubeEdge lost while their agent is online, and sites where all did (node_rules).
    nodes_lost: Mapping[BoxId, NodeLostTrack] = field(default_factory=dict)
    sites_nodes_lost: Mapping[SiteId, SiteNodesTrack] = field(default_factory=dict)


def observe_box(track: BoxTrack, reachability: Reachability, now: float) -> BoxTrack:
    """``track`` moved to the box's reachability at ``now``; the same object when nothing changed."""
    state = reachability.state
    if state == track.state:
        return track
    transitions = track.transitions
    if state in _CONTACT_STATES and track.state in _CONTACT_STATES:
        transitions = (*transitions, now)[-TRANSITION_MEMORY:]
    return replace(track, state=state, changed_at=now, transitions=transitions)


def observe(track: FleetTrack, reachability_by_box: Mapping[BoxId, Reachability], now: float) -> FleetTrack:
    """A new ``FleetTrack`` with each box's reachability at ``now`` taken in; boxes not in the mapping keep
    their memory. ``track`` is not changed."""
    boxes: dict[BoxId, BoxTrack] | None = None
    for box, reachability in reachability_by_box.items():
        before = track.boxes.get(box)
        after = observe_box(before or BoxTrack(), reachability, now)
        if after is not before:
            if boxes is None:
                boxes = dict(track.boxes)
            boxes[box] = after
    return replace(track, boxes=boxes if boxes is not None else track.boxes, evaluated_at=now)
