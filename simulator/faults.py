"""Faults the simulator injects on command, as data with pure rules: which requests are valid, which faults are
active at a given time, and what each active fault means for a box (stopped? cut off? how hot? how skewed?).

No I/O and no clock of its own: every call takes ``now``, seconds on a monotonic clock, so tests move time by
hand. ``simulator.running`` asks these questions at each heartbeat and acts on the faults that start and end
(a site's cut freezes and recovers its boxes' connections); ``simulator.control`` turns requests into calls.

Kinds: ``stop`` (the box stops heartbeating, its connection stays up), ``drop`` (its TCP connection is torn
down once; it reconnects by itself, so the fault is not kept), ``cut`` (a site's network is cut for some
seconds), ``overheat`` (a GPU held at a temperature), ``skew`` (the box's clock runs off by some seconds),
``malformed`` (the box's next heartbeats are sent as invalid payloads).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, fields
from typing import Final, Literal, get_args

from edgefleet.errors import EdgefleetError
from edgefleet.ids import BoxId, SiteId
from edgefleet.inventory import Inventory

FaultKind = Literal["stop", "drop", "cut", "overheat", "skew", "malformed"]
FAULT_KINDS: Final[tuple[str, ...]] = get_args(FaultKind)
MalformedVariant = Literal["random-bytes", "wrong-shape", "wrong-schema", "other-box"]
MALFORMED_VARIANTS: Final[tuple[str, ...]] = get_args(MalformedVariant)
# "mixed" sends the variants in turn, so one fault exercises every way an ingest can be fed garbage.
MIXED: Final = "mixed"

DEFAULT_OVERHEAT_C: Final = 95.0
DEFAULT_MALFORMED_COUNT: Final = 1
# A day: longer faults are typos; an operator who wants longer clears and sets it again.
MAX_SECONDS: Final = 86_400.0
# A year either way covers every clock mistake seen in the field (a box booted with a 1970 or a 2038 RTC is
# beyond any useful test of skew handling).
MAX_SKEW_S: Final = 366 * 86_400.0
MAX_MALFORMED_COUNT: Final = 10_000
# Hotter than any GPU survives; colder than any room.
TEMPERATURE_RANGE_C: Final = (-20.0, 150.0)

RejectReason = Literal["invalid", "not-found", "conflict"]


class FaultRejected(EdgefleetError):
    """A fault request cannot be applied; ``reason`` is invalid, not-found or conflict, ``field`` the culprit."""

    def __init__(self, reason: RejectReason, message: str, *, field: str | None = None) -> None:
        self.reason = reason
        self.message = message
        self.field = field
        super().__init__(message)


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultRequest:
    """What an operator asked for; checked by ``Faults.add``. Fields that do not apply to the kind are refused."""

    kind: str
    box: str | None = None
    site: str | None = None
    seconds: float | None = None
    gpu: int | None = None
    temperature_c: float | None = None
    offset_s: float | None = None
    count: int | None = None
    variant: str | None = None


# Which request fields each kind needs and which it allows besides ``kind``.
_REQUIRED: Final[dict[str, frozenset[str]]] = {
    "stop": frozenset({"box"}),
    "drop": frozenset({"box"}),
    "cut": frozenset({"site", "seconds"}),
    "overheat": frozenset({"box"}),
    "skew": frozenset({"box", "offset_s"}),
    "malformed": frozenset({"box"}),
}
_ALLOWED: Final[dict[str, frozenset[str]]] = {
    "stop": frozenset({"box", "site", "seconds"}),
    "drop": frozenset({"box", "site"}),
    "cut": frozenset({"site", "seconds"}),
    "overheat": frozenset({"box", "site", "seconds", "gpu", "temperature_c"}),
    "skew": frozenset({"box", "site", "seconds", "offset_s"}),
    "malformed": frozenset({"box", "site", "count", "variant"}),
}


@dataclass(slots=True, kw_only=True)
class Fault:
    """An accepted fault. Times are on the caller's monotonic clock; ``expires_at`` None means until cleared."""

    id: str
    kind: FaultKind
    site: SiteId
    box: BoxId | None
    started_at: float
    expires_at: float | None
    gpu: int | None = None
    temperature_c: float | None = None
    offset_s: float | None = None
    variant: str | None = None
    # malformed: heartbeats still to corrupt, and how many were, to take the next variant of "mixed".
    remaining: int | None = None
    corrupted: int = 0

    def active_at(self, now: float) -> bool:
        return self.started_at <= now and (self.expires_at is None or now < self.expires_at)

    def targets_box(self, box: BoxId, site: SiteId) -> bool:
        return self.box == box or (self.box is None and self.site == site)


