"""Observed state of the fleet, and the pure rules that move it: which message is newer, when a box is
reachable, how a site is doing. No I/O and no clock of its own: callers pass ``now`` (receive time).

The ingest applies messages here (under ``FleetState.lock``); the API, metrics and alerting read snapshots.
Rules (docs/protocol.md):
- the controller's receive time is the only clock it trusts. A time the box sends (``sent_at``, a status's
  ``at``) is taken up to ``MAX_CLOCK_SKEW_S`` ahead of the receive time; beyond that it is clamped to it and the
  message counted ("clock-skew-clamped"), so no message dates itself into the future to outrank what follows;
- a heartbeat moves a box forward when it is newer by the box's own counters: the same boot with a higher
  ``seq``, or another boot that started later (``sent_at - uptime_s``, clamped) than the current one; duplicates
  and late messages are counted and leave the state as it was;
- a box that keeps heartbeating is never held by an older claim: a *live run* (heartbeats of one boot with
  rising ``seq``, spanning at least ``LIVE_RUN_FRACTION`` of the box's interval of receive time with no silence
  over ``RUN_GAP_BEATS`` intervals, received after the standing status was taken) is taken even when the counters call it late, and clears a standing
  "offline". A late backlog (a broker queue, an agent's buffer) arrives in a burst and is no run; a live agent
  beats once an interval. Whatever one message claimed (``seq`` + 100,000, a boot started next year, an
  "offline" of a made-up boot), the box's own agent wins it back with its next two heartbeats;
- "last seen" is the controller's receive time, never the box's clock; the box's clock skew is measured as
  ``sent_at - received_at`` of its latest heartbeat (the broker hop adds milliseconds, not seconds);
- an "offline" status counts only for the box's current boot and a session not older than its latest
  "online": a Last Will that the broker delivers after the box's new "online" is stale and ignored;
- reachability is a level, computed from ``last_seen`` against ``now`` on every read: online while a
  heartbeat came within ``heartbeat_timeout`` (``missed_beats x interval_s`` plus a jitter allowance) and no
  current "offline" status says otherwise.

How the rules are made exact, so that any interleaving, duplication or reordering of a box's messages within a
burst (less than ``LIVE_RUN_FRACTION`` of an interval) ends in the state its newest messages give:
- Boots of one box never overlap in time (one agent process ends before the next starts), so every time a
  message carries lies inside its boot's life: a heartbeat's ``sent_at - uptime_s``, a status's ``at`` (the
  agent stamps the will when it sets it, before connecting). Two boots are ordered by comparing any such times.
- Heartbeats form one track (``boot``, ``seq``, ``heartbeat``, ``last_seen``...), statuses another
  (``status_*``). Within a boot, statuses are ordered by ``(session, state)`` with "offline" after "online"
  of the same session; across boots by ``at``.
- The status track never holds a status older than the heartbeats' boot: a status of an older boot is
  refused, and a heartbeat of a newer boot clears a status of an older one. A status of a *newer* boot than
  the heartbeats' is taken (the box restarted and said so before its first heartbeat), "offline" included:
  it is the newest word about the box, so a box that restarted and died again before its first heartbeat
  reads offline at once instead of after the heartbeat timeout.
- A box is back after an "offline" of its current boot when a heartbeat of that boot with a higher ``seq``
  than the box had when the "offline" was taken arrives (``status_seq``): the agent reconnected and its
  "online" is late or lost. This rule and the live run depend on arrival order, as they must: only the order
  says "after".

What the box's counters and clock can no longer do: hold the box. What they still decide: the order of messages
inside a burst, and which boot's heartbeat is shown while two streams beat at once (an adversary that keeps
publishing on the box's topics can keep doing that; the rules promise recovery once it stops).
"""

from __future__ import annotations

import threading
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from math import isnan
from typing import Final, Literal, overload

from edgefleet.cloud.nodes import NodeBook
from edgefleet.ids import BoxId, SiteId
from edgefleet.inventory import Inventory
from edgefleet.messages import BoxStatus, Heartbeat

