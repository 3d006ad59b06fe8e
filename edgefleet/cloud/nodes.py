"""What each cluster says of its nodes, and how a box's node is doing: the second signal per box, beside its
agent's MQTT reachability (issue 14, item 3). Pure: no I/O, no clock; callers pass ``now``.

The node watch (``node_watching.NodeWatch``) reads each cluster's Nodes through the gateway and keeps a
``ClusterNodes`` per cluster with ``took_list`` / ``took_change``; it publishes them in ``FleetState.nodes``. The API
(``node_state`` for a box, ``count_ready`` for a site) and alerting (``alerting.node_rules``) read them.

A box's node is the node named ``Box.node_name`` in its site's cluster. Its state:
- ``ready`` / ``not-ready`` / ``unknown``: the node's Ready condition True / False / Unknown (no Ready condition
  at all reads unknown: the kubelet never reported);
- ``missing``: the cluster is watched and has no node of that name (never joined, or deleted);
- ``not-watched``: the controller does not know: no gateway, the cluster's node list has not come yet, or its
  watch failed and has not recovered (``ClusterNodes.watched`` False). What was last known is not shown as
  current: a node seen Ready an hour ago may be gone.

Times: ``since`` is when the node entered its current state, on the controller's clock. The Ready condition's
``lastTransitionTime`` is the cluster's clock; it is taken when it is earlier than the moment the watch first saw
the state (so a controller that restarts knows a node has been NotReady for an hour), never later (a cluster clock
ahead of ours would date the change into the future).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Final, Literal

from edgefleet.ids import BoxId, ClusterId
from edgefleet.inventory import Box, Inventory

NodeStateName = Literal["ready", "not-ready", "unknown", "missing", "not-watched"]
NODE_STATES: Final[tuple[NodeStateName, ...]] = ("ready", "not-ready", "unknown", "missing", "not-watched")
# States in which KubeEdge has lost a node that the controller can see: what edge-node-lost is about.
LOST_STATES: Final[frozenset[NodeStateName]] = frozenset({"not-ready", "unknown", "missing"})
ReadyStatus = Literal["True", "False", "Unknown"]
_READY_STATE: Final[dict[str, NodeStateName]] = {"True": "ready", "False": "not-ready", "Unknown": "unknown"}

# Reasons of the states the controller makes itself (a node's own reason comes from its Ready condition).
REASON_NO_GATEWAY: Final = "no-gateway"
REASON_NOT_LISTED: Final = "not-listed-yet"
REASON_WATCH_FAILED: Final = "watch-failed"
REASON_NO_SUCH_NODE: Final = "no-such-node"
REASON_NO_READY_CONDITION: Final = "no-ready-condition"


@dataclass(frozen=True, slots=True)
class Taint:
    key: str
    effect: str


@dataclass(frozen=True, slots=True)
class NodeObservation:
    """One node as the watch last saw it."""

    name: str
    # The Ready condition's status; None when the node has none.
    ready: ReadyStatus | None
    reason: str | None
    message: str | None
    # The Ready condition's lastTransitionTime, on the cluster's clock (None: absent or unreadable).
    transition_at: float | None
    taints: tuple[Taint, ...]
    unschedulable: bool
    # Controller time of the latest list or event that carried the node.
    seen_at: float
    # Controller time at which the watch first saw the node with its current Ready status.
    observed_since: float

    @property
    def state(self) -> NodeStateName:
        return _READY_STATE.get(self.ready or "", "unknown")

    @property
    def since(self) -> float:
        """When the node entered its state, on the controller's clock (module docstring, "Times")."""
        if self.transition_at is None:
            return self.observed_since
        return min(self.transition_at, self.observed_since)


@dataclass(frozen=True, slots=True)
class ClusterNodes:
    """What the controller knows of one cluster's nodes. ``watched`` False: the list has not come yet, or the
    watch failed (``error``) and has not recovered; ``nodes`` then holds what was last known, not shown as
    current."""

    cluster: ClusterId
    watched: bool = False
    nodes: Mapping[str, NodeObservation] = field(default_factory=dict)
    # Controller time of the latest full list (None: never listed).
    listed_at: float | None = None
    # Nodes deleted while watched, with the controller time of their deletion: "missing since".
    deleted: Mapping[str, float] = field(default_factory=dict)
    error: str | None = None
    error_at: float | None = None


# Every cluster's nodes, by cluster id; a cluster absent from it has no watch (no gateway).
NodeBook = Mapping[ClusterId, ClusterNodes]


@dataclass(frozen=True, slots=True)
class NodeState:
    """A box's node now, as the API shows it and alerting judges it."""

    state: NodeStateName
    reason: str
    cluster: ClusterId
    node: str
    # When it entered the state, controller clock (None: not known, e.g. not watched).
    since: float | None = None
    taints: tuple[Taint, ...] = ()
    unschedulable: bool = False
    seen_at: float | None = None
    message: str | None = None

    @property
    def lost(self) -> bool:
        """KubeEdge has lost the node, as far as the controller can see (not-ready, unknown, missing)."""
        return self.state in LOST_STATES


# --- reading nodes ----------------------------------------------------------------------------------------


def parse_time(text: object) -> float | None:
    """An RFC 3339 time as the API writes it (``2026-12-01T10:00:00Z``) in epoch seconds; None if unreadable."""
    if not isinstance(text, str) or not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.timestamp()