class Faults:
    """The active faults of one simulated fleet (``inventory``: the sites and boxes it plays)."""

    def __init__(self, inventory: Inventory) -> None:
        self._inventory = inventory
        self._faults: dict[str, Fault] = {}
        self._numbers = itertools.count(1)

    # --- requests --------------------------------------------------------------------------------------------

    def check(self, request: FaultRequest) -> Fault:
        """The fault ``request`` asks for, not yet added (ids are given by ``add``); raises FaultRejected."""
        if request.kind not in FAULT_KINDS:
            raise FaultRejected(
                "invalid", f"unknown fault kind {request.kind!r}; use one of {', '.join(FAULT_KINDS)}", field="kind"
            )
        kind: FaultKind = request.kind  # type: ignore[assignment]
        given = {f.name for f in fields(request) if f.name != "kind" and getattr(request, f.name) is not None}
        missing = sorted(_REQUIRED[kind] - given)
        if missing:
            raise FaultRejected("invalid", f"a {kind} fault needs {_field_help(missing[0])}", field=missing[0])
        extra = sorted(given - _ALLOWED[kind])
        if extra:
            raise FaultRejected("invalid", f"field {extra[0]!r} does not apply to a {kind} fault", field=extra[0])
        site, box = self._target(kind, request)
        fault = Fault(id="", kind=kind, site=site, box=box, started_at=0.0, expires_at=None)
        if request.seconds is not None:
            _check_range("seconds", request.seconds, 0.0, MAX_SECONDS, low_open=True)
        if kind == "overheat":
            gpu_count = self._gpu_count(box)
            fault.gpu = 0 if request.gpu is None else request.gpu
            if not 0 <= fault.gpu < gpu_count:
                raise FaultRejected(
                    "invalid",
                    f"box {box!r} has {gpu_count} GPU(s); gpu must be an index from 0 to {gpu_count - 1}",
                    field="gpu",
                )
            fault.temperature_c = DEFAULT_OVERHEAT_C if request.temperature_c is None else request.temperature_c
            _check_range("temperature_c", fault.temperature_c, *TEMPERATURE_RANGE_C)
        elif kind == "skew":
            assert request.offset_s is not None  # required above
            _check_range("offset_s", request.offset_s, -MAX_SKEW_S, MAX_SKEW_S)
            fault.offset_s = request.offset_s
        elif kind == "malformed":
            count = DEFAULT_MALFORMED_COUNT if request.count is None else request.count
            if not 1 <= count <= MAX_MALFORMED_COUNT:
                raise FaultRejected(
                    "invalid", f"count must be from 1 to {MAX_MALFORMED_COUNT}, got {count}", field="count"
                )
            variant = request.variant or MIXED
            if variant != MIXED and variant not in MALFORMED_VARIANTS:
                raise FaultRejected(
                    "invalid",
                    f"unknown variant {variant!r}; use one of {', '.join((*MALFORMED_VARIANTS, MIXED))}",
                    field="variant",
                )
            fault.remaining = count
            fault.variant = variant
        return fault

    def add(self, request: FaultRequest, *, now: float) -> Fault:
        """Check and start the fault. A ``drop`` is a one-off event: it gets an id but is not kept."""
        fault = self.check(request)
        fault.id = f"{fault.kind}-{next(self._numbers)}"
        fault.started_at = now
        if request.seconds is not None:
            fault.expires_at = now + request.seconds
        if fault.kind != "drop":
            self._faults[fault.id] = fault
        return fault

    def _target(self, kind: FaultKind, request: FaultRequest) -> tuple[SiteId, BoxId | None]:
        if request.box is None:
            assert request.site is not None  # every kind requires a box or a site
            site = SiteId(request.site)
            if site not in self._inventory.sites:
                raise FaultRejected(
                    "not-found",
                    f"no site {request.site!r} in the simulated fleet ({len(self._inventory.sites)} sites; "
                    "see GET /status)",
                    field="site",
                )
            return site, None
        box = BoxId(request.box)
        known = self._inventory.boxes.get(box)
        if known is None:
            raise FaultRejected(
                "not-found",
                f"no box {request.box!r} in the simulated fleet ({len(self._inventory.boxes)} boxes at "
                f"{len(self._inventory.sites)} sites; see GET /status)",
                field="box",
            )
        if request.site is not None and request.site != known.site:
            raise FaultRejected("invalid", f"box {box!r} is at site {known.site!r}, not {request.site!r}", field="site")
        return known.site, box

    def _gpu_count(self, box: BoxId | None) -> int:
        spec = self._inventory.boxes[box].gpu if box else None
        if spec is None:
            raise FaultRejected("invalid", f"box {box!r} has no GPU to overheat", field="box")
        return spec.count

    # --- the active set ---------------------------------------------------------------------------------------

    def active(self, now: float) -> list[Fault]:
        return [f for f in self._faults.values() if f.active_at(now)]

    def expire(self, now: float) -> list[Fault]:
        """Remove the faults that ended by ``now`` (time ran out or every malformed payload was sent)."""
        ended = [f for f in self._faults.values() if not f.active_at(now) or f.remaining == 0]
        for fault in ended:
            del self._faults[fault.id]
        return ended

    def clear(self, *, fault_id: str | None = None, box: str | None = None, site: str | None = None) -> list[Fault]:
        """Remove one fault by id, every fault of a box or of a site, or (no argument) all; returns them."""
        if fault_id is not None:
            fault = self._faults.pop(fault_id, None)
            if fault is None:
                raise FaultRejected("not-found", f"no active fault {fault_id!r} (see GET /faults)", field="id")
            return [fault]
        if box is not None and BoxId(box) not in self._inventory.boxes:
            raise FaultRejected("not-found", f"no box {box!r} in the simulated fleet", field="box")
        if site is not None and SiteId(site) not in self._inventory.sites:
            raise FaultRejected("not-found", f"no site {site!r} in the simulated fleet", field="site")
        removed = [
            f for f in self._faults.values() if (box is None or f.box == box) and (site is None or f.site == site)
        ]
        for fault in removed:
            del self._faults[fault.id]
        return removed

    # --- what the active faults mean for a box ----------------------------------------------------------------

    def _for_box(self, kind: FaultKind, box: BoxId, now: float) -> list[Fault]:
        site = self._inventory.boxes[box].site
        return [f for f in self._faults.values() if f.kind == kind and f.targets_box(box, site) and f.active_at(now)]

    def is_stopped(self, box: BoxId, now: float) -> bool:
        return bool(self._for_box("stop", box, now))

    def is_cut(self, site: SiteId, now: float) -> bool:
        return any(f.kind == "cut" and f.site == site and f.active_at(now) for f in self._faults.values())

    def overheat_of(self, box: BoxId, now: float) -> dict[int, float]:
        """GPU index -> held temperature; of two faults on one GPU the later one counts."""
        return {
            f.gpu: f.temperature_c
            for f in self._for_box("overheat", box, now)
            if f.gpu is not None and f.temperature_c is not None
        }

    def skew_of(self, box: BoxId, now: float) -> float:
        """Seconds the box's clock is off; of two skew faults the later one counts."""
        skews = [f.offset_s for f in self._for_box("skew", box, now) if f.offset_s is not None]
        return skews[-1] if skews else 0.0

    def take_malformed(self, box: BoxId, now: float) -> MalformedVariant | None:
        """The variant the box's next heartbeat is corrupted as, or None; counts it against the oldest fault."""
        for fault in self._for_box("malformed", box, now):
            if not fault.remaining:
                continue
            fault.remaining -= 1
            variant = fault.variant
            if variant == MIXED:
                variant = MALFORMED_VARIANTS[fault.corrupted % len(MALFORMED_VARIANTS)]
            fault.corrupted += 1
            return variant  # type: ignore[return-value]
        return None


def _field_help(name: str) -> str:
    return {
        "box": "a box ('box': a box id)",
        "site": "a site ('site': a site id)",
        "seconds": "a duration ('seconds': how long it lasts)",
        "offset_s": "an offset ('offset_s': seconds the box's clock is ahead, negative when behind)",
    }.get(name, repr(name))


def _check_range(name: str, value: float, low: float, high: float, *, low_open: bool = False) -> None:
    if not math.isfinite(value) or value > high or value < low or (low_open and value == low):
        bound = f"more than {low:g}" if low_open else f"at least {low:g}"
        raise FaultRejected("invalid", f"{name} must be {bound} and at most {high:g}, got {value}", field=name)
