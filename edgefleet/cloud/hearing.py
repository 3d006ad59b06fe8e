"""Whether the controller hears the fleet well enough to judge boxes by their silence. Pure: no I/O, no clock.

A box that is silent because the controller could not hear it (the broker was away, the controller fell behind
a flood of messages, it just restarted) is not a lost box. The ingest measures what it can (``IngestStats``:
subscribed or not, the gap since the last message, its lag behind the boxes' own send times, how saturated its
network thread is); ``assess`` turns that into one of four states, and the alert loop judges silence only in
"hearing":

- ``deaf``: not subscribed to the broker, or no message at all for ``deaf_after_s`` while boxes were online;
- ``behind``: messages arrive more than ``lag_limit_s`` late, or the ingest is saturated (busy more than
  ``busy_limit`` of the last window): what it hears is old, and the broker drops what it cannot queue;
- ``recovering``: after ``deaf`` or ``behind``, and after a (re)start, until the fleet is heard again (a share
  ``heard_share`` of the boxes that had been seen have a heartbeat received since the recovery began), but never
  longer than ``recovery_max_s`` after an outage: the agents' reconnect backoff (1 s doubling to
  ``AGENT_RECONNECT_MAX_S``) plus one heartbeat interval, so that every agent has had its retry and its first
  heartbeat; and never longer than ``restart_max_s`` after a (re)start: the boxes kept publishing while the
  controller was away, so one heartbeat timeout of the slowest site hears every live one (the broker being
  unreachable at start is an outage like any other once it lasts ``deaf_after_s``). A box still unheard then is
  judged as usual;
- ``hearing``: otherwise.

The agents' backoff and the hold bound are one documented pair (docs/protocol.md, "Reconnecting"): raise one and
the other follows from ``recovery_bound``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final, Literal

HearingState = Literal["hearing", "deaf", "behind", "recovering"]

# The agent's paho reconnect backoff: 1 s doubling to this (edgefleet/agent/link.py sets it; a test pins the pair).
AGENT_RECONNECT_MAX_S: Final = 60.0
# Silence of the whole fleet this long, while subscribed, means the controller no longer hears the broker's
# deliveries (a stuck connection); a real mass outage sends Last Wills within 1.5 x keepalive + 5 s.
DEAF_AFTER_MIN_S: Final = 5.0
# Heartbeats received this much later than usual (against each box's own usual offset) mean a backlog.
LAG_LIMIT_S: Final = 5.0
# A network thread with no breathing room this share of a window cannot keep up: the broker queues, then drops.
BUSY_LIMIT: Final = 0.9
# "The fleet is heard again" when this share of the boxes seen before the hold was heard since.
HEARD_SHARE: Final = 0.95
# A Last Will is judged this long after it was received, not at once: a broker that shuts down publishes the will
# of every connected box and then drops the controller too, a fraction of a second later. By then the controller
# knows it is deaf and judges nothing; judged at once, every will would be a box-lost alert. A dropped connection is
# still told within 2 s (issue 3's target): the settle plus one pass.
WILL_SETTLE_S: Final = 1.0
# A bad spell this long is told as one fleet-level alert (shorter ones are blips: a broker restart takes ~1 s).
FLEET_ALERT_AFTER_S: Final = 10.0


def recovery_bound(interval_s: float) -> float:
    """The longest recovery hold: every agent's next reconnect attempt, plus its first heartbeat after it."""
    return AGENT_RECONNECT_MAX_S + interval_s


@dataclass(frozen=True, slots=True)
class HearingLimits:
    deaf_after_s: float = DEAF_AFTER_MIN_S
    lag_limit_s: float = LAG_LIMIT_S
    busy_limit: float = BUSY_LIMIT
    heard_share: float = HEARD_SHARE
    recovery_max_s: float = recovery_bound(10.0)
    restart_max_s: float = 36.0


@dataclass(frozen=True, slots=True)
class IngestStats:
    """What the ingest measured, as of ``at`` (its clock's monotonic seconds)."""

    subscribed: bool
    since_last_message_s: float | None  # None: nothing received since the ingest started
    lag_s: float  # worst lag of a heartbeat over the last window, against its box's usual offset
    busy: float  # share of the last window the network thread had no breathing room (0..1)


