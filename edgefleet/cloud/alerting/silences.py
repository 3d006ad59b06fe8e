"""Silences: "do not notify alerts of this site / box / kind until then" (planned maintenance, a known fault).

A silenced alert is still evaluated, stored and shown; only its notifications are held back, and when the silence
ends while the alert still fires, it is notified then. Pure: ``reconciling.reconcile_alerts`` asks
``matching_silences`` for every alert; ``commands.AlertCommands`` validates new silences with ``validate_silence``
and stores none twice (``is_identical``); ``SilenceRecord`` is a silence as stored and listed. Messages write times
and durations as people do (``2027-01-15T08:00:00Z``, ``1h30m``), never as epoch seconds.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

from edgefleet.clock import format_duration, format_utc
from edgefleet.cloud.alerting.alerts import AlertKey, AlertKind
from edgefleet.ids import BoxId, SiteId
from edgefleet.inventory import Inventory

# Maintenance is planned in days, not months: a longer silence is a forgotten one that hides real problems.
MAX_SILENCE_S: Final = 30 * 24 * 3600.0
# Names of people and reasons as stored; a longer "who" is a pasted text, not a name.
MAX_WHO_CHARS: Final = 200
# Two silences whose planned ends are this close are the same plan: a request retried, or sent twice by a script,
# computes its end from "now" again ("for 2h"), seconds later.
SAME_END_S: Final = 60.0

SilenceState = Literal["active", "pending", "expired"]


@dataclass(frozen=True, slots=True)
class Silence:
    """Mutes every alert whose site, box and kind match (a None matcher matches any) from ``starts_at`` until
    ``ends_at`` (excluded)."""

    id: str
    starts_at: float
    ends_at: float
    created_by: str
    comment: str
    site: SiteId | None = None
    box: BoxId | None = None
    kind: AlertKind | None = None

    def is_active(self, now: float) -> bool:
        return self.starts_at <= now < self.ends_at

    def matches(self, key: AlertKey) -> bool:
        """True when every matcher that is set equals the key's (a box matcher never matches a site alert)."""
        return (
            (self.site is None or self.site == key.site)
            and (self.box is None or self.box == key.box)
            and (self.kind is None or self.kind == key.kind)
        )


@dataclass(frozen=True, slots=True)
class SilenceRecord:
    """A silence as stored: ``silence`` is what mutes (its ``ends_at`` is when it stopped, if someone ended it
    early), ``planned_ends_at`` the end it was created with, ``ended_by`` who ended it early (None otherwise)."""

    silence: Silence
    planned_ends_at: float
    ended_by: str | None = None

    def state(self, now: float) -> SilenceState:
        """active, pending (starts later) or expired."""
        if self.silence.is_active(now):
            return "active"
        return "pending" if now < self.silence.starts_at else "expired"


def matching_silences(key: AlertKey, silences: Iterable[Silence], now: float) -> tuple[str, ...]:
    """Ids of the silences that mute ``key`` at ``now``, sorted."""
    return tuple(sorted(s.id for s in silences if s.is_active(now) and s.matches(key)))


def is_silenced(key: AlertKey, silences: Iterable[Silence], now: float) -> bool:
    return any(s.is_active(now) and s.matches(key) for s in silences)


def is_identical(silence: Silence, record: SilenceRecord) -> bool:
    """True when ``record`` is the same silence planned again: the same matchers, author and reason (as stored,
    stripped), and a planned end within ``SAME_END_S``."""
    stored = record.silence
    return (
        (stored.site, stored.box, stored.kind) == (silence.site, silence.box, silence.kind)
        and stored.created_by == silence.created_by
        and stored.comment == silence.comment
        and abs(record.planned_ends_at - silence.ends_at) <= SAME_END_S
    )


def validate_silence(silence: Silence, inventory: Inventory | None = None, *, now: float | None = None) -> list[str]:
    """Every problem of a new silence (empty when it is good), each saying what to change."""
    problems: list[str] = []
    if silence.site is None and silence.box is None and silence.kind is None:
        problems.append(
            "a silence needs at least one matcher (site, box or kind); one that matches everything "
            "would hide every alert of the fleet"
        )
    if not (math.isfinite(silence.starts_at) and math.isfinite(silence.ends_at)):
        # No store keeps NaN or infinity faithfully (SQLite turns NaN into NULL; PostgreSQL keeps it, and then
        # no list can show it): refused here whatever the caller checked before.
        problems.append("ends_at must be a time (a duration such as 2h, or an ISO 8601 time), not NaN or infinity")
    elif now is not None and silence.ends_at <= now:
        problems.append(
            f"ends_at ({format_utc(silence.ends_at)}) is already past: it is {format_utc(now)} now; "
            "give a later time, or a duration such as 2h"
        )
    elif silence.ends_at <= silence.starts_at:
        problems.append(
            f"ends_at ({format_utc(silence.ends_at)}) must be after the silence starts ({format_utc(silence.starts_at)})"
        )
    elif silence.ends_at - silence.starts_at > MAX_SILENCE_S:
        problems.append(
            f"lasts {format_duration(silence.ends_at - silence.starts_at)}; at most {format_duration(MAX_SILENCE_S)} "
            "is allowed (silence for less and extend it later)"
        )
    if not silence.created_by.strip():
        problems.append("created_by must name who creates the silence")
    if not silence.comment.strip():
        problems.append("comment must say why (the maintenance ticket, the known fault)")
    if inventory is not None:
        if silence.site is not None and silence.site not in inventory.sites:
            close = difflib.get_close_matches(silence.site, list(inventory.sites), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.append(f"site {silence.site!r} is not in the inventory{hint}")
        if silence.box is not None:
            box = inventory.boxes.get(silence.box)
            if box is None:
                close = difflib.get_close_matches(silence.box, list(inventory.boxes), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                problems.append(f"box {silence.box!r} is not in the inventory{hint}")
            elif silence.site is not None and box.site != silence.site:
                problems.append(f"box {silence.box!r} belongs to site {box.site!r}, not {silence.site!r}")
    return problems
