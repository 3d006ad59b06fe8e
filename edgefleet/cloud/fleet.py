"""Observed state of the fleet, and the pure rules that move it: which message is newer, when a box is
reachable, how a site is doing. No I/O and no clock of its own: callers pass ``now`` (receive time).

The ingest applies messages here (under ``FleetState.lock``); the API, metrics and alerting read snapshots.
Rules (docs/protocol.md):
- a heartbeat moves a box forward only when it is newer: the same boot with a higher ``seq``, or another boot
  that started later (``sent_at - uptime_s``, by the box's own clock) than the current one; duplicates and
  late messages are counted and leave the state as it was;
- "last seen" is the controller's receive time, never the box's clock; the box's clock skew is measured as
  ``sent_at - received_at`` of its latest heartbeat (the broker hop adds milliseconds, not seconds);
- an "offline" status counts only for the box's current boot and a session not older than its latest
  "online": a Last Will that the broker delivers after the box's new "online" is stale and ignored;
- reachability is a level, computed from ``last_seen`` against ``now`` on every read: online while a
  heartbeat came within ``missed_beats x interval_s`` and no current "offline" status says otherwise.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Final, Literal

from edgefleet.ids import BoxId, SiteId
from edgefleet.inventory import Inventory
from edgefleet.messages import BoxStatus, Heartbeat

# One hour of 10 s heartbeats per box in memory for charts: ~2,000 boxes x 360 points x ~100 B = ~70 MB at most.
HISTORY_POINTS: Final = 360

ApplyOutcome = Literal["accepted", "duplicate", "stale"]
ReachabilityState = Literal["online", "offline", "never-seen"]
SiteHealth = Literal["ok", "degraded", "unreachable", "unknown"]


@dataclass(frozen=True, slots=True)
class HealthPoint:
    """One sample of a box's health for charts: what the heartbeat said, at the controller's receive time."""

    at: float
    cpu_percent: float | None
    memory_used_percent: float | None
    disk_used_percent: float | None
    gpu_temperature_max_c: float | None
    gpu_utilization_avg_percent: float | None


@dataclass(slots=True)
class BoxLive:
    """What the controller has observed of one box of the inventory."""

    box: BoxId
    site: SiteId
    boot: str | None = None
    # When the current boot started, by the box's clock (sent_at - uptime_s): orders boots of one box.
    boot_started_at: float | None = None
    seq: int = 0
    first_seen: float | None = None
    last_seen: float | None = None
    heartbeat: Heartbeat | None = None
    clock_skew_s: float | None = None
    # From the retained status channel: the latest status of the current boot.
    status_state: Literal["online", "offline"] | None = None
    status_reason: str | None = None
    status_session: int = 0
    status_at: float | None = None
    history: deque[HealthPoint] = field(default_factory=lambda: deque(maxlen=HISTORY_POINTS))
    # Set when anything above changed since the persister last saved this box.
    dirty: bool = False


@dataclass(slots=True)
class UnknownBox:
    """A box that publishes but is not in the inventory: listed for ops so they can add it, nothing else kept."""

    box: str
    claimed_site: str | None
    first_seen: float
    last_seen: float
    messages: int = 1


@dataclass(frozen=True, slots=True)
class Reachability:
    state: ReachabilityState
    reason: str
    since: float | None


@dataclass(slots=True)
class FleetState:
    """Live state of every box of the inventory. Mutated only by the ingest, under ``lock``."""

    inventory: Inventory
    boxes: dict[BoxId, BoxLive]
    unknown: dict[str, UnknownBox] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def for_inventory(cls, inventory: Inventory) -> FleetState:
        return cls(inventory, {b.id: BoxLive(b.id, b.site) for b in inventory.boxes.values()})


def apply_heartbeat(box: BoxLive, heartbeat: Heartbeat, *, received_at: float) -> ApplyOutcome:
    """Move ``box`` forward by ``heartbeat`` if it is newer; see the module rules. Pure but for ``box``."""
    raise NotImplementedError


def apply_status(box: BoxLive, status: BoxStatus, *, received_at: float) -> ApplyOutcome:
    """Take an online/offline status if it belongs to the box's current boot and newest session."""
    raise NotImplementedError


def evaluate_reachability(box: BoxLive, *, now: float, interval_s: float, missed_beats: int) -> Reachability:
    """Online, offline (with the reason: "connection-lost", "shutdown", "heartbeat-timeout"), or never seen."""
    raise NotImplementedError