@dataclass(frozen=True, slots=True)
class Hearing:
    """The assessment: ``state`` since ``since`` (monotonic); ``reason`` in words; ``bad_since`` and ``bad_until``
    the current deaf/behind spell (``bad_until`` None while it lasts; kept through the recovery that follows);
    ``recovery_started_at`` the wall-clock time a recovery began (boxes heard since then count as heard again)."""

    state: HearingState
    since: float
    reason: str
    bad_since: float | None = None
    bad_until: float | None = None
    recovery_started_at: float | None = None
    # The recovery follows a (re)start, not an outage: its bound is ``restart_max_s``.
    after_start: bool = False

    @property
    def judging(self) -> bool:
        """Whether silence may be judged now."""
        return self.state == "hearing"


def starting(*, now: float, wall_now: float) -> Hearing:
    """A controller that just (re)started recovers first: its saved receive times are old."""
    return Hearing("recovering", now, "the controller just started", recovery_started_at=wall_now, after_start=True)


def assess(
    previous: Hearing,
    stats: IngestStats,
    *,
    now: float,
    wall_now: float,
    heard_share: float,
    boxes_were_online: bool,
    limits: HearingLimits,
) -> Hearing:
    """The next assessment. ``now`` monotonic, ``wall_now`` wall-clock; ``heard_share``: the share of the boxes
    seen before that were heard since ``previous.recovery_started_at`` (1.0 when there are none);
    ``boxes_were_online``: whether any box was online when the fleet went quiet (an empty fleet is not deaf)."""
    bad = _bad(stats, boxes_were_online=boxes_were_online, limits=limits)
    if (
        bad is not None
        and previous.after_start
        and previous.state == "recovering"
        and not stats.subscribed
        and now - previous.since < limits.deaf_after_s
    ):
        bad = None  # a starting controller is not yet subscribed: not an outage unless it lasts
    if bad is not None:
        state, reason = bad
        if previous.state == state:
            return replace(previous, reason=reason)
        # A relapse while recovering from a spell is the same spell: after a broker outage the agents are still in
        # their reconnect backoff, so the fleet can stay silent past ``deaf_after_s`` once the controller is back;
        # a new spell would resolve the fleet alert and raise it again (two alerts for one outage).
        relapse = previous.state == "recovering" and previous.bad_since is not None
        bad_since = previous.bad_since if previous.state in ("deaf", "behind") or relapse else now
        return Hearing(state, now, reason, bad_since=bad_since if bad_since is not None else now)
    if previous.state in ("deaf", "behind"):
        return Hearing(
            "recovering",
            now,
            f"hearing again after being {previous.state}; waiting for the fleet to be heard",
            bad_since=previous.bad_since,
            bad_until=now,
            recovery_started_at=wall_now,
        )
    if previous.state == "recovering":
        if not stats.subscribed:
            return previous  # still starting (see above): nothing can be heard yet
        if heard_share >= limits.heard_share:
            return Hearing("hearing", now, f"{heard_share:.0%} of the fleet heard again")
        bound = limits.restart_max_s if previous.after_start else limits.recovery_max_s
        if now - previous.since >= bound:
            return Hearing(
                "hearing", now, f"recovery ended after {bound:g} s with {heard_share:.0%} of the fleet heard"
            )
        return previous
    return previous if previous.state == "hearing" else Hearing("hearing", now, "hearing the fleet")


def _bad(stats: IngestStats, *, boxes_were_online: bool, limits: HearingLimits) -> tuple[HearingState, str] | None:
    if not stats.subscribed:
        return "deaf", "not subscribed to the broker"
    if (
        boxes_were_online
        and stats.since_last_message_s is not None
        and stats.since_last_message_s >= limits.deaf_after_s
    ):
        return "deaf", f"no message from any box for {stats.since_last_message_s:.0f} s"
    if stats.lag_s > limits.lag_limit_s:
        return "behind", f"heartbeats arrive {stats.lag_s:.0f} s late"
    if stats.busy > limits.busy_limit:
        return "behind", f"the ingest is saturated ({stats.busy:.0%} busy)"
    return None


def settling(status_state: str | None, status_taken_at: float | None, *, now: float) -> bool:
    """Whether a box's "offline" status arrived too recently to be judged (``WILL_SETTLE_S``)."""
    return status_state == "offline" and status_taken_at is not None and 0.0 <= now - status_taken_at < WILL_SETTLE_S


def fleet_alert_due(hearing: Hearing, *, now: float) -> bool:
    """Whether the current spell deserves the one fleet-level alert: deaf or behind for ``FLEET_ALERT_AFTER_S``,
    kept while recovering from such a spell (it resolves once the fleet is heard again)."""
    if hearing.bad_since is None or hearing.state == "hearing":
        return False
    end = hearing.bad_until if hearing.bad_until is not None else now
    return end - hearing.bad_since >= FLEET_ALERT_AFTER_S