# One hour of 10 s heartbeats per box in memory for charts; older points are read from the database. Held as
# float64 rows (``HealthHistory``): 1,977 boxes x 360 points = 34 MB, where a HealthPoint object a point took
# 160 MB (docs/performance.md, "Controller memory").
HISTORY_POINTS: Final = 360
# Boxes outside the inventory that are listed for ops; past this a flood of made-up ids is only counted.
MAX_UNKNOWN_BOXES: Final = 1000

# "clock-skew-clamped": taken, with a box time clamped to the receive time + MAX_CLOCK_SKEW_S.
ApplyOutcome = Literal["accepted", "clock-skew-clamped", "duplicate", "stale"]
# (start, end) wall-clock seconds of a span the controller could not hear the fleet; end may be infinity.
SilenceHold = tuple[float, float]
ReachabilityState = Literal["online", "offline", "never-seen"]
SiteHealth = Literal["ok", "degraded", "unreachable", "unknown"]

# Reachability reasons (stable words, shown by the API and used by alerting). A status's own reason
# ("connection-lost" for the Last Will, "shutdown" for a clean stop) is passed through as the agent wrote it.
REASON_CONNECTED: Final = "connected"
REASON_HEARTBEAT_TIMEOUT: Final = "heartbeat-timeout"
# Heartbeats are late by up to ~20% of the interval on a loaded box or WAN, and 1% of them get lost. Two lost in
# a row then leave a gap of 3 intervals +- 20%: with an exact ``missed_beats x interval`` timeout about half of
# those gaps look like a lost box (bench/detection.py measured 5 false alarms in 10 minutes on 2,000 boxes, none
# with this allowance). It costs 20% of the timeout in detection time of a silent box; a dropped connection
# (Last Will) is not affected.
JITTER_ALLOWANCE: Final = 0.2


def heartbeat_timeout(interval_s: float, missed_beats: int) -> float:
    """How long a box may be silent before it counts as lost: ``missed_beats`` intervals plus the allowance."""
    return missed_beats * interval_s * (1 + JITTER_ALLOWANCE)


REASON_NEVER_SEEN: Final = "never-seen"

# How far ahead of the controller's receive time a box's clock may run before its times are clamped. NTP keeps a
# box within a second and the broker hop adds milliseconds; the clock-skew alert fires at 30 s by default
# (alerting.rules), so a box is reported before its times are clamped. A dead RTC battery or a bad NTP server
# puts a box years off: its messages are still taken, their times bounded, and the alert says why.
MAX_CLOCK_SKEW_S: Final = 60.0
# A run of heartbeats counts as a live agent once it spans this fraction of the box's interval in receive time:
# a live agent beats once an interval (the WAN may bunch two beats by ~20%); a backlog (the broker's queue, the
# agent's buffer, paho's resend) arrives in a burst. Two beats one interval apart always qualify.
LIVE_RUN_FRACTION: Final = 0.5
# A run is broken by a silence longer than this many intervals (one lost beat and some WAN delay still continue
# it): old messages delivered a day later do not continue the run they once belonged to.
RUN_GAP_BEATS: Final = 2.5


@dataclass(frozen=True, slots=True)
class HealthPoint:
    """One sample of a box's health for charts: what the heartbeat said, at the controller's receive time."""

    at: float
    cpu_percent: float | None
    memory_used_percent: float | None
    disk_used_percent: float | None
    gpu_temperature_max_c: float | None
    gpu_utilization_avg_percent: float | None


# A history row: ``at`` and the five readings, in HealthPoint's field order.
_ROW: Final = 6
# A reading the heartbeat did not give is stored as NaN. No reading is NaN itself: JSON has no NaN, and every
# derived figure is a ratio of finite numbers. A HealthPoint appended with a NaN reading reads back None.
_MISSING: Final = float("nan")


