"""The release strategy's small languages, and blackout windows in each site's local time. Pure: ``now`` is a
parameter, time zones come from ``zoneinfo``.

Parsing (each function takes the text as written in the release and raises ``ValueError`` with a reason a person
can act on; ``planning`` turns it into a refusal naming the field; the release loader may call the same
functions):
- ``parse_wave``: ``"10%"`` (a percentage, over 0 and at most 100) or ``"5"`` (a count, at least 1);
- ``parse_duration``: ``"10m"``, ``"1h30m"``, ``"45s"``, ``"0s"`` (hours, minutes, seconds, in that order);
- ``parse_daily``: ``"HH:MM-HH:MM"``, 24-hour, start included, end excluded; an end before the start passes
  midnight (``"20:00-02:00"`` covers 20:00 to 02:00 next morning);
- ``parse_dates``: ``"YYYY-MM-DD..YYYY-MM-DD"``, both days included.

Windows: ``blocked(tz, blackouts, now)`` answers the occurrence of a window in force at the site now (None when
none is), ``next_window(tz, blackouts, now)`` the next one to start. Both read ``now`` as the site's local wall
time: a daily window is a span of wall-clock time each day, so on a DST day it may last an hour more or less; a
date range covers whole local days.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Final, Literal
from zoneinfo import ZoneInfo

_WAVE_PERCENT: Final = re.compile(r"^(\d+(?:\.\d+)?)%$")
_WAVE_COUNT: Final = re.compile(r"^\d+$")
_DURATION: Final = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_DAILY: Final = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")
_DATES: Final = re.compile(r"^(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})$")
MINUTES_PER_DAY: Final = 24 * 60


# --- waves and durations ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WaveSize:
    """How far a wave reaches, cumulatively: ``percent`` of the sites after the canary, or ``count`` of them."""

    text: str
    percent: float | None = None
    count: int | None = None

    def reach(self, total: int) -> int:
        """How many of ``total`` sites the waves up to this one hold at most (a percentage rounds down)."""
        if self.percent is not None:
            return min(total, int(total * self.percent / 100))
        assert self.count is not None
        return min(total, self.count)


def parse_wave(text: str) -> WaveSize:
    """``"10%"`` or ``"5"``: how far the waves reach with this one."""
    percent = _WAVE_PERCENT.match(text.strip())
    if percent:
        value = float(percent.group(1))
        if not 0 < value <= 100:
            raise ValueError(f"{text!r}: a percentage must be over 0% and at most 100%")
        return WaveSize(text, percent=value)
    if _WAVE_COUNT.match(text.strip()):
        count = int(text)
        if count < 1:
            raise ValueError(f"{text!r}: a count must be at least 1")
        return WaveSize(text, count=count)
    raise ValueError(
        f'{text!r} is no wave size: write a percentage of the sites after the canary ("10%") or a count ("5")'
    )


def parse_duration(text: str) -> float:
    """Seconds of ``"1h30m"``, ``"10m"``, ``"45s"``, ``"0s"``."""
    match = _DURATION.match(text.strip())
    if not text.strip() or not match:
        raise ValueError(f'{text!r} is no duration: write hours, minutes and seconds like "1h30m", "10m" or "0s"')
    hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return float(hours * 3600 + minutes * 60 + seconds)


# --- windows ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Daily:
    """Every day from ``start`` to ``end`` (minutes after local midnight), passing midnight when end < start."""

    start: int
    end: int

    @property
    def passes_midnight(self) -> bool:
        return self.end < self.start


@dataclass(frozen=True, slots=True)
class Dates:
    """Every local day from ``first`` to ``last``, both included."""

    first: date
    last: date


def _clock_time(hours: str, minutes: str, text: str) -> int:
    h, m = int(hours), int(minutes)
    if h > 23 or m > 59:
        raise ValueError(f"{text!r}: {hours}:{minutes} is no time of day (00:00 to 23:59)")
    return h * 60 + m


def parse_daily(text: str) -> Daily:
    """``"20:00-02:00"``: a daily window in the site's local time."""
    match = _DAILY.match(text.strip())
    if not match:
        raise ValueError(f'{text!r} is no daily window: write "HH:MM-HH:MM" in 24-hour time, e.g. "20:00-02:00"')
    start = _clock_time(match.group(1), match.group(2), text)
    end = _clock_time(match.group(3), match.group(4), text)
    if start == end:
        raise ValueError(f"{text!r} starts and ends at the same time: give a window of at least one minute")
    return Daily(start, end)


