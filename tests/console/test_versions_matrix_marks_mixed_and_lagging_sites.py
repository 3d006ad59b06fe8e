"""The versions matrix and the site charts' steps (``edgefleet.cloud.console.views``): which version of each app runs
at each site, with mixed sites, lagging sites and an active rollout's waves marked; a site's health points as steps
of its charts. Table-driven, pure: no controller, no clock."""

from __future__ import annotations

import pytest

from edgefleet.cloud.console.views import (
    ActiveRollout,
    RegionView,
    SiteHistoryPoint,
    SiteView,
    VersionCell,
    current_wave,
    site_history,
    version_key,
    versions_matrix,
)
from edgefleet.cloud.fleet import HealthPoint
from edgefleet.ids import BoxId, SiteId

A, B, C = SiteId("site-a"), SiteId("site-b"), SiteId("site-c")
LAYOUT = (
    RegionView(
        "east",
        (
            SiteView(A, "A", "transfer-center", "east", (BoxId("a-1"), BoxId("a-2"))),
            SiteView(B, "B", "transfer-center", "east", (BoxId("b-1"), BoxId("b-2"))),
        ),
    ),
    RegionView("west", (SiteView(C, "C", "central", "west", (BoxId("c-1"),)),)),
)


def reports(**by_box: dict[str, str]) -> dict[BoxId, dict[str, str]]:
    return {BoxId(box.replace("_", "-")): apps for box, apps in by_box.items()}


@pytest.mark.parametrize(
    ("versions", "newest"),
    [
        (["1.9.2", "1.10.0"], "1.10.0"),  # by number, not by text
        (["3.5.0", "3.5.0-rc1"], "3.5.0-rc1"),  # the same rule as the rollouts' (a suffix sorts after)
        (["2026.11.2", "2026.9.30"], "2026.11.2"),
    ],
)
def test_versions_compare_by_their_numbers(versions: list[str], newest: str) -> None:
    assert max(versions, key=version_key) == newest


def test_one_version_everywhere_is_neither_mixed_nor_lagging() -> None:
    matrix = versions_matrix(
        LAYOUT,
        reports(a_1={"scan": "1.2.0"}, a_2={"scan": "1.2.0"}, b_1={"scan": "1.2.0"}, c_1={"scan": "1.2.0"}),
        [],
    )
    assert [s.id for s in matrix.sites] == [A, B, C]  # the layout's order: region, then site
    (row,) = matrix.rows
    assert (row.app, row.newest, row.rollout, row.current_wave) == ("scan", "1.2.0", None, None)
    assert row.cells == (
        VersionCell(A, (("1.2.0", 2),), mixed=False, lagging=False, wave=None, in_current_wave=False),
        VersionCell(B, (("1.2.0", 1),), mixed=False, lagging=False, wave=None, in_current_wave=False),
        VersionCell(C, (("1.2.0", 1),), mixed=False, lagging=False, wave=None, in_current_wave=False),
    )


@pytest.mark.parametrize(
    ("a_1", "a_2", "b_1", "expect_a", "expect_b"),
    [
        # A mixed site whose newer half is the newest: mixed and lagging (a box is behind).
        ("1.10.0", "1.9.2", "1.10.0", ((("1.10.0", 1), ("1.9.2", 1)), True, True), ((("1.10.0", 1),), False, False)),
        # A whole site behind: lagging, not mixed.
        ("1.9.2", "1.9.2", "1.10.0", ((("1.9.2", 2),), False, True), ((("1.10.0", 1),), False, False)),
        # The newest only at a mixed site: the other site lags.
        ("1.11.0", "1.10.0", "1.10.0", ((("1.11.0", 1), ("1.10.0", 1)), True, True), ((("1.10.0", 1),), False, True)),
    ],
)
def test_mixed_and_lagging_sites(
    a_1: str,
    a_2: str,
    b_1: str,
    expect_a: tuple[tuple[tuple[str, int], ...], bool, bool],
    expect_b: tuple[tuple[tuple[str, int], ...], bool, bool],
) -> None:
    matrix = versions_matrix(LAYOUT, reports(a_1={"scan": a_1}, a_2={"scan": a_2}, b_1={"scan": b_1}), [])
    (row,) = matrix.rows
    cell_a, cell_b, cell_c = row.cells
    assert cell_a is not None
    assert (cell_a.versions, cell_a.mixed, cell_a.lagging) == expect_a
    assert cell_b is not None
    assert (cell_b.versions, cell_b.mixed, cell_b.lagging) == expect_b
    assert cell_c is None  # no box of site-c reports the app