class HealthHistory(Sequence[HealthPoint]):
    """The newest ``maxlen`` health points of one box, oldest first: a ring of float64 rows in one array.

    Stands where a ``deque[HealthPoint]`` stood, with its reading side (``len``, indexing, iteration, ``==``)
    and ``append``; the points are made on read. A HealthPoint per point costs ~225 B (the object and six float
    objects), a row 48 B. The array is allocated whole at the first point, so a box that never sent one costs
    nothing and a full ring never grows. Not locked itself: the fleet state's lock guards it, as it did the deque.
    """

    __slots__ = ("_count", "_maxlen", "_next", "_rows")

    def __init__(self, maxlen: int = HISTORY_POINTS) -> None:
        if maxlen < 1:
            raise ValueError(f"a health history holds at least 1 point, got maxlen={maxlen}")
        self._maxlen = maxlen
        self._rows: array[float] | None = None
        self._next = 0  # the row the next point goes to
        self._count = 0

    @property
    def maxlen(self) -> int:
        return self._maxlen

    def record(
        self,
        at: float,
        cpu_percent: float | None,
        memory_used_percent: float | None,
        disk_used_percent: float | None,
        gpu_temperature_max_c: float | None,
        gpu_utilization_avg_percent: float | None,
    ) -> None:
        """Add a point from its figures (the ingest's path: no HealthPoint is built); the oldest goes when full."""
        rows = self._rows
        if rows is None:
            # Repetition sizes the array exactly; array("d", bytes(n)) over-allocates by ~7%.
            rows = self._rows = array("d", (0.0,)) * (_ROW * self._maxlen)
        i = self._next * _ROW
        rows[i] = at
        rows[i + 1] = _MISSING if cpu_percent is None else cpu_percent
        rows[i + 2] = _MISSING if memory_used_percent is None else memory_used_percent
        rows[i + 3] = _MISSING if disk_used_percent is None else disk_used_percent
        rows[i + 4] = _MISSING if gpu_temperature_max_c is None else gpu_temperature_max_c
        rows[i + 5] = _MISSING if gpu_utilization_avg_percent is None else gpu_utilization_avg_percent
        self._next = 0 if self._next + 1 == self._maxlen else self._next + 1
        if self._count < self._maxlen:
            self._count += 1

    def append(self, point: HealthPoint) -> None:
        self.record(
            point.at,
            point.cpu_percent,
            point.memory_used_percent,
            point.disk_used_percent,
            point.gpu_temperature_max_c,
            point.gpu_utilization_avg_percent,
        )

    def clear(self) -> None:
        self._rows = None
        self._next = 0
        self._count = 0

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> HealthPoint: ...

    @overload
    def __getitem__(self, index: slice) -> list[HealthPoint]: ...

    def __getitem__(self, index: int | slice) -> HealthPoint | list[HealthPoint]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._count))]
        if index < 0:
            index += self._count
        if not 0 <= index < self._count:
            raise IndexError(f"health history index {index} out of range (it holds {self._count} points)")
        return self._point((self._next - self._count + index) % self._maxlen)

    def __iter__(self) -> Iterator[HealthPoint]:
        oldest = self._next - self._count
        for k in range(self._count):
            yield self._point((oldest + k) % self._maxlen)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HealthHistory):
            return NotImplemented
        return list(self) == list(other)  # like deques, whatever their maxlen

    __hash__ = None  # type: ignore[assignment]  # mutable, like the deque it replaces

    def __repr__(self) -> str:
        return f"HealthHistory({list(self)!r}, maxlen={self._maxlen})"

    def _point(self, row: int) -> HealthPoint:
        assert self._rows is not None  # a row is read only when the history holds points
        i = row * _ROW
        at, cpu, memory, disk, temperature, utilization = self._rows[i : i + _ROW]
        return HealthPoint(
            at, _reading(cpu), _reading(memory), _reading(disk), _reading(temperature), _reading(utilization)
        )


