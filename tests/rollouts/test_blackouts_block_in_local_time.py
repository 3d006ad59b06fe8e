"""Blackout windows hold in each site's own local time (``rollouts.windows``): a daily window blocks the wall-clock
minutes inside it, also across midnight and on DST days; a date range blocks whole local days, both ends
included. The strategy's other small languages (wave sizes, durations) are refused with a reason."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from edgefleet.cloud.rollouts.windows import (
    Blackout,
    Daily,
    Dates,
    blocked,
    next_window,
    parse_blackout,
    parse_daily,
    parse_dates,
    parse_duration,
    parse_wave,
)

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
    return Blackout(Daily(start, end), f"{start // 60:02}:{start % 60:02}-{end // 60:02}:{end % 60:02}", "peak")


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
    window = Blackout(Dates(first, last), f"{first}..{last}", "sales peak")

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
    peak = parse_blackout("20:00-02:00", None, "sorting peak", [])

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
    window = parse_blackout("01:00-04:00", None, "maintenance", [])
    now = datetime(2026, 3, 29, 3, 30, tzinfo=ZoneInfo("Europe/Berlin")).timestamp()

    found = blocked("Europe/Berlin", [window], now)

    assert found is not None
    assert found.ends.timestamp() - found.starts.timestamp() == 2 * 3600


def test_date_ranges_that_are_over_have_no_next_window() -> None:
    over = parse_blackout(None, "2025-11-10..2025-11-12", "Double 11", [])
    now = datetime(2026, 12, 1, tzinfo=ZoneInfo("UTC")).timestamp()

    assert blocked("Asia/Shanghai", [over], now) is None
    assert next_window("Asia/Shanghai", [over], now) is None


@pytest.mark.parametrize(
    ("text", "percent", "count"),
    [("10%", 10.0, None), ("100%", 100.0, None), ("12.5%", 12.5, None), ("5", None, 5)],
)
def test_wave_sizes_are_percentages_or_counts(text: str, percent: float | None, count: int | None) -> None:
    size = parse_wave(text)
    assert (size.percent, size.count) == (percent, count)


@pytest.mark.parametrize(
    ("parse", "text", "says"),
    [
        (parse_wave, "0%", "over 0%"),
        (parse_wave, "150%", "at most 100%"),
        (parse_wave, "0", "at least 1"),
        (parse_wave, "ten", "no wave size"),
        (parse_duration, "10 minutes", "no duration"),
        (parse_duration, "", "no duration"),
        (parse_duration, "30m1h", "no duration"),
        (parse_daily, "20:00 - 02:00", "HH:MM-HH:MM"),
        (parse_daily, "24:00-02:00", "no time of day"),
        (parse_daily, "08:00-08:00", "same time"),
        (parse_dates, "2026-11-12..2026-11-10", "ends before it starts"),
        (parse_dates, "2026-02-30..2026-03-01", "day is out of range"),
        (parse_dates, "2026-11-10", "YYYY-MM-DD..YYYY-MM-DD"),
    ],
)
def test_bad_strategy_text_is_refused_with_what_to_write(parse: object, text: str, says: str) -> None:
    assert callable(parse)
    with pytest.raises(ValueError, match=says):
        parse(text)


@pytest.mark.parametrize(("text", "seconds"), [("10m", 600), ("1h30m", 5400), ("45s", 45), ("0s", 0), ("2h", 7200)])
def test_durations_read_hours_minutes_and_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_a_blackout_is_either_daily_or_dates() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        parse_blackout("20:00-02:00", "2026-11-10..2026-11-12", "both", [])
    with pytest.raises(ValueError, match="exactly one"):
        parse_blackout(None, None, "neither", [])
