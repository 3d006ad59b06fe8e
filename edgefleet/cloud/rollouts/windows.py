"""Blackout windows in each site's local time: when a release's blackouts (``edgefleet.releases.Blackout``, parsed
by the release loader) are in force at a site, and when the next one starts. Pure: ``now`` is a parameter, time
zones come from ``zoneinfo``. Called by ``planning`` (each site's blackout now and next) and, later, by the
rollout's reconciler (a site's ``SiteObservation.blackout``).

``blocked(tz, blackouts, now)`` answers the occurrence of a window in force at the site now (None when none is),
``next_window(tz, blackouts, now)`` the next one to start. Both read ``now`` as the site's local wall time: a daily
window is a span of wall-clock time each day, so on a DST day it may last an hour more or less; a date range
covers whole local days. Whether a local time is inside a window is ``Blackout.covers``'s answer, so the loader's
tests and these agree on the minutes; this module adds the occurrence (its start and end) around it.

The parsers of the windows' text live with the loader (``edgefleet.releases``): one parser per syntax.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from edgefleet.releases import Blackout


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One occurrence of a blackout at a site: from ``starts`` to ``ends`` (excluded), in the site's local time."""

    blackout: Blackout
    starts: datetime
    ends: datetime


def _wall(day: date, minutes: int, tz: ZoneInfo) -> datetime:
    # A daily window may end at 24:00 (1440 minutes): midnight of the next day.
    days, minutes = divmod(minutes, 24 * 60)
    return datetime.combine(day + timedelta(days=days), time(minutes // 60, minutes % 60), tzinfo=tz)


def _passes_midnight(daily: tuple[int, int]) -> bool:
    return daily[1] < daily[0]


def _occurrence(blackout: Blackout, day: date, tz: ZoneInfo) -> Occurrence:
    """The occurrence of ``blackout`` that starts on local ``day`` (a date range's only one, whatever ``day``)."""
    if blackout.dates is not None:
        first, last = blackout.dates
        return Occurrence(blackout, _wall(first, 0, tz), _wall(last + timedelta(days=1), 0, tz))
    assert blackout.daily is not None
    start, end = blackout.daily
    end_day = day + timedelta(days=1) if _passes_midnight(blackout.daily) else day
    return Occurrence(blackout, _wall(day, start, tz), _wall(end_day, end, tz))


def _in_force(blackout: Blackout, local: datetime, tz: ZoneInfo) -> Occurrence | None:
    if not blackout.covers(local):
        return None
    today = local.date()
    if blackout.daily is not None and _passes_midnight(blackout.daily):
        # In the morning part, the occurrence began the evening before.
        minute = local.hour * 60 + local.minute
        if minute < blackout.daily[1]:
            return _occurrence(blackout, today - timedelta(days=1), tz)
    return _occurrence(blackout, today, tz)


def local_time(timezone: str, now: float) -> datetime:
    """``now`` (epoch seconds) as the wall time in ``timezone``."""
    return datetime.fromtimestamp(now, ZoneInfo(timezone))


def blocked(timezone: str, blackouts: list[Blackout], now: float) -> Occurrence | None:
    """The blackout in force at a site of ``timezone`` at ``now`` (the first listed when several are), or None.
    ``blackouts`` are those that apply to the site (``Blackout.applies_to``)."""
    tz = ZoneInfo(timezone)
    local = datetime.fromtimestamp(now, tz)
    for blackout in blackouts:
        occurrence = _in_force(blackout, local, tz)
        if occurrence is not None:
            return occurrence
    return None


def next_window(timezone: str, blackouts: list[Blackout], now: float) -> Occurrence | None:
    """The blackout occurrence that starts next after ``now`` at a site of ``timezone`` (earliest start; the
    first listed on a tie), or None when none ever starts again (only past date ranges)."""
    tz = ZoneInfo(timezone)
    local = datetime.fromtimestamp(now, tz)
    best: Occurrence | None = None
    for blackout in blackouts:
        candidate: Occurrence | None
        if blackout.dates is not None:
            first = blackout.dates[0]
            candidate = _occurrence(blackout, first, tz) if first > local.date() else None
        else:
            assert blackout.daily is not None
            minute = local.hour * 60 + local.minute
            day = local.date() if minute < blackout.daily[0] else local.date() + timedelta(days=1)
            candidate = _occurrence(blackout, day, tz)
        if candidate is not None and (best is None or candidate.starts.timestamp() < best.starts.timestamp()):
            best = candidate
    return best
