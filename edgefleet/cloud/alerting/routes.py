"""Where notifications go and how they are paced: channels (a DingTalk robot, a webhook, an Alertmanager), routes
that match alerts by site, region, severity and kind, routes that take rollout notifications (``rollouts``: the
events they take, narrowed by site and region), routes that take central clusters' Kubernetes Events
(``events``: the levels they take, narrowed by region), and the grouping timers.

Pure data with a pure ``route_channels`` and ``validate_routes``; the I/O step's loader builds ``Routes`` from the
notification file and knows each channel's URL and secret (never held here). Read by ``notifying``.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, Literal

from edgefleet.cloud.alerting.alerts import AlertKind, Severity, StoredAlert
from edgefleet.ids import SiteId

ChannelKind = Literal["dingtalk", "webhook", "alertmanager"]
CHANNEL_KINDS: Final = ("dingtalk", "webhook", "alertmanager")
# A rollout's events as the rollout decisions name them (``deciding.NotifyKind``; a test keeps the two equal).
RolloutEvent = Literal[
    "started", "wave-passed", "awaiting-approval", "sites-deferred", "aborted", "rolled-back", "done"
]
ROLLOUT_EVENTS: Final[tuple[RolloutEvent, ...]] = (
    "started",
    "wave-passed",
    "awaiting-approval",
    "sites-deferred",
    "aborted",
    "rolled-back",
    "done",
)
# A Kubernetes Event's level (its ``type``), as a route's ``events`` names the ones it takes.
EventLevel = Literal["Normal", "Warning"]
EVENT_LEVELS: Final[tuple[EventLevel, ...]] = ("Normal", "Warning")
# Alertmanager takes alerts, not news of a rollout: rollout notifications never go to an Alertmanager channel.
ROLLOUT_CHANNEL_KINDS: Final = ("dingtalk", "webhook")

# Nothing here waits blindly for a site cut to unfold: evaluation holds the first box alerts of a site that is
# going quiet and fires one site alert (it knows the fleet; this does not). A wait here would add its length to
# every first notice, and the targets (timeout + 2 s for a silent box, 2 s for a dropped connection)
# leave no room for it. Raise it to merge more when latency matters less.
DEFAULT_GROUP_WAIT_S: Final = 0.0
# One message per site per 30 s: a site's alerts that follow its first within half a minute go out together.
DEFAULT_GROUP_INTERVAL_S: Final = 30.0
# A still-firing alert is told again every 4 hours (a shift), unless it was acknowledged.
DEFAULT_REPEAT_INTERVAL_S: Final = 4 * 3600.0
# DingTalk blocks a robot for 10 minutes past 20 messages a minute; 18 leaves room for a retry of a message
# DingTalk did get and for the clocks of both sides differing.
DINGTALK_LIMIT_PER_MINUTE: Final = 20
DEFAULT_DINGTALK_PER_MINUTE: Final = 18
# DingTalk refuses a body over 20,000 bytes (error 460101); 1,000 bytes spare for what a proxy may add.
DINGTALK_LIMIT_BYTES: Final = 20_000
DEFAULT_DINGTALK_MAX_BYTES: Final = 19_000
# Ops of the fleet read local time; a route file may set another zone.
DEFAULT_TIMEZONE: Final = "Asia/Shanghai"


@dataclass(frozen=True, slots=True)
class Channel:
    """A place to send to; ``name`` is the channel's name in the notification file (its URL lives there)."""

    kind: ChannelKind
    name: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"


@dataclass(frozen=True, slots=True)
class Route:
    """Alerts that match every matcher given (None matches any) go to ``channels``. A route with ``rollouts`` is a
    rollout route: it takes rollout notifications of those events and no alerts."""

    channels: tuple[Channel, ...]
    sites: frozenset[SiteId] | None = None
    regions: frozenset[str] | None = None
    severities: frozenset[Severity] | None = None
    kinds: frozenset[AlertKind] | None = None
    rollouts: frozenset[RolloutEvent] | None = None
    # Cluster Events of these levels (``events``); such a route takes no alerts and no rollout news.
    events: frozenset[EventLevel] | None = None

    def matches(self, alert: StoredAlert) -> bool:
        return (
            self.rollouts is None
            and self.events is None
            and (self.sites is None or alert.key.site in self.sites)
            and (self.regions is None or alert.labels.get("region") in self.regions)
            and (self.severities is None or alert.severity in self.severities)
            and (self.kinds is None or alert.key.kind in self.kinds)
        )

    def takes_rollout(self, event: RolloutEvent, sites: Iterable[SiteId], regions: Iterable[str]) -> bool:
        """Whether this rollout route takes a notification of ``event`` about ``sites`` (in ``regions``): its
        sites and regions matchers narrow it to notifications naming at least one of theirs; a notification that
        names no site (started, done) passes them."""
        if self.rollouts is None or event not in self.rollouts or self.events is not None:
            return False
        named, in_regions = set(sites), set(regions)
        return (self.sites is None or not named or bool(self.sites & named)) and (
            self.regions is None or not in_regions or bool(self.regions & in_regions)
        )


@dataclass(frozen=True, slots=True)
class Timing:
    group_wait_s: float = DEFAULT_GROUP_WAIT_S
    group_interval_s: float = DEFAULT_GROUP_INTERVAL_S
    repeat_interval_s: float = DEFAULT_REPEAT_INTERVAL_S