def test_apps_are_rows_by_name_and_a_box_without_a_report_counts_nowhere() -> None:
    matrix = versions_matrix(LAYOUT, reports(a_1={"sort": "3.4.2", "scan": "1.2.0"}, c_1={"sort": "3.5.0"}), [])
    assert [r.app for r in matrix.rows] == ["scan", "sort"]
    scan, sort = matrix.rows
    assert [c.site if c else None for c in scan.cells] == [A, None, None]
    assert [c.site if c else None for c in sort.cells] == [A, None, C]
    assert sort.cells[0] is not None
    assert sort.cells[0].lagging  # 3.4.2 behind 3.5.0 at site-c


def rollout(wave_states: tuple[str, ...], version: str = "1.3.0") -> ActiveRollout:
    return ActiveRollout("r-1", "scan", version, ((A,), (B, C)), wave_states)


@pytest.mark.parametrize(
    ("wave_states", "under_way", "current_sites"),
    [
        (("running", "waiting"), 0, {A}),  # the canary runs
        (("passed", "awaiting-approval"), 1, {B, C}),  # the next wave waits for its promotion
        (("passed", "running"), 1, {B, C}),
        (("waiting", "waiting"), 0, {A}),  # started, nothing began yet: the first wave is next
        (("passed", "passed"), None, set()),  # every wave passed
    ],
)
def test_an_active_rollout_marks_its_waves_and_the_one_under_way(
    wave_states: tuple[str, ...], under_way: int | None, current_sites: set[SiteId]
) -> None:
    matrix = versions_matrix(
        LAYOUT,
        reports(a_1={"scan": "1.3.0"}, a_2={"scan": "1.3.0"}, b_1={"scan": "1.2.0"}, c_1={"scan": "1.2.0"}),
        [rollout(wave_states)],
    )
    (row,) = matrix.rows
    assert (row.rollout, row.newest, row.current_wave) == ("r-1", "1.3.0", under_way)
    cells = [c for c in row.cells if c is not None]
    assert [c.wave for c in cells] == [0, 1, 1]
    assert {c.site for c in cells if c.in_current_wave} == current_sites
    # Lagging is measured against the rollout's target: the sites not yet on 1.3.0.
    assert [c.lagging for c in cells] == [False, True, True]


def test_a_rollout_to_an_older_version_makes_the_newer_sites_not_lag_but_the_target_rules() -> None:
    # A rollback release (1.1.0) while sites run 1.2.0: the target is the rollout's, so no site lags below it.
    matrix = versions_matrix(LAYOUT, reports(a_1={"scan": "1.2.0"}), [rollout(("running", "waiting"), "1.1.0")])
    (row,) = matrix.rows
    assert row.newest == "1.1.0"
    assert row.cells[0] is not None
    assert row.cells[0].lagging is False


def test_an_app_with_a_rollout_but_no_report_yet_still_gets_a_row() -> None:
    matrix = versions_matrix(LAYOUT, {}, [rollout(("running", "waiting"))])
    (row,) = matrix.rows
    assert row.app == "scan"
    assert row.cells == (None, None, None)


@pytest.mark.parametrize(
    ("wave_states", "expected"),
    [((), None), (("waiting",), 0), (("passed", "running", "waiting"), 1), (("passed", "waiting"), 1)],
)
def test_the_wave_under_way(wave_states: tuple[str, ...], expected: int | None) -> None:
    assert current_wave(wave_states) == expected


def point(at: float, temperature: float | None, utilization: float | None) -> HealthPoint:
    return HealthPoint(at, None, None, None, temperature, utilization)


def test_a_sites_history_in_steps() -> None:
    points = {
        # box 1 beats twice in the first step (utilisation 10 and 30: its mean 20), box 2 once (80).
        BoxId("a-1"): [
            point(95.0, 50.0, 99.0),
            point(100.0, 60.0, 10.0),
            point(110.0, 61.0, 30.0),
            point(170.0, 58.0, None),
        ],
        BoxId("a-2"): [point(130.0, 70.0, 80.0), point(290.0, None, None)],
    }
    steps = site_history(points, since=100.0, step_s=60.0)
    assert steps == (
        # The point before ``since`` is left out; the utilisation is the mean of each box's mean: (20 + 80) / 2.
        SiteHistoryPoint(100.0, 70.0, 50.0, 2),
        SiteHistoryPoint(160.0, 58.0, None, 1),  # a box with a temperature and no utilisation reading
        # the step from 220 has no point: left out (the chart shows a gap)
        SiteHistoryPoint(280.0, None, None, 1),  # a box that beat without GPU readings counts, with none
    )


def test_no_history_makes_no_steps() -> None:
    assert site_history({BoxId("a-1"): []}, since=0.0, step_s=60.0) == ()
