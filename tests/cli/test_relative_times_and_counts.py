"""How the CLI words ages ("3s ago") and counts ("1 box"): table-driven and property tests."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgefleet.cli.fleet import ago, apps_summary, plural

UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (None, "never"),
        (0.0, "0s ago"),
        (-2.0, "0s ago"),  # the box's clock ahead of the controller's must not print "-2s"
        (3.9, "3s ago"),
        (59.99, "59s ago"),
        (60.0, "1m ago"),
        (3599.0, "59m ago"),
        (3600.0, "1h ago"),
        (86399.0, "23h ago"),
        (86400.0, "1d ago"),
        (40 * 86400.0, "40d ago"),
    ],
)
def test_ago(seconds: float | None, expected: str) -> None:
    assert ago(seconds) == expected


@given(st.floats(min_value=0, max_value=10 * 365 * 86400, allow_nan=False))
def test_ago_names_the_largest_whole_unit_and_never_overstates(seconds: float) -> None:
    match = re.fullmatch(r"(\d+)([smhd]) ago", ago(seconds))
    assert match is not None
    count, unit = int(match.group(1)), UNIT_S[match.group(2)]
    assert count * unit <= seconds < (count + 1) * unit
    # The largest unit that fits: a smaller one is used only below the next unit's size.
    assert count >= 1 or unit == 1
    assert unit == 86400 or seconds < unit * {1: 60, 60: 60, 3600: 24}[unit]


@given(st.floats(min_value=0, max_value=1e9, allow_nan=False), st.floats(min_value=0, max_value=1e9, allow_nan=False))
def test_ago_is_ordered_like_the_ages(a: float, b: float) -> None:
    def seconds_of(text: str) -> int:
        match = re.fullmatch(r"(\d+)([smhd]) ago", text)
        assert match
        return int(match.group(1)) * UNIT_S[match.group(2)]

    if a <= b:
        assert seconds_of(ago(a)) <= seconds_of(ago(b))


@pytest.mark.parametrize(
    ("count", "noun", "expected"),
    [(1, "box", "1 box"), (3, "box", "3 boxes"), (0, "site", "0 sites"), (1, "health point", "1 health point")],
)
def test_plural(count: int, noun: str, expected: str) -> None:
    assert plural(count, noun) == expected


@pytest.mark.parametrize(
    ("report", "expected"),
    [
        (None, "-"),
        ({"error": "apps file missing", "apps": []}, "error: apps file missing"),
        ({"error": None, "apps": []}, "none"),
        (
            {"error": None, "apps": [{"state": "failed"}, {"state": "running"}, {"state": "running"}]},
            "2 [green]running[/], 1 [bold red]failed[/]",
        ),
        (
            {"error": None, "apps": [{"state": "stopped"}, {"state": "pending"}]},
            "1 [yellow]pending[/], 1 [dim]stopped[/]",
        ),
    ],
)
def test_apps_summary_puts_running_first(report: dict[str, object] | None, expected: str) -> None:
    assert apps_summary(report) == expected
