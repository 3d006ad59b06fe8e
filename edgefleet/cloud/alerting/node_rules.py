"""Alerts from the disagreement of a box's two signals: its agent online over MQTT, its Kubernetes node lost.
Pure: ``evaluating.evaluate`` calls ``judge_site_nodes`` once per site per pass with the reachability it computed
and the node states the node watch published (``FleetState.nodes``, read through ``nodes.node_state``).

Rules (docs/alerting.md, "Two signals per box"):
- edge-node-lost, per box: its agent is online while its node is not-ready, unknown or missing, for longer than
  ``edge_node_lost_after_s`` (2 min by default). "Box alive, KubeEdge lost it: check edgecore." It resolves when
  the node is Ready again, or when the agent goes offline: then box-lost speaks for the box (one alert per box,
  never both).
- site-nodes-lost, per site: every box of the site whose agent is online (at least ``site_min_boxes`` of them)
  has an edge-node-lost alert due. It inhibits those alerts: the cause is the site's link to the KubeEdge cloud
  (cloudcore, the tunnel), not each box's edgecore.
- A cluster the controller does not watch (no gateway, not listed yet, watch failed) judges nothing: an alert
  firing stays as it was (its text too), none starts, none resolves for that reason (a held site alert ends when
  none of its boxes' agents is online any more). A cluster that the controller
  cannot reach is a problem of that cluster, told once on its health, not as one alert per box. The agent going
  offline still resolves the box's alert: that is known without the cluster.

The memory (``tracking.NodeLostTrack``, ``SiteNodesTrack``) holds since when each node has been lost while its
agent was online; ``resume_node_tracks`` rebuilds it from the active alerts after a restart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from edgefleet.cloud.alerting.alerts import AlertKey, AlertKind, DesiredAlert, Severity, StoredAlert
from edgefleet.cloud.alerting.rules import Thresholds
from edgefleet.cloud.alerting.tracking import NodeLostTrack, SiteNodesTrack
from edgefleet.cloud.fleet import Reachability
from edgefleet.cloud.nodes import NODE_STATES, NodeBook, NodeState, NodeStateName, node_state
from edgefleet.ids import BoxId, ClusterId, SiteId
from edgefleet.inventory import Box, Site

Labels = Callable[[AlertKey, Severity], dict[str, str]]


@dataclass(frozen=True, slots=True)
class SiteNodeJudgement:
    """One site's node alerts this pass, which are inhibited (by what), and the memory for the next pass."""

    desired: list[DesiredAlert]
    inhibited_by: dict[AlertKey, str]
    boxes: dict[BoxId, NodeLostTrack]
    site: SiteNodesTrack | None


def follow_node(
    before: NodeLostTrack | None,
    reachability: Reachability,
    node: NodeState,
    *,
    online_since: float | None,
    after_s: float,
    now: float,
) -> NodeLostTrack | None:
    """The box's memory after this pass: None when its agent is not online or its node is fine; held as it was
    while its cluster is not watched. The disagreement counts from when both held: the node lost and the agent
    online (``online_since``, when evaluation saw it come online; None: not known, e.g. after a restart). A box
    that boots after an hour off has a node NotReady for an hour, and edgecore needs seconds to report Ready:
    that is no alert."""
    if reachability.state != "online":
        return None
    if node.state == "not-watched":
        return before
    if not node.lost:
        return None
    began = node.since if node.since is not None else now
    if online_since is not None:
        began = max(began, online_since)
    began = min(began, now)
    since = min(before.since, began) if before is not None else began
    return NodeLostTrack(
        since=since,
        state=node.state,
        reason=node.reason,
        cluster=node.cluster,
        node=node.node,
        firing=now - since >= after_s,
    )


