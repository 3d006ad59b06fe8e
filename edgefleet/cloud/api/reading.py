"""Consistent reads of the live fleet state, for the routes and for /metrics.

The ingest mutates ``BoxLive`` objects under ``FleetState.lock``. A reader copies the boxes it needs under that
lock (``copy_box``: a few microseconds a box) and judges reachability and builds its answer outside it, so even
a scrape of every box holds the ingest up for a few milliseconds at most, and never sees half a message.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass

from edgefleet.cloud.fleet import BoxLive, FleetState, Reachability, UnknownBox, box_reachability, copy_box
from edgefleet.cloud.nodes import NodeState, node_state
from edgefleet.ids import BoxId, SiteId
from edgefleet.inventory import Box


@dataclass(frozen=True, slots=True)
class BoxView:
    """One box as of one moment: its inventory entry, a copy of its live state (without history: the
    controller's ``box_history`` has it), its reachability then, and its Kubernetes node as the node watch
    last saw it (``nodes.node_state``)."""

    box: Box
    live: BoxLive
    reachability: Reachability
    node: NodeState


def read_boxes(state: FleetState, boxes: Iterable[BoxId], *, now: float) -> list[BoxView]:
    """Views of ``boxes`` (all of the inventory's), in the order given."""
    inventory = state.inventory
    wanted = [inventory.boxes[b] for b in boxes]
    with state.lock:
        copies = [copy_box(state.boxes[b.id]) for b in wanted]
        book = state.nodes  # replaced whole by the node watch, never changed: read outside the lock
    return [
        BoxView(
            box,
            live,
            box_reachability(state, live, now=now),
            node_state(box, inventory.sites[box.site].cluster, book),
        )
        for box, live in zip(wanted, copies, strict=True)
    ]


def read_site_nodes(state: FleetState, site: SiteId) -> list[NodeState]:
    """The node of each box of the site, in manifest order."""
    with state.lock:
        inventory, book = state.inventory, state.nodes
    found = inventory.sites[site]
    return [node_state(inventory.boxes[b], found.cluster, book) for b in found.boxes]


def read_site(state: FleetState, site: SiteId, *, now: float) -> list[BoxView]:
    return read_boxes(state, state.inventory.sites[site].boxes, now=now)


def read_fleet(state: FleetState, *, now: float) -> list[BoxView]:
    """Every box of the inventory, site by site."""
    return read_boxes(state, (b for s in state.inventory.sites.values() for b in s.boxes), now=now)


def read_unknown(state: FleetState) -> list[UnknownBox]:
    """Boxes that publish but are in no site manifest, most recently seen first."""
    with state.lock:
        unknown = [copy.copy(u) for u in state.unknown.values()]
    return sorted(unknown, key=lambda u: (-u.last_seen, u.box))
