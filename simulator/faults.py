"""Faults the simulator injects on command, as data with pure rules: which requests are valid, which faults are
active at a given time, and what each active fault means for a box (stopped? cut off? how hot? how skewed?).

No I/O and no clock of its own: every call takes ``now``, seconds on a monotonic clock, so tests move time by
hand. ``simulator.running`` asks these questions at each heartbeat and acts on the faults that start and end
(a site's cut freezes and recovers its boxes' connections); ``simulator.control`` turns requests into calls.

Kinds: ``stop`` (the box stops heartbeating, its connection stays up), ``drop`` (its TCP connection is torn
down once; it reconnects by itself, after ``seconds`` when given, so the fault is not kept), ``cut`` (a site's network is cut for some
seconds), ``overheat`` (a GPU held at a temperature), ``skew`` (the box's clock runs off by some seconds),
``malformed`` (the box's next heartbeats are sent as invalid payloads).

Faults of the simulated clusters (``simulator.cluster``), for the rollout work: ``edgecore`` (a box's edgecore is
down: its node goes NotReady while its agent stays online), ``api-errors`` (a cluster's API server answers a
share of requests with 409, 429, 500, 503 or a timeout), ``api-down`` (a cluster's API server is unreachable),
``crash-loop`` (pods of one image version crash on one GPU model or at one site), ``pull`` (image pulls at a
site are slow or fail) and ``slow`` (one app version runs, but its health figures are worse by a percentage:
fps lower, latency, backlog and error rate higher; see ``simulator.figures``).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, fields
from typing import Final, Literal, get_args

from edgefleet.errors import EdgefleetError
from edgefleet.ids import BoxId, ClusterId, SiteId
from edgefleet.inventory import Inventory
from simulator.cluster.pods import Fate
from simulator.cluster.troubles import API_ERRORS, ApiError, ApiTrouble

FaultKind = Literal[
    "stop",
    "drop",
    "cut",
    "overheat",
    "skew",
    "malformed",
    "edgecore",
    "api-errors",
    "api-down",
    "crash-loop",
    "pull",
    "slow",
]
FAULT_KINDS: Final[tuple[str, ...]] = get_args(FaultKind)
MalformedVariant = Literal["random-bytes", "wrong-shape", "wrong-schema", "other-box"]
MALFORMED_VARIANTS: Final[tuple[str, ...]] = get_args(MalformedVariant)
PullMode = Literal["slow", "fail"]
PULL_MODES: Final[tuple[str, ...]] = get_args(PullMode)
DEFAULT_SLOW_PULL_S: Final = 60.0
# Longer than any pull a rollout should wait out: kubelet's own image pull has no deadline, ours must end.
MAX_PULL_DELAY_S: Final = 3_600.0
# "mixed" sends the variants in turn, so one fault exercises every way an ingest can be fed garbage.
MIXED: Final = "mixed"

DEFAULT_OVERHEAT_C: Final = 95.0
# A release 30% slower is what a site-baseline gate with a 10-20% tolerance must catch; up to 10x covers a release
# that is badly broken but still runs.
DEFAULT_SLOW_PERCENT: Final = 30.0
MAX_SLOW_PERCENT: Final = 1_000.0
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
    cluster: str | None = None
    rate: float | None = None
    errors: str | None = None
    version: str | None = None
    app: str | None = None
    gpu_model: str | None = None
    mode: str | None = None
    delay_s: float | None = None
    by: float | None = None


# Which request fields each kind needs and which it allows besides ``kind``.
_REQUIRED: Final[dict[str, frozenset[str]]] = {
    "stop": frozenset({"box"}),
    "drop": frozenset({"box"}),
    "cut": frozenset({"site", "seconds"}),
    "overheat": frozenset({"box"}),
    "skew": frozenset({"box", "offset_s"}),
    "malformed": frozenset({"box"}),
    "edgecore": frozenset(),  # a box or a site: checked in ``_target``
    "api-errors": frozenset({"cluster", "rate"}),
    "api-down": frozenset({"cluster"}),
    "crash-loop": frozenset({"version"}),  # and a site or a GPU model: checked in ``check``
    "pull": frozenset({"site", "mode"}),
    "slow": frozenset({"version"}),  # everywhere, or at a site or on a GPU model
}
_ALLOWED: Final[dict[str, frozenset[str]]] = {
    "stop": frozenset({"box", "site", "seconds"}),
    "drop": frozenset({"box", "site", "seconds"}),
    "cut": frozenset({"site", "seconds"}),
    "overheat": frozenset({"box", "site", "seconds", "gpu", "temperature_c"}),
    "skew": frozenset({"box", "site", "seconds", "offset_s"}),
    "malformed": frozenset({"box", "site", "count", "variant"}),
    "edgecore": frozenset({"box", "site", "seconds"}),
    "api-errors": frozenset({"cluster", "rate", "errors", "seconds"}),
    "api-down": frozenset({"cluster", "seconds"}),
    "crash-loop": frozenset({"version", "app", "site", "gpu_model", "seconds"}),
    "pull": frozenset({"site", "mode", "delay_s", "seconds"}),
    "slow": frozenset({"version", "app", "site", "gpu_model", "by", "seconds"}),
}
# Kinds that target a whole cluster rather than a site or a box.
_CLUSTER_KINDS: Final = frozenset({"api-errors", "api-down"})


def image_app_version(image: str) -> tuple[str, str]:
    """``registry:5000/edgefleet/sorting-recognition:2.4.0@sha256:...`` -> (``sorting-recognition``, ``2.4.0``):
    the last path component and the tag (``latest`` when none, as a container runtime reads it)."""
    name = image.split("@", 1)[0]
    path, _, tag = name.rpartition(":")
    if not path or "/" in tag:  # no tag; the colon was a registry's port
        path, tag = name, "latest"
    return path.rsplit("/", 1)[-1], tag


@dataclass(slots=True, kw_only=True)
class Fault:
    """An accepted fault. Times are on the caller's monotonic clock; ``expires_at`` None means until cleared."""

    id: str
    kind: FaultKind
    # None for the faults of a whole cluster (``cluster``) or, for crash-loop and slow, of a GPU model or everywhere.
    site: SiteId | None
    box: BoxId | None
    started_at: float
    expires_at: float | None
    cluster: ClusterId | None = None
    rate: float | None = None
    # api-errors: the answers drawn from, in turn at random.
    errors: tuple[ApiError, ...] = ()
    version: str | None = None
    app: str | None = None
    gpu_model: str | None = None
    mode: PullMode | None = None
    delay_s: float | None = None
    # slow: how much worse the version's figures are, in percent.
    by: float | None = None
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
        if kind in _CLUSTER_KINDS:
            fault = Fault(id="", kind=kind, site=None, box=None, started_at=0.0, expires_at=None)
            fault.cluster = self._cluster(request.cluster)
        elif kind == "crash-loop" and request.site is None:
            if request.gpu_model is None:
                raise FaultRejected(
                    "invalid",
                    "a crash-loop fault needs where it happens: a site ('site') or a GPU model ('gpu_model')",
                    field="site",
                )
            fault = Fault(id="", kind=kind, site=None, box=None, started_at=0.0, expires_at=None)
        elif kind == "slow" and request.site is None:
            fault = Fault(id="", kind=kind, site=None, box=None, started_at=0.0, expires_at=None)
        else:
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
        elif kind == "api-errors":
            assert request.rate is not None  # required above
            _check_range("rate", request.rate, 0.0, 1.0, low_open=True)
            fault.rate = request.rate
            fault.errors = self._api_errors(request.errors)
        elif kind in ("crash-loop", "slow"):
            assert request.version is not None  # required above
            if kind == "slow":
                if request.site is not None and request.gpu_model is not None:
                    raise FaultRejected(
                        "invalid", "a slow fault is at a site or on a GPU model, not both", field="gpu_model"
                    )
                fault.by = DEFAULT_SLOW_PERCENT if request.by is None else request.by
                _check_range("by", fault.by, 0.0, MAX_SLOW_PERCENT, low_open=True)
            fault.version = _text("version", request.version)
            fault.app = None if request.app is None else _text("app", request.app)
            if request.gpu_model is not None:
                models = sorted({b.gpu.model for b in self._inventory.boxes.values() if b.gpu is not None})
                if request.gpu_model not in models:
                    raise FaultRejected(
                        "not-found",
                        f"no GPU model {request.gpu_model!r} in the simulated fleet; "
                        f"it has {', '.join(models) or 'no GPUs'}",
                        field="gpu_model",
                    )
                fault.gpu_model = request.gpu_model
        elif kind == "pull":
            if request.mode not in PULL_MODES:
                raise FaultRejected(
                    "invalid", f"unknown pull mode {request.mode!r}; use one of {', '.join(PULL_MODES)}", field="mode"
                )
            fault.mode = request.mode  # type: ignore[assignment]
            if request.delay_s is not None and fault.mode != "slow":
                raise FaultRejected("invalid", "delay_s applies to slow pulls only ('mode': 'slow')", field="delay_s")
            if fault.mode == "slow":
                fault.delay_s = DEFAULT_SLOW_PULL_S if request.delay_s is None else request.delay_s
                _check_range("delay_s", fault.delay_s, 0.0, MAX_PULL_DELAY_S, low_open=True)
        return fault

    def _cluster(self, name: str | None) -> ClusterId:
        assert name is not None  # required for every cluster kind
        played = sorted({site.cluster for site in self._inventory.sites.values()})
        if name not in played:
            raise FaultRejected(
                "not-found",
                f"no cluster {name!r} in the simulated fleet; it plays {', '.join(map(str, played)) or 'none'}",
                field="cluster",
            )
        return ClusterId(name)

    @staticmethod
    def _api_errors(given: str | None) -> tuple[ApiError, ...]:
        """``errors``: a comma-separated list of 409, 429, 500, 503, timeout; every one of them when not given."""
        if given is None:
            return API_ERRORS
        chosen = [part.strip() for part in given.split(",") if part.strip()]
        unknown = [part for part in chosen if part not in API_ERRORS]
        if unknown or not chosen:
            raise FaultRejected(
                "invalid",
                f"unknown API error {(unknown or [given])[0]!r}; use a comma-separated list of {', '.join(API_ERRORS)}",
                field="errors",
            )
        return tuple(error for error in API_ERRORS if error in chosen)

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
            if request.site is None:  # only edgecore leaves both to this check
                raise FaultRejected("invalid", f"a {kind} fault needs {_field_help('box')} or {_field_help('site')}")
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

    def kubelet_silent(self, box: BoxId, now: float) -> bool:
        """The box's kubelet (edgecore) cannot post to its API server: its site is cut or its edgecore is down."""
        site = self._inventory.boxes[box].site
        return self.is_cut(site, now) or self.edgecore_down(box, now)

    def edgecore_down(self, box: BoxId, now: float) -> bool:
        """The box's edgecore is down: no kubelet, and no MetaServer for its agent to read its pods from."""
        return bool(self._for_box("edgecore", box, now))

    def api_trouble(self, cluster: ClusterId, now: float) -> ApiTrouble | None:
        """How the cluster's API server fails requests now; of two api-errors faults the later one counts."""
        troubles = [
            ApiTrouble(f.rate, f.errors)
            for f in self._faults.values()
            if f.kind == "api-errors" and f.cluster == cluster and f.active_at(now) and f.rate is not None
        ]
        return troubles[-1] if troubles else None

    def api_down(self, cluster: ClusterId, now: float) -> bool:
        return any(f.kind == "api-down" and f.cluster == cluster and f.active_at(now) for f in self._faults.values())

    def pod_fate(self, box: BoxId, images: list[str], now: float) -> Fate:
        """What happens to a pod with these container images started on ``box``: does it crash (any of its images
        at a crash-loop version), is its pull slow or failing (the site's latest pull fault)."""
        known = self._inventory.boxes[box]
        gpu_model = known.gpu.model if known.gpu is not None else None
        named = [image_app_version(image) for image in images]
        crashes = any(
            f.kind == "crash-loop"
            and f.active_at(now)
            and any(f.version == version and (f.app is None or f.app == app) for app, version in named)
            and (f.site is None or f.site == known.site)
            and (f.gpu_model is None or f.gpu_model == gpu_model)
            for f in self._faults.values()
        )
        pulls = [f for f in self._faults.values() if f.kind == "pull" and f.site == known.site and f.active_at(now)]
        latest = pulls[-1] if pulls else None
        if latest is not None and latest.mode == "fail":
            first = images[0] if images else ""
            # containerd's words when the registry cannot be reached from the site.
            error = (
                f'rpc error: code = Unknown desc = failed to pull and unpack image "{first}": failed to resolve '
                f'reference "{first}": failed to do request: dial tcp: i/o timeout'
            )
            return Fate(pull_error=error, crashes=crashes)
        return Fate(pull_s=latest.delay_s if latest is not None else None, crashes=crashes)

    def slowdown_of(self, box: BoxId, app: str, version: str, now: float) -> float:
        """How much worse (percent) the figures of ``app`` at ``version`` on ``box`` are now; 0 when no slow fault
        matches. Of two matching faults the later one counts, as for the other kinds."""
        known = self._inventory.boxes[box]
        gpu_model = known.gpu.model if known.gpu is not None else None
        matching = [
            f.by
            for f in self._faults.values()
            if f.kind == "slow"
            and f.active_at(now)
            and f.version == version
            and (f.app is None or f.app == app)
            and (f.site is None or f.site == known.site)
            and (f.gpu_model is None or f.gpu_model == gpu_model)
            and f.by is not None
        ]
        return matching[-1] if matching else 0.0

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
        "cluster": "a cluster ('cluster': a Cluster manifest's name)",
        "rate": "a rate ('rate': the share of requests that fail, more than 0 and at most 1)",
        "version": "an image version ('version': the image tag the fault is about)",
        "mode": "a mode ('mode': slow or fail)",
        "by": "a percentage ('by': how much worse the figures are)",
    }.get(name, repr(name))


def _text(name: str, value: str) -> str:
    if not value.strip() or any(ch.isspace() for ch in value):
        raise FaultRejected("invalid", f"{name} must be one word without spaces, got {value!r}", field=name)
    return value


def _check_range(name: str, value: float, low: float, high: float, *, low_open: bool = False) -> None:
    if not math.isfinite(value) or value > high or value < low or (low_open and value == low):
        bound = f"more than {low:g}" if low_open else f"at least {low:g}"
        raise FaultRejected("invalid", f"{name} must be {bound} and at most {high:g}, got {value}", field=name)