def _reading(value: float) -> float | None:
    return None if isnan(value) else value


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
    history: HealthHistory = field(default_factory=HealthHistory)
    # Set when anything above changed since the persister last saved this box.
    dirty: bool = False
    # The boot the status above belongs to (it may be newer than ``boot`` until that boot's first heartbeat).
    status_boot: str | None = None
    # ``seq`` of the status's boot when the status was taken: a later heartbeat of that boot with a higher seq
    # means the box is back after an "offline" (see the module rules).
    status_seq: int = 0
    # History points appended since the persister last took them (the newest ``unsaved_points`` of ``history``).
    unsaved_points: int = 0
    # In memory only (a restart starts them afresh): the run of heartbeats being received now (see the module
    # rules) and the receive time of the standing status, which a run must postdate to refute it.
    run_boot: str | None = None
    run_seq: int = 0
    run_since: float | None = None
    run_last: float = 0.0
    status_taken_at: float | None = None


@dataclass(slots=True)
class UnknownBox:
    """A box that publishes but is not in the inventory: listed for ops so they can add it, nothing else kept."""

    box: str
    claimed_site: str | None
    first_seen: float
    last_seen: float
    messages: int = 1
    dirty: bool = True


@dataclass(frozen=True, slots=True)
class Reachability:
    """Whether a box is reachable now, why (a stable word: see the ``REASON_*`` constants and the status
    reasons), and the controller's receive time of its latest heartbeat (None when it never sent one)."""

    state: ReachabilityState
    reason: str
    since: float | None


@dataclass(frozen=True, slots=True)
class SiteSummary:
    boxes_total: int
    boxes_online: int
    boxes_offline: int
    boxes_never_seen: int
    health: SiteHealth


