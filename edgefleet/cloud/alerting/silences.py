"""Silences: "do not notify alerts of this site / box / kind until then" (planned maintenance, a known fault).

A silenced alert is still evaluated, stored and shown; only its notifications are held back, and when the silence
ends while the alert still fires, it is notified then. Pure: ``reconciling.reconcile_alerts`` asks
``matching_silences`` for every alert; the API validates new silences with ``validate_silence``; ``SilenceRecord`` is a silence as stored and listed.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

from edgefleet.cloud.alerting.alerts import AlertKey, AlertKind
from edgefleet.ids import BoxId, SiteId
from edgefleet.inventory import Inventory

# Maintenance is planned in days, not months: a longer silence is a forgotten one that hides real problems.
MAX_SILENCE_S: Final = 30 * 24 * 3600.0
# Names of people and reasons as stored; a longer "who" is a pasted text, not a name.
MAX_WHO_CHARS: Final = 200

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


def validate_silence(silence: Silence, inventory: Inventory | None = None, *, now: float | None = None) -> list[str]:
    """Every problem of a new silence (empty when it is good), each saying what to change."""
    problems: list[str] = []
    if silence.site is None and silence.box is None and silence.kind is None:
        problems.append(
            "a silence needs at least one matcher (site, box or kind); one that matches everything "
            "would hide every alert of the fleet"
        )
    if silence.ends_at <= silence.starts_at:
        problems.append(f"ends_at ({silence.ends_at}) must be after starts_at ({silence.starts_at})")
    elif silence.ends_at - silence.starts_at > MAX_SILENCE_S:
        days = (silence.ends_at - silence.starts_at) / 86400
        problems.append(f"lasts {days:.1f} days; at most {MAX_SILENCE_S / 86400:.0f} are allowed (extend it later)")
    if now is not None and silence.ends_at <= now:
        problems.append(f"ends_at ({silence.ends_at}) is already past (now is {now})")
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
