"""Health alerts from heartbeats: GPU over temperature (sustained), GPU ECC errors, disk almost full, an app down
(sustained), clock skew; thresholds per site and per box model."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgefleet.cloud.alerting import (
    AlertKey,
    AlertKind,
    AlertRules,
    DesiredAlert,
    Evaluation,
    FleetTrack,
    Overrides,
    Severity,
    evaluate,
)
from edgefleet.cloud.fleet import FleetState
from edgefleet.ids import BoxId, SiteId
from tests.alerting.builders import T0, beat, make_inventory, site_boxes

SOLO = SiteId("solo")
BOX = site_boxes("solo", 1)[0]
INTERVAL = 10.0


def run_beats(readings: list[dict[str, Any]], rules: AlertRules | None = None) -> list[Evaluation]:
    """One heartbeat every 10 s with each reading, evaluated at each; plus a pass between beats (nothing new)."""
    fleet = FleetState.for_inventory(make_inventory({"solo": 1}))
    track = FleetTrack()
    out = []
    for i, reading in enumerate(readings):
        now = T0 + i * INTERVAL
        beat(fleet.boxes[BOX], now, **reading)
        evaluation = evaluate(fleet, track, rules or AlertRules(), now=now)
        between = evaluate(fleet, evaluation.track, rules or AlertRules(), now=now + 5)
        assert between.desired == evaluation.desired  # a pass without a heartbeat changes nothing
        track = between.track
        out.append(evaluation)
    return out


def firing(evaluations: list[Evaluation], kind: AlertKind, detail: str | None = None) -> list[DesiredAlert | None]:
    key = AlertKey(kind, SOLO, BoxId(BOX), detail)
    return [e.desired.get(key) for e in evaluations]


def flags(alerts: list[DesiredAlert | None]) -> str:
    return "".join("F" if a is not None else "." for a in alerts)


def temps(*values: float | None) -> list[dict[str, Any]]:
    return [{"gpu_temperature": v} for v in values]


@pytest.mark.parametrize(
    ("readings", "expected"),
    [
        pytest.param(temps(*[90] * 14), "." * 12 + "FF", id="sustained 120 s fires"),
        pytest.param(temps(*[90] * 12), "." * 12, id="110 s is not enough"),
        pytest.param(temps(*[90] * 6, 85, *[90] * 13), "." * 19 + "F", id="a dip to the limit restarts the clock"),
        pytest.param(temps(*[90] * 13, 84, 83, 90), "." * 12 + "FFFF", id="hysteresis keeps it between 82 and 85"),
        pytest.param(temps(*[90] * 13, 82, 90), "." * 12 + "F..", id="82 C resolves it"),
        pytest.param(temps(*[90] * 13, None, 90), "." * 12 + "FFF", id="a missing reading changes nothing"),
    ],
)
def test_gpu_overheat_fires_when_sustained_and_resolves_when_cooled(
    readings: list[dict[str, Any]], expected: str
) -> None:
    alerts = firing(run_beats(readings), AlertKind.GPU_OVERHEAT, "gpu-0")
    assert flags(alerts) == expected
    first = next((a for a in alerts if a is not None), None)
    if first is not None:
        assert first.severity == Severity.WARNING
        # Since the first hot heartbeat of the run that fired it, not since it fired.
        assert first.started_at == T0 + INTERVAL * (alerts.index(first) - 12)
        assert "gpu-0 (NVIDIA T4)" in first.summary


@settings(max_examples=80, deadline=None)
@given(st.lists(st.sampled_from([70.0, 82.0, 83.0, 85.0, 86.0, 95.0]), min_size=1, max_size=40))
def test_gpu_overheat_fires_only_on_heat_sustained_for_the_whole_period(values: list[float]) -> None:
    alerts = firing(run_beats(temps(*values)), AlertKind.GPU_OVERHEAT, "gpu-0")
    span = int(120 / INTERVAL)  # heartbeats 0..12 span 120 s
    for i, alert in enumerate(alerts):
        window = values[max(0, i - span) : i + 1]
        if alert is not None and (i == 0 or alerts[i - 1] is None):
            assert i >= span
            assert all(v > 85 for v in window)
        if i >= span and all(v > 85 for v in window):
            assert alert is not None
        if values[i] <= 82:
            assert alert is None  # cooled below the hysteresis band


@pytest.mark.parametrize(
    ("readings", "expected", "severities"),
    [
        pytest.param(
            [{"ecc_uncorrected": 0}, {"ecc_uncorrected": 2}, {"ecc_uncorrected": 2}, {"ecc_uncorrected": 0}],
            ".FF.",
            [Severity.CRITICAL],
            id="uncorrected errors: critical at once, gone after a reset",
        ),
        pytest.param(
            [{"ecc_corrected": 5}, {"ecc_corrected": 5}, {"ecc_corrected": 30}, {"ecc_corrected": 30}],
            "..FF",
            [Severity.WARNING],
            id="a burst of corrected errors: warning; an old count alone is nothing",
        ),
        pytest.param(
            [{"ecc_corrected": 5}, {"ecc_corrected": 6}, {"ecc_corrected": 8}, {"ecc_corrected": 9}],
            "....",
            [],
            id="a trickle of corrected errors is normal",
        ),
        pytest.param(
            [{"ecc_corrected": 5}, {"ecc_corrected": 0}, {"ecc_corrected": 0}],
            "...",
            [],
            id="a counter reset is no rise",
        ),
        pytest.param(
            [{"ecc_corrected": 1}, {"ecc_corrected": 21}, {"ecc_corrected": 21, "ecc_uncorrected": 1}],
            ".FF",
            [Severity.WARNING, Severity.CRITICAL],
            id="uncorrected on top of a rise escalates the same alert",
        ),
    ],
)
def test_gpu_ecc_errors(readings: list[dict[str, Any]], expected: str, severities: list[Severity]) -> None:
    alerts = firing(run_beats(readings), AlertKind.GPU_ECC, "gpu-0")
    assert flags(alerts) == expected
    assert list(dict.fromkeys(a.severity for a in alerts if a is not None)) == severities


def test_a_rise_of_corrected_errors_stays_an_hour_then_resolves() -> None:
    fleet = FleetState.for_inventory(make_inventory({"solo": 1}))
    box = fleet.boxes[BOX]
    beat(box, T0, ecc_corrected=1)
    track = evaluate(fleet, FleetTrack(), AlertRules(), now=T0).track
    beat(box, T0 + 10, ecc_corrected=40)
    key = AlertKey(AlertKind.GPU_ECC, SOLO, BOX, "gpu-0")
    evaluation = evaluate(fleet, track, AlertRules(), now=T0 + 10)
    assert "corrected errors rising (1 -> 40)" in evaluation.desired[key].summary
    assert key in evaluate(fleet, evaluation.track, AlertRules(), now=T0 + 10 + 3599).desired
    assert key not in evaluate(fleet, evaluation.track, AlertRules(), now=T0 + 10 + 3600).desired


def disk(*values: float) -> list[dict[str, Any]]:
    return [{"disk_free_percent": v} for v in values]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ((50, 9.9, 9.0), ".FF"),
        ((10.0, 10.0), ".."),  # "below 10%" is strict
        ((9, 11, 11.9, 12, 9), "FFF.F"),  # resolves at 2 points above the limit, not in between
    ],
)
def test_disk_almost_full(values: tuple[float, ...], expected: str) -> None:
    alerts = firing(run_beats(disk(*values)), AlertKind.DISK_FULL)
    assert flags(alerts) == expected
    if "F" in expected:
        alert = next(a for a in alerts if a is not None)
        assert "Disk /data" in alert.summary
        assert alert.severity == Severity.WARNING


def apps(*states: dict[str, str] | str) -> list[dict[str, Any]]:
    return [{"apps_error": "metaserver unreachable"} if s == "error" else {"apps": s} for s in states]


@pytest.mark.parametrize(
    ("readings", "expected"),
    [
        pytest.param(apps(*[{"sorter": "failed"}] * 8), "." * 6 + "FF", id="down for 60 s fires"),
        pytest.param(apps(*[{"sorter": "pending"}] * 6, {"sorter": "running"}), "." * 7, id="a restart is no alert"),
        pytest.param(apps(*[{"sorter": "stopped"}] * 7, {"sorter": "running"}), "." * 6 + "F.", id="running resolves"),
        # A Job's pod that ran to success is done, not down: no alert however long it stays completed, and a
        # completed state resolves a down one as running does.
        pytest.param(apps(*[{"sorter": "completed"}] * 9), "." * 9, id="completed is not down"),
        pytest.param(
            apps(*[{"sorter": "failed"}] * 7, {"sorter": "completed"}), "." * 6 + "F.", id="completed resolves"
        ),
        pytest.param(apps(*[{"sorter": "failed"}] * 7, {"other": "running"}), "." * 6 + "F.", id="removed resolves"),
        pytest.param(
            apps(*[{"sorter": "failed"}] * 7, "error", "error"), "." * 6 + "FFF", id="unreadable list keeps it"
        ),
    ],
)
def test_app_down(readings: list[dict[str, Any]], expected: str) -> None:
    alerts = firing(run_beats(readings), AlertKind.APP_DOWN, "sorter")
    assert flags(alerts) == expected
    fired = [a for a in alerts if a is not None]
    if fired:
        assert fired[0].severity == Severity.CRITICAL
        assert fired[0].started_at == T0


@pytest.mark.parametrize(
    ("skews", "expected"),
    [
        ((0.2, 40.0, 0.2), "..."),  # once is a heartbeat that waited somewhere
        ((40.0, 41.0, 0.5), ".F."),
        ((-45.0, -45.0, -45.0), ".FF"),
        ((30.0, 30.0), ".."),  # the bound itself is fine
    ],
)
def test_clock_skew_fires_on_two_heartbeats_in_a_row(skews: tuple[float, ...], expected: str) -> None:
    alerts = firing(run_beats([{"skew_s": s} for s in skews]), AlertKind.CLOCK_SKEW)
    assert flags(alerts) == expected


def test_thresholds_come_from_the_box_model_then_the_site() -> None:
    hot = temps(*[84] * 14)
    model = AlertRules(models={"Advantech MIC-770": Overrides(gpu_temperature_c=80, gpu_temperature_for_s=0)})
    assert flags(firing(run_beats(hot, model), AlertKind.GPU_OVERHEAT, "gpu-0")) == "F" * 14
    site_wins = AlertRules(
        models={"Advantech MIC-770": Overrides(gpu_temperature_c=80)},
        sites={SOLO: Overrides(gpu_temperature_c=90)},
    )
    assert flags(firing(run_beats(hot, site_wins), AlertKind.GPU_OVERHEAT, "gpu-0")) == "." * 14
    other_model = AlertRules(models={"Dell PowerEdge XR11": Overrides(gpu_temperature_c=80)})
    assert flags(firing(run_beats(hot, other_model), AlertKind.GPU_OVERHEAT, "gpu-0")) == "." * 14


def test_a_gpu_no_longer_reported_loses_its_alerts_but_an_unavailable_gpu_report_keeps_them() -> None:
    hot = temps(*[95] * 13)
    gone = firing(run_beats([*hot, {"gpu_temperature": None, "gpu_available": True}]), AlertKind.GPU_OVERHEAT, "gpu-0")
    assert flags(gone) == "." * 12 + "FF"
    driver_down = firing(run_beats([*hot, {"gpu_available": False}]), AlertKind.GPU_OVERHEAT, "gpu-0")
    assert flags(driver_down) == "." * 12 + "FF"