@dataclass(frozen=True, slots=True)
class Routes:
    """Every route; an alert goes to the channels of all routes it matches, or to ``default`` when none does."""

    routes: tuple[Route, ...] = ()
    default: tuple[Channel, ...] = ()
    timing: Timing = field(default_factory=Timing)
    timezone: str = DEFAULT_TIMEZONE
    dingtalk_per_minute: int = DEFAULT_DINGTALK_PER_MINUTE
    dingtalk_max_bytes: int = DEFAULT_DINGTALK_MAX_BYTES

    def channels(self) -> list[Channel]:
        """Every channel named, once each, in order of appearance."""
        return _unique([*(c for route in self.routes for c in route.channels), *self.default])


def _unique(channels: Iterable[Channel]) -> list[Channel]:
    return list(dict.fromkeys(channels))


def route_channels(routes: Routes, alert: StoredAlert) -> tuple[Channel, ...]:
    """The channels ``alert`` goes to (empty when nothing matches and there is no default)."""
    matched = _unique(c for route in routes.routes if route.matches(alert) for c in route.channels)
    return tuple(matched) if matched else routes.default


def rollout_channels(
    routes: Routes, event: RolloutEvent, sites: Iterable[SiteId] = (), regions: Iterable[str] = ()
) -> tuple[Channel, ...]:
    """The channels a rollout notification of ``event`` about ``sites`` goes to: those of every rollout route that
    takes it, else the default channels; Alertmanager channels left out (they take alerts only)."""
    named, in_regions = tuple(sites), tuple(regions)
    matched = _unique(
        c for route in routes.routes if route.takes_rollout(event, named, in_regions) for c in route.channels
    )
    chosen = matched if matched else routes.default
    return tuple(c for c in chosen if c.kind in ROLLOUT_CHANNEL_KINDS)


def event_channels(routes: Routes, level: str, region: str) -> tuple[Channel, ...]:
    """The channels a cluster's Event of ``level`` (in a cluster of ``region``) goes to: those of every event route
    that takes the level (and the region, when it names regions), else the default channels; Alertmanager channels
    left out, as for rollouts."""
    matched = _unique(
        c
        for route in routes.routes
        if route.events is not None and level in route.events and (route.regions is None or region in route.regions)
        for c in route.channels
    )
    chosen = matched if matched else routes.default
    return tuple(c for c in chosen if c.kind in ROLLOUT_CHANNEL_KINDS)


def validate_routes(routes: Routes) -> list[str]:
    """Every problem of ``routes`` (empty when they are good), each saying what to change."""
    problems: list[str] = []
    for i, route in enumerate(routes.routes):
        if not route.channels:
            problems.append(f"routes[{i}] names no channel; add one or remove the route")
        for matcher in ("sites", "regions", "severities", "kinds", "rollouts", "events"):
            value = getattr(route, matcher)
            if value is not None and not value:
                problems.append(f"routes[{i}].{matcher} is empty and matches nothing; leave it out to match any")
        if route.rollouts:
            for matcher in ("severities", "kinds"):
                if getattr(route, matcher) is not None:
                    problems.append(
                        f"routes[{i}].{matcher} matches alerts, and a route with rollouts takes rollout notifications "
                        "only; make it two routes"
                    )
            for channel in route.channels:
                if channel.kind not in ROLLOUT_CHANNEL_KINDS:
                    problems.append(
                        f"routes[{i}].rollouts: channel {channel.name!r} is an {channel.kind} channel, which takes "
                        "alerts only; route rollouts to a DingTalk robot or a webhook"
                    )
        if route.events:
            for matcher in ("sites", "severities", "kinds", "rollouts"):
                if getattr(route, matcher) is not None:
                    problems.append(
                        f"routes[{i}].{matcher}: a route with events takes cluster Events only (narrowed by "
                        "regions); make it two routes"
                    )
            for channel in route.channels:
                if channel.kind not in ROLLOUT_CHANNEL_KINDS:
                    problems.append(
                        f"routes[{i}].events: channel {channel.name!r} is an {channel.kind} channel, which takes "
                        "alerts only; route Events to a DingTalk robot or a webhook"
                    )
    if not routes.routes and not routes.default:
        problems.append("no route and no default channel: every alert would go nowhere")
    for channel in routes.channels():
        if channel.kind not in CHANNEL_KINDS:
            problems.append(f"channel {channel.name!r}: kind {channel.kind!r} is none of {', '.join(CHANNEL_KINDS)}")
        if not channel.name.strip():
            problems.append(f"a {channel.kind} channel has an empty name")
    timing = routes.timing
    if timing.group_wait_s < 0:
        problems.append(f"group_wait_s must be 0 or more seconds, got {timing.group_wait_s}")
    if timing.group_interval_s <= 0:
        problems.append(f"group_interval_s must be above 0 seconds, got {timing.group_interval_s}")
    if timing.repeat_interval_s < timing.group_interval_s:
        problems.append(
            f"repeat_interval_s ({timing.repeat_interval_s}) must be at least group_interval_s "
            f"({timing.group_interval_s})"
        )
    if not 1 <= routes.dingtalk_per_minute <= DINGTALK_LIMIT_PER_MINUTE:
        problems.append(
            f"dingtalk_per_minute must be 1 to {DINGTALK_LIMIT_PER_MINUTE} (DingTalk blocks a robot for 10 minutes "
            f"past {DINGTALK_LIMIT_PER_MINUTE}), got {routes.dingtalk_per_minute}"
        )
    if not 2_000 <= routes.dingtalk_max_bytes <= DINGTALK_LIMIT_BYTES:
        problems.append(
            f"dingtalk_max_bytes must be 2000 to {DINGTALK_LIMIT_BYTES} (DingTalk's limit), "
            f"got {routes.dingtalk_max_bytes}"
        )
    try:
        zoneinfo.ZoneInfo(routes.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        problems.append(f"timezone {routes.timezone!r} is no IANA time zone (for example 'Asia/Shanghai')")
    return problems