def read_node(raw: Mapping[str, Any], *, now: float, before: NodeObservation | None = None) -> NodeObservation | None:
    """A node object (plain JSON, as the API serves it) as an observation at ``now``; None when it has no name.
    ``before``: the same node's previous observation, whose ``observed_since`` is kept while its Ready status
    stays the same. Fields of the wrong type read as absent, never raise: a cluster's odd object is not a crash."""
    metadata = raw.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if not isinstance(name, str) or not name:
        return None
    spec = _mapping(raw.get("spec"))
    status = _mapping(raw.get("status"))
    ready: ReadyStatus | None = None
    reason = message = None
    transition_at = None
    conditions = status.get("conditions")
    for condition in conditions if isinstance(conditions, list) else []:
        if isinstance(condition, dict) and condition.get("type") == "Ready":
            value = condition.get("status")
            ready = value if value in ("True", "False", "Unknown") else "Unknown"
            reason = _text(condition.get("reason"))
            message = _text(condition.get("message"))
            transition_at = parse_time(condition.get("lastTransitionTime"))
            break
    taints = []
    raw_taints = spec.get("taints")
    for taint in raw_taints if isinstance(raw_taints, list) else []:
        if isinstance(taint, dict) and isinstance(taint.get("key"), str):
            taints.append(Taint(taint["key"], _text(taint.get("effect")) or ""))
    same = before is not None and before.ready == ready
    return NodeObservation(
        name=name,
        ready=ready,
        reason=reason,
        message=message,
        transition_at=transition_at,
        taints=tuple(taints),
        unschedulable=spec.get("unschedulable") is True,
        seen_at=now,
        observed_since=before.observed_since if same and before is not None else now,
    )


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def took_list(known: ClusterNodes, items: Iterable[Mapping[str, Any]], *, now: float) -> ClusterNodes:
    """The cluster after a full list (the first, or a re-list after 410 or an error): watched, holding exactly
    ``items``. A node listed again with the same Ready status keeps its ``observed_since``; a node that was there
    before and is not now counts as deleted now."""
    nodes: dict[str, NodeObservation] = {}
    for raw in items:
        name = _name_of(raw)
        observed = read_node(raw, now=now, before=known.nodes.get(name) if name else None)
        if observed is not None:
            nodes[observed.name] = observed
    deleted = {name: at for name, at in known.deleted.items() if name not in nodes}
    if known.listed_at is not None:
        deleted.update({name: now for name in known.nodes if name not in nodes and name not in deleted})
    return ClusterNodes(known.cluster, watched=True, nodes=nodes, listed_at=now, deleted=deleted)


def took_change(
    known: ClusterNodes, kind: Literal["ADDED", "MODIFIED", "DELETED"], raw: Mapping[str, Any], *, now: float
) -> ClusterNodes:
    """The cluster after one watch event. The mapping is copied (the published one is never changed)."""
    name = _name_of(raw)
    if name is None:
        return known
    nodes = dict(known.nodes)
    deleted = dict(known.deleted)
    if kind == "DELETED":
        nodes.pop(name, None)
        deleted[name] = now
    else:
        observed = read_node(raw, now=now, before=known.nodes.get(name))
        if observed is None:
            return known
        nodes[name] = observed
        deleted.pop(name, None)
    return replace(known, nodes=nodes, deleted=deleted)


def watch_failed(known: ClusterNodes, error: str, *, now: float) -> ClusterNodes:
    """The watch broke: not watched until it lists again (what was known is kept, not shown as current)."""
    return replace(known, watched=False, error=error, error_at=now)


def _name_of(raw: Mapping[str, Any]) -> str | None:
    metadata = raw.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    return name if isinstance(name, str) and name else None


# --- joining nodes to boxes -------------------------------------------------------------------------------


def node_state(box: Box, cluster: ClusterId, book: NodeBook) -> NodeState:
    """The state of ``box``'s node in ``cluster`` (its site's cluster) as ``book`` knows it."""
    name = box.node_name
    known = book.get(cluster)
    if known is None:
        return NodeState("not-watched", REASON_NO_GATEWAY, cluster, name)
    if not known.watched:
        reason = REASON_WATCH_FAILED if known.error is not None else REASON_NOT_LISTED
        return NodeState("not-watched", reason, cluster, name, since=known.error_at, message=known.error)
    observed = known.nodes.get(name)
    if observed is None:
        since = known.deleted.get(name, known.listed_at)
        return NodeState("missing", REASON_NO_SUCH_NODE, cluster, name, since=since)
    reason = observed.reason or (REASON_NO_READY_CONDITION if observed.ready is None else observed.ready)
    return NodeState(
        observed.state,
        reason,
        cluster,
        name,
        since=observed.since,
        taints=observed.taints,
        unschedulable=observed.unschedulable,
        seen_at=observed.seen_at,
        message=observed.message,
    )


def join_nodes(inventory: Inventory, book: NodeBook, boxes: Iterable[BoxId] | None = None) -> dict[BoxId, NodeState]:
    """Each box's node state (``boxes`` None: every box of the inventory), each in its site's cluster."""
    chosen = inventory.boxes if boxes is None else boxes
    out: dict[BoxId, NodeState] = {}
    for box_id in chosen:
        box = inventory.boxes[box_id]
        out[box_id] = node_state(box, inventory.sites[box.site].cluster, book)
    return out


def count_ready(states: Iterable[NodeState]) -> int | None:
    """How many of the nodes are Ready; None when none of them is watched (the count would say nothing)."""
    listed = list(states)
    if not listed or all(s.state == "not-watched" for s in listed):
        return None
    return sum(1 for s in listed if s.state == "ready")
