"""The release's small languages - durations, daily windows, date ranges, waves, image references - parse every
well-formed text to what it says and refuse the rest with a reason (property tests)."""

from __future__ import annotations

import datetime as dt
import itertools
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgefleet.releases import (
    DAY_MINUTES,
    Blackout,
    Wave,
    check_waves,
    format_duration,
    parse_daily,
    parse_dates,
    parse_duration,
    parse_image,
    parse_wave,
)

hours = st.integers(0, 999)
minutes = st.integers(0, 999)
seconds = st.integers(0, 999)


@given(hours, minutes, seconds, st.booleans(), st.booleans(), st.booleans())
def test_a_duration_is_the_sum_of_its_parts(h: int, m: int, s: int, with_h: bool, with_m: bool, with_s: bool) -> None:
    if not (with_h or with_m or with_s):
        with_s = True
    text = (f"{h}h" if with_h else "") + (f"{m}m" if with_m else "") + (f"{s}s" if with_s else "")
    assert parse_duration(text) == h * 3600 * with_h + m * 60 * with_m + s * with_s


@given(st.integers(0, 10**7))
def test_a_formatted_duration_parses_back(total: int) -> None:
    assert parse_duration(format_duration(total)) == total


@given(st.text(max_size=12))
def test_a_duration_is_its_grammar_or_refused(text: str) -> None:
    grammar = re.fullmatch(r"(\d+h)?(\d+m)?(\d+s)?", text.strip()) and text.strip()
    if grammar or text.strip() == "0":
        parse_duration(text)
    else:
        with pytest.raises(ValueError, match="is no duration"):
            parse_duration(text)


@given(st.integers(0, DAY_MINUTES - 1), st.integers(1, DAY_MINUTES))
def test_a_daily_window_reads_back_its_minutes(start: int, end: int) -> None:
    text = f"{start // 60:02}:{start % 60:02}-{end // 60:02}:{end % 60:02}"
    if start == end % DAY_MINUTES:
        with pytest.raises(ValueError, match="starts where it ends"):
            parse_daily(text)
    else:
        assert parse_daily(text) == (start, end)