def judge_site_nodes(
    site: Site,
    inventory_boxes: Mapping[BoxId, Box],
    reachability: Mapping[BoxId, Reachability],
    online_since: Mapping[BoxId, float | None],
    book: NodeBook,
    before_boxes: Mapping[BoxId, NodeLostTrack],
    before_site: SiteNodesTrack | None,
    limits: Thresholds,
    labels: Labels,
    *,
    now: float,
) -> SiteNodeJudgement:
    """The site's edge-node-lost and site-nodes-lost alerts at ``now`` (module rules), from each box's
    reachability (online since when, as far as evaluation saw it) and its node in ``book`` (``nodes.node_state``)."""
    boxes: dict[BoxId, NodeLostTrack] = {}
    desired: list[DesiredAlert] = []
    box_keys: list[AlertKey] = []
    online: list[BoxId] = []
    known = book.get(site.cluster)
    watched = known is not None and known.watched
    for box_id in site.boxes:
        r = reachability[box_id]
        if r.state != "online":
            continue  # no memory, no alert: lost contact speaks for the box
        online.append(box_id)
        box = inventory_boxes[box_id]
        if watched and known is not None and before_boxes.get(box_id) is None:
            # The common case, every pass for most boxes: a Ready node and nothing to remember. Skipping the
            # full node state here keeps a pass over 2,000 boxes cheap.
            observed = known.nodes.get(box.node_name)
            if observed is not None and observed.ready == "True":
                continue
        node = node_state(box, site.cluster, book)
        track = follow_node(
            before_boxes.get(box_id),
            r,
            node,
            online_since=online_since.get(box_id),
            after_s=limits.edge_node_lost_after_s,
            now=now,
        )
        if track is None:
            continue
        boxes[box_id] = track
        if track.firing:
            alert = _box_alert(site, box_id, track, labels)
            desired.append(alert)
            box_keys.append(alert.key)

    site_track: SiteNodesTrack | None
    if not watched:
        # Judged nothing: as it was, while one of its boxes still holds its alert (agents lost end it).
        held = before_site is not None and any(b in boxes and boxes[b].firing for b in before_site.boxes)
        site_track = before_site if held else None
    elif online and len(online) >= limits.site_min_boxes and all(b in boxes and boxes[b].firing for b in online):
        members = tuple(online)
        started = before_site.started_at if before_site is not None else max(boxes[b].since for b in members)
        site_track = SiteNodesTrack(started_at=started, boxes=members)
    else:
        site_track = None

    inhibited_by: dict[AlertKey, str] = {}
    if site_track is not None:
        key = AlertKey(AlertKind.SITE_NODES_LOST, site.id)
        desired.append(_site_alert(key, site, site_track, labels))
        inhibited_by = dict.fromkeys(box_keys, str(key))
    return SiteNodeJudgement(desired, inhibited_by, boxes, site_track)


def _utc(at: float) -> str:
    return datetime.fromtimestamp(at, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _box_alert(site: Site, box: BoxId, track: NodeLostTrack, labels: Labels) -> DesiredAlert:
    key = AlertKey(AlertKind.EDGE_NODE_LOST, site.id, box)
    return DesiredAlert(
        key=key,
        severity=Severity.WARNING,
        summary=f"Box {box} alive, KubeEdge lost it: check edgecore",
        description=(
            f"Its agent reports over MQTT, but node {track.node} in cluster {track.cluster} is {track.state} "
            f"({track.reason}), beside the online agent since {_utc(track.since)}. Its pods keep running; new releases cannot reach it, and "
            f"pods without a NoExecute toleration are evicted. Check edgecore on the box (systemctl status edgecore) "
            f"at {site.display_name} ({site.id})."
        ),
        labels=labels(key, Severity.WARNING),
        started_at=track.since,
        details={
            "node": track.node,
            "cluster": track.cluster,
            "node_state": track.state,
            "node_reason": track.reason,
        },
    )


def _site_alert(key: AlertKey, site: Site, track: SiteNodesTrack, labels: Labels) -> DesiredAlert:
    count = len(track.boxes)
    return DesiredAlert(
        key=key,
        severity=Severity.CRITICAL,
        summary=f"Site {site.display_name} ({site.id}): KubeEdge lost all {count} nodes of its online boxes: "
        "check the site's link to cloudcore",
        description=(
            "Every box whose agent is online has lost its Kubernetes node at once: the site's tunnel to the "
            f"KubeEdge cloud (cloudcore on cluster {site.cluster}) is the likely cause, not each box's edgecore. "
            "The boxes' edge-node-lost alerts are held while this one fires."
        ),
        labels=labels(key, Severity.CRITICAL),
        started_at=track.started_at,
        details={"boxes": tuple(sorted(track.boxes))},
    )


def resume_node_tracks(
    stored: Iterable[StoredAlert],
) -> tuple[dict[BoxId, NodeLostTrack], dict[SiteId, SiteNodesTrack]]:
    """The node memory rebuilt from the active alerts, for a restarted controller: an edge-node-lost alert goes on
    firing (not resolving and firing again) while its node stays lost, and through the time before the cluster's
    first list (not watched: held)."""
    boxes: dict[BoxId, NodeLostTrack] = {}
    sites: dict[SiteId, SiteNodesTrack] = {}
    for alert in stored:
        if not alert.active:
            continue
        key, details = alert.key, alert.details
        if key.kind == AlertKind.EDGE_NODE_LOST and key.box is not None:
            state = details.get("node_state")
            boxes[key.box] = NodeLostTrack(
                since=alert.started_at,
                state=_state(state),
                reason=str(details.get("node_reason") or ""),
                cluster=ClusterId(str(details.get("cluster") or "")),
                node=str(details.get("node") or key.box),
                firing=True,
            )
        elif key.kind == AlertKind.SITE_NODES_LOST:
            members = details.get("boxes")
            sites[key.site] = SiteNodesTrack(
                started_at=alert.started_at,
                boxes=tuple(BoxId(b) for b in members) if isinstance(members, tuple) else (),
            )
    return boxes, sites


def _state(value: object) -> NodeStateName:
    for state in NODE_STATES:
        if value == state:
            return state
    return "unknown"
