"""Blackout windows hold in each site's own local time (``rollouts.windows``): a daily window blocks the wall-clock
minutes inside it, also across midnight, up to 24:00 and on DST days; a date range blocks whole local days, both
ends included. The windows are the loader's (``edgefleet.releases.Blackout``); their text is parsed and refused
there (tests/releases/)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from edgefleet.cloud.rollouts.windows import blocked, next_window
from edgefleet.releases import Blackout, parse_daily, parse_dates

ZONES = ["Asia/Shanghai", "Asia/Urumqi", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "UTC"]
zones = st.sampled_from(ZONES)
minutes = st.integers(min_value=0, max_value=24 * 60 - 1)
days = st.dates(min_value=date(2024, 1, 1), max_value=date(2030, 12, 31))


def at(zone: str, day: date, minute: int) -> float | None:
    """Epoch seconds of a local wall time, or None when that wall time does not exist (a DST gap)."""
    local = datetime(day.year, day.month, day.day, minute // 60, minute % 60, tzinfo=ZoneInfo(zone))
    now = local.timestamp()
    back = datetime.fromtimestamp(now, ZoneInfo(zone))
    return now if back.replace(tzinfo=None) == local.replace(tzinfo=None) else None


def daily(start: int, end: int) -> Blackout:
    return Blackout("peak", daily=(start, end))


def inside(start: int, end: int, minute: int) -> bool:
    return start <= minute < end if start < end else minute >= start or minute < end


@settings(max_examples=300, deadline=None)
@given(zones, days, minutes, minutes, minutes)
def test_a_daily_window_blocks_exactly_the_local_minutes_inside_it(
    zone: str, day: date, start: int, end: int, minute: int
) -> None:
    assume(start != end)
    now = at(zone, day, minute)
    assume(now is not None)
    assert now is not None
    window = daily(start, end)

    found = blocked(zone, [window], now)

    assert (found is not None) == inside(start, end, minute)
    if found is not None:
        assert found.starts.timestamp() <= now < found.ends.timestamp()
        assert (found.starts.hour * 60 + found.starts.minute) == start


# Windows that end after 00:00 the next morning (an end at 00:00 sharp ends at midnight and passes nothing).
passing_midnight = st.integers(min_value=2, max_value=24 * 60 - 1).flatmap(
    lambda start: st.tuples(st.just(start), st.integers(min_value=1, max_value=start - 1))
)


@settings(max_examples=200, deadline=None)
@given(zones, days, passing_midnight)
def test_a_window_passing_midnight_covers_both_sides_of_it(
    zone: str, day: date, window_minutes: tuple[int, int]
) -> None:
    start, end = window_minutes
    window = daily(start, end)
    before = at(zone, day, 24 * 60 - 1)  # 23:59, evening side
    after = at(zone, day + timedelta(days=1), 0)  # 00:00 next day, morning side
    assume(before is not None and after is not None)
    assert before is not None
    assert after is not None

    evening = blocked(zone, [window], before)
    morning = blocked(zone, [window], after)

    assert evening is not None
    assert morning is not None
    assert evening.starts == morning.starts  # one occurrence, across midnight
    assert evening.ends.date() == day + timedelta(days=1)


@settings(max_examples=200, deadline=None)
@given(zones, days, st.integers(min_value=0, max_value=5), st.integers(min_value=-3, max_value=9), minutes)
def test_a_date_range_blocks_whole_local_days_both_ends_included(
    zone: str, first: date, length: int, offset: int, minute: int
) -> None:
    last = first + timedelta(days=length)
    day = first + timedelta(days=offset)
    now = at(zone, day, minute)
    assume(now is not None)
    assert now is not None
    window = Blackout("sales peak", dates=(first, last))

    found = blocked(zone, [window], now)

    assert (found is not None) == (first <= day <= last)


@settings(max_examples=200, deadline=None)
@given(zones, days, minutes, minutes, minutes)
def test_the_next_window_starts_after_now_and_nothing_starts_before_it(
    zone: str, day: date, start: int, end: int, minute: int
) -> None:
    assume(start != end)
    now = at(zone, day, minute)
    assume(now is not None)
    assert now is not None
    window = daily(start, end)

    upcoming = next_window(zone, [window], now)

    assert upcoming is not None
    assert upcoming.starts.timestamp() > now
    assert upcoming.starts.hour * 60 + upcoming.starts.minute == start
    # It is the first start after now: the day before's start (wall-clock arithmetic) is not after now.
    assert (upcoming.starts - timedelta(days=1)).timestamp() <= now


def test_the_same_instant_is_blocked_at_one_site_and_not_at_another() -> None:
    # 2026-12-01 12:30 UTC is 20:30 in Shanghai (in the sorting peak) and 13:30 in Berlin.
    now = datetime(2026, 12, 1, 12, 30, tzinfo=ZoneInfo("UTC")).timestamp()
    peak = Blackout("sorting peak", daily=parse_daily("20:00-02:00"))

    shanghai = blocked("Asia/Shanghai", [peak], now)
    berlin = blocked("Europe/Berlin", [peak], now)

    assert shanghai is not None
    assert shanghai.starts.isoformat() == "2026-12-01T20:00:00+08:00"
    assert shanghai.ends.isoformat() == "2026-12-02T02:00:00+08:00"
    assert berlin is None
    upcoming = next_window("Europe/Berlin", [peak], now)
    assert upcoming is not None
    assert upcoming.starts.isoformat() == "2026-12-01T20:00:00+01:00"


def test_a_daily_window_on_the_day_berlin_changes_clocks_is_wall_time() -> None:
    # 2026-03-29: 02:00 CET becomes 03:00 CEST. A 01:00-04:00 window lasts two hours of real time that night.
    window = Blackout("maintenance", daily=parse_daily("01:00-04:00"))
    now = datetime(2026, 3, 29, 3, 30, tzinfo=ZoneInfo("Europe/Berlin")).timestamp()

    found = blocked("Europe/Berlin", [window], now)

    assert found is not None
    assert found.ends.timestamp() - found.starts.timestamp() == 2 * 3600


def test_date_ranges_that_are_over_have_no_next_window() -> None:
    over = Blackout("Double 11", dates=parse_dates("2025-11-10..2025-11-12"))
    now = datetime(2026, 12, 1, tzinfo=ZoneInfo("UTC")).timestamp()

    assert blocked("Asia/Shanghai", [over], now) is None
    assert next_window("Asia/Shanghai", [over], now) is None


@settings(max_examples=200, deadline=None)
@given(zones, days, st.integers(min_value=1, max_value=24 * 60 - 1))
def test_a_window_that_ends_at_24_00_ends_at_the_next_midnight(zone: str, day: date, start: int) -> None:
    window = daily(start, 24 * 60)
    now = at(zone, day, 24 * 60 - 1)  # 23:59
    assume(now is not None)
    assert now is not None

    found = blocked(zone, [window], now)

    assert found is not None
    assert found.ends.date() == day + timedelta(days=1)
    assert (found.ends.hour, found.ends.minute) == (0, 0)