@given(st.integers(0, DAY_MINUTES - 1), st.integers(1, DAY_MINUTES), st.integers(0, DAY_MINUTES - 1))
def test_a_daily_blackout_covers_exactly_its_minutes(start: int, end: int, at: int) -> None:
    if start == end % DAY_MINUTES:
        return
    blackout = Blackout("peak", daily=(start, end))
    local = dt.datetime(2026, 11, 11, at // 60, at % 60)
    inside = (at - start) % DAY_MINUTES < (end - start) % DAY_MINUTES or (end - start) % DAY_MINUTES == 0
    assert blackout.covers(local) == inside


@given(st.dates(dt.date(2000, 1, 1), dt.date(2099, 12, 31)), st.integers(0, 400), st.integers(-5, 405))
def test_a_date_range_reads_back_and_covers_its_days(first: dt.date, length: int, offset: int) -> None:
    last = first + dt.timedelta(days=length)
    assert parse_dates(f"{first.isoformat()}..{last.isoformat()}") == (first, last)
    with pytest.raises(ValueError, match="ends before it starts"):
        parse_dates(f"{(last + dt.timedelta(days=1)).isoformat()}..{first.isoformat()}")
    day = first + dt.timedelta(days=offset)
    blackout = Blackout("sale", dates=(first, last))
    assert blackout.covers(dt.datetime.combine(day, dt.time(12))) == (0 <= offset <= length)


@given(
    st.integers(0, DAY_MINUTES - 1),
    st.integers(1, DAY_MINUTES),
    st.dates(max_value=dt.date(9999, 11, 30)),
    st.integers(0, 30),
)
def test_a_blackouts_window_text_parses_back(start: int, end: int, first: dt.date, length: int) -> None:
    # The plan shows a blackout's window as a release writes it (edgefleet rollout plan, the API).
    if start != end % DAY_MINUTES:
        daily = Blackout("peak", daily=(start, end))
        assert (daily.kind, parse_daily(daily.window)) == ("daily", (start, end))
    last = first + dt.timedelta(days=length)
    dates = Blackout("sale", dates=(first, last))
    assert (dates.kind, parse_dates(dates.window)) == ("dates", (first, last))


@given(st.text(max_size=24))
def test_windows_that_are_not_their_grammar_are_refused(text: str) -> None:
    if not re.fullmatch(r"\d\d:\d\d-\d\d:\d\d", text.strip()):
        with pytest.raises(ValueError, match="is no daily window"):
            parse_daily(text)
    if not re.fullmatch(r"\d{4}-\d\d-\d\d\.\.\d{4}-\d\d-\d\d", text.strip()):
        with pytest.raises(ValueError, match="is no date range"):
            parse_dates(text)


@given(st.lists(st.integers(1, 99), unique=True, max_size=6), st.lists(st.integers(1, 500), unique=True, max_size=4))
def test_increasing_waves_ending_at_100_percent_are_a_plan(percents: list[int], counts: list[int]) -> None:
    waves = [parse_wave(str(c)) for c in sorted(counts)] + [parse_wave(f"{p}%") for p in sorted(percents)]
    waves.append(parse_wave("100%"))
    assert check_waves(waves) is None
    assert [str(w) for w in waves] == [str(c) for c in sorted(counts)] + [f"{p}%" for p in sorted(percents)] + ["100%"]


@given(st.lists(st.integers(1, 100), min_size=2, max_size=6))
def test_waves_that_do_not_grow_or_end_short_are_refused(percents: list[int]) -> None:
    waves = [Wave(percent=p) for p in percents]
    increasing = all(a < b for a, b in itertools.pairwise(percents))
    why = check_waves(waves)
    if increasing and percents[-1] == 100:
        assert why is None
    elif not increasing:
        assert why is not None
        assert "does not go beyond" in why
    else:
        assert why is not None
        assert "it must be '100%'" in why


def test_no_waves_and_nonsense_waves_are_refused() -> None:
    assert check_waves([]) == "there must be at least one wave, and the last must be '100%'"
    assert check_waves([Wave(percent=50), Wave(count=3), Wave(percent=100)]) == (
        "wave 2 (3) gives a number of sites after a share; give shares from then on"
    )
    for text, reason in [("0%", "more than 0%"), ("0", "at least one site"), ("1/2", "is no wave"), ("", "is no wave")]:
        with pytest.raises(ValueError, match=reason):
            parse_wave(text)


path_part = st.from_regex(r"[a-z0-9]{1,8}(?:[._-][a-z0-9]{1,8}){0,2}", fullmatch=True)
tag = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)
digest = st.from_regex(r"sha256:[0-9a-f]{64}", fullmatch=True)


@given(
    st.sampled_from(["", "registry.local:5000/", "localhost/", "ghcr.io/"]),
    st.lists(path_part, min_size=1, max_size=3),
    st.one_of(st.none(), tag),
    st.one_of(st.none(), digest),
)
def test_an_image_reference_splits_and_joins_back(
    domain: str, parts: list[str], tag: str | None, dig: str | None
) -> None:
    text = domain + "/".join(parts) + (f":{tag}" if tag else "") + (f"@{dig}" if dig else "")
    if tag is None and dig is None:
        with pytest.raises(ValueError, match="names neither a tag nor a digest"):
            parse_image(text)
        return
    ref = parse_image(text)
    assert (str(ref), ref.tag, ref.digest) == (text, tag, dig)


@pytest.mark.parametrize(
    "text",
    [
        "Registry.local/App:1",  # upper case path
        "registry.local:5000/app:1@sha256:abc",  # short digest
        "registry.local:5000/app:1@md5:" + "a" * 32,  # not sha256
        "registry.local:5000/app::1",
        "app:" + "x" * 129,  # tag too long
        "/app:1",
        "registry.local:5000/app:1 ",
    ],
)
def test_bad_image_references_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is no image reference"):
        parse_image(text)