@dataclass(slots=True)
class FleetState:
    """Live state of every box of the inventory. Mutated under ``lock``: messages by the ingest; the ``dirty``
    flags and ``unsaved_points`` by the persister; the controller restores it before the ingest starts."""

    inventory: Inventory
    boxes: dict[BoxId, BoxLive]
    unknown: dict[str, UnknownBox] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Wall-clock spans in which the controller could not hear the fleet (set by the alert loop; an open span ends
    # at infinity): no box's silence is counted in them (``silence_credit``).
    silence_holds: tuple[SilenceHold, ...] = ()
    # What each cluster says of its nodes (set by the node watch, ``node_watching``; a cluster without a watch is
    # absent): each value is immutable and replaced whole, so a reader takes the mapping under the lock and reads
    # it outside.
    nodes: NodeBook = field(default_factory=dict)

    @classmethod
    def for_inventory(cls, inventory: Inventory) -> FleetState:
        return cls(inventory, {b.id: BoxLive(b.id, b.site) for b in inventory.boxes.values()})


# --- applying messages ------------------------------------------------------------------------------------


def health_point(heartbeat: Heartbeat, *, at: float) -> HealthPoint:
    """The chart figures of one heartbeat: memory and disk used %, hottest GPU, mean GPU utilisation."""
    return HealthPoint(at, *_health_figures(heartbeat))


def _health_figures(
    heartbeat: Heartbeat,
) -> tuple[float | None, float | None, float | None, float | None, float | None]:
    """HealthPoint's readings of one heartbeat, in its field order."""
    host = heartbeat.host
    memory = None
    if host.memory_total_bytes and host.memory_available_bytes is not None:
        memory = _used_percent(host.memory_total_bytes, host.memory_available_bytes)
    disk = None
    if host.disk_total_bytes and host.disk_free_bytes is not None:
        disk = _used_percent(host.disk_total_bytes, host.disk_free_bytes)
    hottest: float | None = None
    utilization_sum = 0.0
    utilization_count = 0
    # A plain loop: this runs for every heartbeat and builds no intermediate lists.
    for gpu in heartbeat.gpu.gpus:
        if gpu.temperature_c is not None and (hottest is None or gpu.temperature_c > hottest):
            hottest = gpu.temperature_c
        if gpu.utilization_percent is not None:
            utilization_sum += gpu.utilization_percent
            utilization_count += 1
    return (
        host.cpu_percent,
        memory,
        disk,
        hottest,
        utilization_sum / utilization_count if utilization_count else None,
    )


def _used_percent(total: int, free: int) -> float:
    used = (total - free) * 100.0 / total
    # A box may report more free than total for a moment (counters read at different instants): clamp.
    if used < 0.0:
        return 0.0
    return 100.0 if used > 100.0 else used


def bounded_time(box_time: float, *, received_at: float) -> tuple[float, bool]:
    """A box's time as the rules take it: at most MAX_CLOCK_SKEW_S after ``received_at``; True when clamped."""
    limit = received_at + MAX_CLOCK_SKEW_S
    return (limit, True) if box_time > limit else (box_time, False)


def _note_run(box: BoxLive, heartbeat: Heartbeat, received_at: float) -> bool:
    """Follow the run of heartbeats being received; True when it is live (see the module rules)."""
    if (
        box.run_since is None
        or heartbeat.boot != box.run_boot
        or heartbeat.seq < box.run_seq
        or received_at - box.run_last > RUN_GAP_BEATS * heartbeat.interval_s
    ):
        box.run_boot, box.run_seq, box.run_since = heartbeat.boot, heartbeat.seq, received_at
        box.run_last = received_at
    elif heartbeat.seq > box.run_seq:
        box.run_seq = heartbeat.seq
        box.run_last = received_at
        if box.status_taken_at is not None and box.run_since < box.status_taken_at:
            box.run_since = received_at  # only beats received after the standing status count against it
    # A duplicate leaves the run as it was: it was sent before, whenever it arrives.
    return received_at - box.run_since >= LIVE_RUN_FRACTION * heartbeat.interval_s


def apply_heartbeat(box: BoxLive, heartbeat: Heartbeat, *, received_at: float) -> ApplyOutcome:
    """Move ``box`` forward by ``heartbeat`` if it is newer or part of a live run; see the module rules. Pure
    but for ``box``."""
    sent_at, clamped = bounded_time(heartbeat.sent_at, received_at=received_at)
    started = sent_at - heartbeat.uptime_s
    live = _note_run(box, heartbeat, received_at)
    if box.boot is not None:
        if heartbeat.boot == box.boot:
            if heartbeat.seq == box.seq:
                return "duplicate"
            if heartbeat.seq < box.seq and not live:
                return "stale"
        elif box.boot_started_at is not None and started <= box.boot_started_at and not live:
            return "stale"
    if live and box.status_state == "offline":
        # The box kept beating after the "offline" was taken: whatever it said, it is an older claim.
        _clear_status(box)
    elif (
        heartbeat.boot != box.boot
        and box.status_boot is not None
        and box.status_boot != heartbeat.boot
        and box.status_at is not None
        and box.status_at < started
    ):
        # A new boot of the heartbeats: a status of an older boot no longer says anything about the box.
        _clear_status(box)
    box.boot = heartbeat.boot
    # Taken from every heartbeat, not only a boot's first, so the state depends on the newest message only.
    box.boot_started_at = started
    box.seq = heartbeat.seq
    box.heartbeat = heartbeat
    if box.first_seen is None:
        box.first_seen = received_at
    box.last_seen = received_at
    # Measured from the box's own sent_at, unclamped: the clock-skew alert reports how far off it really is.
    box.clock_skew_s = heartbeat.sent_at - received_at
    box.history.record(received_at, *_health_figures(heartbeat))
    box.unsaved_points += 1
    box.dirty = True
    return "clock-skew-clamped" if clamped else "accepted"


def _clear_status(box: BoxLive) -> None:
    box.status_boot = None
    box.status_state = None
    box.status_reason = None
    box.status_session = 0
    box.status_at = None
    box.status_seq = 0
    box.status_taken_at = None


_STATE_RANK: Final = {"online": 0, "offline": 1}


def apply_status(box: BoxLive, status: BoxStatus, *, received_at: float) -> ApplyOutcome:
    """Take an online/offline status if it belongs to the box's current boot and newest session.

    ``received_at`` bounds the status's ``at`` and dates the status for the live-run rule; it is not "last seen":
    a retained status may be hours old when it is delivered, so it says nothing of when the box was last seen.
    """
    at, clamped = bounded_time(status.at, received_at=received_at)
    if (
        status.boot != box.boot
        and box.boot_started_at is not None
        and box.boot is not None
        and at < box.boot_started_at
    ):
        return "stale"  # of a boot older than the heartbeats' (a late will of the previous boot, say)
    if box.status_boot is not None and box.status_state is not None:
        if status.boot == box.status_boot:
            new = (status.session, _STATE_RANK[status.state])
            current = (box.status_session, _STATE_RANK[box.status_state])
            if new == current:
                return "duplicate"
            if new < current:
                return "stale"
        elif box.status_at is not None and at < box.status_at:
            return "stale"
    box.status_boot = status.boot
    box.status_state = status.state
    box.status_reason = status.reason
    box.status_session = status.session
    box.status_at = at
    box.status_seq = box.seq if status.boot == box.boot else 0
    box.status_taken_at = received_at
    box.dirty = True
    return "clock-skew-clamped" if clamped else "accepted"


def note_unknown_box(state: FleetState, box: str, claimed_site: str | None, *, received_at: float) -> bool:
    """Record that ``box`` (not in the inventory) published; call under ``state.lock``. False when the list
    is full and the box was not listed."""
    known = state.unknown.get(box)
    if known is None:
        if len(state.unknown) >= MAX_UNKNOWN_BOXES:
            return False
        state.unknown[box] = UnknownBox(box, claimed_site, received_at, received_at)
        return True
    known.last_seen = max(known.last_seen, received_at)
    known.messages += 1
    if claimed_site is not None:
        known.claimed_site = claimed_site
    known.dirty = True
    return True


@dataclass(frozen=True, slots=True)
class InventoryChange:
    """What taking a new inventory changed: boxes and sites added and removed, boxes moved to another site, and
    unknown boxes adopted (they were publishing before the inventory named them)."""

    version: str
    previous_version: str
    sites_added: tuple[SiteId, ...] = ()
    sites_removed: tuple[SiteId, ...] = ()
    boxes_added: tuple[BoxId, ...] = ()
    boxes_removed: tuple[BoxId, ...] = ()
    boxes_moved: tuple[BoxId, ...] = ()
    adopted: tuple[BoxId, ...] = ()

    @property
    def changed(self) -> bool:
        return (
            bool(self.sites_added or self.sites_removed or self.boxes_added or self.boxes_removed or self.boxes_moved)
            or self.version != self.previous_version
        )


def replace_inventory(state: FleetState, inventory: Inventory) -> InventoryChange:
    """Make ``inventory`` the one in force; call under ``state.lock``. Boxes it adds start never seen (or take over
    their unknown-box entry, which is cleared), boxes it removes are forgotten (their saved row stays until they are
    added again), boxes that moved keep their state under their new site. Idempotent: the same inventory twice
    changes nothing the second time. ``state.boxes`` is changed in place: the ingest holds it."""
    before = state.inventory
    added = tuple(sorted(b for b in inventory.boxes if b not in state.boxes))
    removed = tuple(sorted(b for b in state.boxes if b not in inventory.boxes))
    moved: list[BoxId] = []
    for gone in removed:
        del state.boxes[gone]
    for box_id, entry in inventory.boxes.items():
        live = state.boxes.get(box_id)
        if live is None:
            state.boxes[box_id] = BoxLive(box_id, entry.site)
        elif live.site != entry.site:
            live.site = entry.site
            live.dirty = True
            moved.append(box_id)
    adopted = tuple(b for b in added if state.unknown.pop(b, None) is not None)
    state.inventory = inventory
    return InventoryChange(
        version=inventory.version,
        previous_version=before.version,
        sites_added=tuple(sorted(s for s in inventory.sites if s not in before.sites)),
        sites_removed=tuple(sorted(s for s in before.sites if s not in inventory.sites)),
        boxes_added=added,
        boxes_removed=removed,
        boxes_moved=tuple(sorted(moved)),
        adopted=adopted,
    )


# --- reading the state ------------------------------------------------------------------------------------


def is_back(box: BoxLive) -> bool:
    """A heartbeat newer than the box's current "offline" status arrived: the box reconnected."""
    return box.status_boot is not None and box.status_boot == box.boot and box.seq > box.status_seq


def silence_credit(last_seen: float, holds: Sequence[SilenceHold], *, now: float) -> float:
    """How much of the silence since ``last_seen`` fell in ``holds``: time the controller could not hear."""
    return sum(max(0.0, min(end, now) - max(start, last_seen)) for start, end in holds)


def evaluate_reachability(
    box: BoxLive, *, now: float, interval_s: float, missed_beats: int, holds: Sequence[SilenceHold] = ()
) -> Reachability:
    """Online, offline (with the reason: "connection-lost", "shutdown", "heartbeat-timeout"), or never seen.

    Online while ``now - last_seen <= heartbeat_timeout(interval_s, missed_beats)`` (the boundary itself still
    counts as online) and no current "offline" status says otherwise. Silence within ``holds`` (spans the
    controller could not hear) does not count.
    """
    if box.status_state == "offline" and not is_back(box):
        return Reachability("offline", box.status_reason or "offline", box.last_seen)
    if box.last_seen is None:
        return Reachability("never-seen", REASON_NEVER_SEEN, None)
    silence = now - box.last_seen
    if holds and silence > 0:
        silence -= silence_credit(box.last_seen, holds, now=now)
    if silence <= heartbeat_timeout(interval_s, missed_beats):
        return Reachability("online", REASON_CONNECTED, box.last_seen)
    return Reachability("offline", REASON_HEARTBEAT_TIMEOUT, box.last_seen)


def box_reachability(state: FleetState, box: BoxLive, *, now: float) -> Reachability:
    """``evaluate_reachability`` with the heartbeat interval and missed beats of the box's site."""
    site = state.inventory.sites[box.site]
    return evaluate_reachability(
        box, now=now, interval_s=site.interval_s, missed_beats=site.missed_beats, holds=state.silence_holds
    )


def site_health(states: list[ReachabilityState]) -> SiteHealth:
    """ok: every box online; unknown: none ever seen; unreachable: none online of those seen; else degraded."""
    online = states.count("online")
    seen = len(states) - states.count("never-seen")
    if states and online == len(states):
        return "ok"
    if seen == 0:
        return "unknown"
    if online == 0:
        return "unreachable"
    return "degraded"


def summarize_site(state: FleetState, site_id: SiteId, *, now: float) -> SiteSummary:
    """Counts and health of one site now; raises KeyError for a site not in the inventory. Takes the lock."""
    site = state.inventory.sites[site_id]
    with state.lock:
        states = [box_reachability(state, state.boxes[b], now=now).state for b in site.boxes]
    return SiteSummary(
        boxes_total=len(states),
        boxes_online=states.count("online"),
        boxes_offline=states.count("offline"),
        boxes_never_seen=states.count("never-seen"),
        health=site_health(states),
    )


def copy_box(box: BoxLive) -> BoxLive:
    """A copy of ``box`` to read outside the lock; its ``history`` is empty (ask the controller for history)."""
    return BoxLive(
        box=box.box,
        site=box.site,
        boot=box.boot,
        boot_started_at=box.boot_started_at,
        seq=box.seq,
        first_seen=box.first_seen,
        last_seen=box.last_seen,
        heartbeat=box.heartbeat,
        clock_skew_s=box.clock_skew_s,
        status_state=box.status_state,
        status_reason=box.status_reason,
        status_session=box.status_session,
        status_at=box.status_at,
        history=HealthHistory(),
        dirty=box.dirty,
        status_boot=box.status_boot,
        status_seq=box.status_seq,
        unsaved_points=box.unsaved_points,
        run_boot=box.run_boot,
        run_seq=box.run_seq,
        run_since=box.run_since,
        run_last=box.run_last,
        status_taken_at=box.status_taken_at,
    )