def parse_dates(text: str) -> Dates:
    """``"2026-11-10..2026-11-12"``: local days, both included."""
    match = _DATES.match(text.strip())
    if not match:
        raise ValueError(f'{text!r} is no date range: write "YYYY-MM-DD..YYYY-MM-DD" (both days included)')
    try:
        first, last = date.fromisoformat(match.group(1)), date.fromisoformat(match.group(2))
    except ValueError as exc:
        raise ValueError(f"{text!r}: {exc}") from exc
    if last < first:
        raise ValueError(f"{text!r} ends before it starts: put the earlier day first")
    return Dates(first, last)


@dataclass(frozen=True, slots=True)
class Blackout:
    """A parsed blackout of the release: its window, why, and the sites it covers (empty: every site)."""

    window: Daily | Dates
    text: str
    reason: str
    sites: frozenset[str] = frozenset()

    @property
    def kind(self) -> Literal["daily", "dates"]:
        return "daily" if isinstance(self.window, Daily) else "dates"

    def covers(self, site: str) -> bool:
        return not self.sites or site in self.sites


def parse_blackout(daily: str | None, dates: str | None, reason: str, sites: list[str]) -> Blackout:
    """One blackout entry: exactly one of ``daily`` and ``dates``."""
    if (daily is None) == (dates is None):
        raise ValueError('give exactly one of daily ("HH:MM-HH:MM") and dates ("YYYY-MM-DD..YYYY-MM-DD")')
    if daily is not None:
        return Blackout(parse_daily(daily), daily, reason, frozenset(sites))
    assert dates is not None
    return Blackout(parse_dates(dates), dates, reason, frozenset(sites))


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One occurrence of a blackout at a site: from ``starts`` to ``ends`` (excluded), in the site's local time."""

    blackout: Blackout
    starts: datetime
    ends: datetime


def _wall(day: date, minutes: int, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(minutes // 60, minutes % 60), tzinfo=tz)


def _occurrence(blackout: Blackout, day: date, tz: ZoneInfo) -> Occurrence:
    """The occurrence of ``blackout`` that starts on local ``day``."""
    window = blackout.window
    if isinstance(window, Dates):
        return Occurrence(blackout, _wall(window.first, 0, tz), _wall(window.last + timedelta(days=1), 0, tz))
    end_day = day + timedelta(days=1) if window.passes_midnight else day
    return Occurrence(blackout, _wall(day, window.start, tz), _wall(end_day, window.end, tz))


def _in_force(blackout: Blackout, local: datetime, tz: ZoneInfo) -> Occurrence | None:
    window = blackout.window
    today = local.date()
    if isinstance(window, Dates):
        return _occurrence(blackout, today, tz) if window.first <= today <= window.last else None
    minute = local.hour * 60 + local.minute  # seconds do not matter: windows start and end on whole minutes
    if window.passes_midnight:
        if minute >= window.start:
            return _occurrence(blackout, today, tz)
        if minute < window.end:
            return _occurrence(blackout, today - timedelta(days=1), tz)
        return None
    return _occurrence(blackout, today, tz) if window.start <= minute < window.end else None


def local_time(timezone: str, now: float) -> datetime:
    """``now`` (epoch seconds) as the wall time in ``timezone``."""
    return datetime.fromtimestamp(now, ZoneInfo(timezone))


def blocked(timezone: str, blackouts: list[Blackout], now: float) -> Occurrence | None:
    """The blackout in force at a site of ``timezone`` at ``now`` (the first listed when several are), or None.
    ``blackouts`` are those that cover the site (``Blackout.covers``)."""
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
        window = blackout.window
        if isinstance(window, Dates):
            candidate = _occurrence(blackout, window.first, tz) if window.first > local.date() else None
        else:
            minute = local.hour * 60 + local.minute
            day = local.date() if minute < window.start else local.date() + timedelta(days=1)
            candidate = _occurrence(blackout, day, tz)
        if candidate is not None and (best is None or candidate.starts.timestamp() < best.starts.timestamp()):
            best = candidate
    return best
