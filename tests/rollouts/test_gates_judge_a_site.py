"""Each gate of a site, table-driven: what passes, waits and fails, and the reason the release manager reads."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgefleet.cloud.k8s.rollout import RolloutStatus as WorkloadRollout
from edgefleet.cloud.rollouts.gates import (
    MIN_READINGS_TO_FAIL,
    BoxApp,
    FiringAlert,
    GateCriteria,
    SiteHealth,
    Workload,
    agents_gate,
    alerts_gate,
    evaluate_site,
    figures_gate,
    kubernetes_gate,
)
from edgefleet.ids import BoxId
from tests.rollouts.observations import BASELINE, PREVIOUS, RELEASE, boxes, rolled_out

CRITERIA = GateCriteria(app="sorting-recognition", version="3.6.0", release=RELEASE, running_percent=90)


def _box(n: int, *, online: bool = True, version: str = "3.6.0", state: str = "running", since: float = 0.0) -> BoxApp:
    return BoxApp(BoxId(f"b{n}"), online=online, version=version, state=state, running_since=since)


@pytest.mark.parametrize(
    ("workloads", "verdict", "reason"),
    [
        ((), "wait", "no workload of the app seen at the site yet"),
        (rolled_out("a"), "pass", "complete message"),
        (rolled_out("a", state="waiting"), "wait", "waiting message"),
        (rolled_out("a", state="failed"), "fail", "failed message"),
        (rolled_out("a", release=PREVIOUS), "wait", f"sorting-recognition-a is still on release {PREVIOUS}"),
        (rolled_out("a", release=None), "wait", "sorting-recognition-a is still on no labelled release"),  # type: ignore[arg-type]
        # A failed workload fails the site even while another is still on the old release.
        (rolled_out("a", release=PREVIOUS) + rolled_out("b", state="failed"), "fail", "failed message"),
        (rolled_out("a") + rolled_out("b"), "pass", "2 workloads rolled out"),
        (
            rolled_out("a", state="untracked"),
            "pass",
            "sorting-recognition-a not followed by kubectl (OnDelete); agents decide",
        ),
    ],
)
def test_kubernetes_gate_follows_kubectl(workloads: tuple[Workload, ...], verdict: str, reason: str) -> None:
    gate = kubernetes_gate(RELEASE, workloads)
    assert (gate.verdict, gate.reason) == (verdict, reason)


@pytest.mark.parametrize(
    ("site_boxes", "verdict", "reason", "offline"),
    [
        ((), "pass", "no box at this site runs the app", False),
        ((_box(1), _box(2), _box(3)), "pass", "3 of 3 boxes run 3.6.0 (need 90%)", False),
        ((_box(1), _box(2), _box(3, version="3.5.0")), "wait", "2 of 3 boxes run 3.6.0 (need 90%)", False),
        ((_box(1), _box(2), _box(3, state="failed")), "wait", "2 of 3 boxes run 3.6.0 (need 90%)", False),
        # An offline box neither passes nor fails: 2 of the 2 online boxes is enough.
        ((_box(1), _box(2), _box(3, online=False)), "pass", "2 of 2 boxes run 3.6.0 (need 90%), 1 offline", False),
        ((_box(1, online=False), _box(2, online=False)), "wait", "all 2 boxes offline", True),
    ],
)
def test_agents_gate_counts_online_boxes(
    site_boxes: tuple[BoxApp, ...], verdict: str, reason: str, offline: bool
) -> None:
    gate, _, all_offline = agents_gate(CRITERIA, site_boxes, now=100.0)
    assert (gate.verdict, gate.reason, all_offline) == (verdict, reason, offline)


def test_ninety_percent_of_ten_boxes_is_nine() -> None:
    ten = tuple(_box(i, version="3.6.0" if i < 9 else "3.5.0") for i in range(10))
    gate, _, _ = agents_gate(CRITERIA, ten, now=0.0)
    assert gate.verdict == "pass"


def test_the_share_holds_since_the_last_box_it_needs_started() -> None:
    # 90% of 3 is all 3: the share holds since the latest start, 70.
    three = (_box(1, since=10), _box(2, since=70), _box(3, since=40))
    _, since, _ = agents_gate(CRITERIA, three, now=100.0)
    assert since == 70
    # At 50% of 4, two boxes are needed: the second-earliest start.
    half = GateCriteria(app="sorting-recognition", version="3.6.0", release=RELEASE, running_percent=50)
    four = (_box(1, since=10), _box(2, since=70), _box(3, since=40), _box(4, since=90))
    _, since, _ = agents_gate(half, four, now=100.0)
    assert since == 40


@pytest.mark.parametrize(
    ("alerts", "verdict", "reason"),
    [
        ((), "pass", "no new alert since the site started"),
        ((FiringAlert("app-down", started_at=50),), "pass", "no new alert since the site started"),
        ((FiringAlert("box-lost", started_at=150),), "pass", "no new alert since the site started"),
        ((FiringAlert("site-unreachable", started_at=150),), "pass", "no new alert since the site started"),
        (
            (FiringAlert("app-down", started_at=150, summary="crash loop"),),
            "fail",
            "new alert since the site started: app-down: crash loop",
        ),
        (
            (FiringAlert("gpu-overheat", started_at=160), FiringAlert("app-down", started_at=150)),
            "fail",
            "new alert since the site started: app-down (and 1 more)",
        ),
        # The app's own alert counts; another app's does not (its own rollout judges it), a box's alert does.
        (
            (FiringAlert("app-down", started_at=150, summary="scan-upload down", app="scan-upload"),),
            "fail",
            "new alert since the site started: app-down: scan-upload down",
        ),
        (
            (FiringAlert("app-down", started_at=150, app="sorting-recognition"),),
            "pass",
            "no new alert since the site started",
        ),
        (
            (
                FiringAlert("app-down", started_at=150, app="sorting-recognition"),
                FiringAlert("disk-full", started_at=170),
            ),
            "fail",
            "new alert since the site started: disk-full",
        ),
    ],
)
def test_alerts_gate_counts_only_new_alerts(alerts: tuple[FiringAlert, ...], verdict: str, reason: str) -> None:
    gate = alerts_gate(alerts, started_at=100.0, app="scan-upload")
    assert (gate.verdict, gate.reason) == (verdict, reason)


@pytest.mark.parametrize(
    ("current", "baseline", "verdict", "reason", "known"),
    [
        (
            {"fps": 23.0, "inference_latency_ms": 43.0},
            BASELINE,
            "pass",
            "fps 23 (site's 24); inference latency 43 ms (site's 40 ms) on 3.5.0, within 10%",
            True,
        ),
        (
            {"fps": 18.2, "inference_latency_ms": 40.0},
            BASELINE,
            "fail",
            "fps 18.2 is 24% below this site's 24 on 3.5.0 (tolerance 10%)",
            True,
        ),
        (
            {"fps": 24.0, "inference_latency_ms": 50.0},
            BASELINE,
            "fail",
            "inference latency 50 ms is 25% above this site's 40 ms on 3.5.0 (tolerance 10%)",
            True,
        ),
        # Better is never worse.
        ({"fps": 40.0, "inference_latency_ms": 10.0}, BASELINE, "pass", None, True),
        ({"fps": 24.0}, BASELINE, "wait", "waiting for the site to report inference latency", True),
        ({"fps": 24.0}, None, "pass", "no baseline for this site on 3.5.0: not compared", False),
        ({"fps": 24.0, "inference_latency_ms": 40.0}, {"fps": 24.0}, "pass", None, False),
    ],
)
def test_health_gate_compares_the_site_with_itself(
    current: dict[str, float], baseline: dict[str, float] | None, verdict: str, reason: str | None, known: bool
) -> None:
    gate = figures_gate(CRITERIA, SiteHealth(current=current, baseline=baseline, previous_version="3.5.0"))
    assert (gate.verdict, gate.known) == (verdict, known)
    if reason is not None:
        assert gate.reason == reason


@pytest.mark.parametrize(
    ("current", "verdict"),
    [
        # A baseline of 0: changes within the figure's noise are not worse; beyond it they are.
        ({"upload_backlog": 4.0, "error_rate_percent": 0.04}, "pass"),
        ({"upload_backlog": 40.0, "error_rate_percent": 0.0}, "fail"),
        ({"upload_backlog": 0.0, "error_rate_percent": 1.0}, "fail"),
    ],
)
def test_a_zero_baseline_allows_only_noise(current: dict[str, float], verdict: str) -> None:
    criteria = GateCriteria(app="scan-upload", version="2.1.0", release="scan-upload-2.1.0")
    gate = figures_gate(criteria, SiteHealth(current=current, baseline={"upload_backlog": 0, "error_rate_percent": 0}))
    assert gate.verdict == verdict
    if verdict == "fail":
        assert "is above this site's 0" in gate.reason


def test_health_is_judged_only_once_the_new_version_runs() -> None:
    slow = SiteHealth(
        current={"fps": 1.0, "inference_latency_ms": 400.0}, baseline=BASELINE, readings=MIN_READINGS_TO_FAIL
    )
    common = {"alerts": (), "health": slow, "started_at": 0.0, "now": 10.0}
    half = evaluate_site(CRITERIA, workloads=rolled_out("a", state="waiting"), boxes=boxes("a"), **common)  # type: ignore[arg-type]
    assert (half.health.verdict, half.verdict) == ("wait", "wait")
    full = evaluate_site(CRITERIA, workloads=rolled_out("a"), boxes=boxes("a"), **common)  # type: ignore[arg-type]
    assert (full.health.verdict, full.verdict) == ("fail", "fail")
    assert full.reason.startswith("health: fps 1 is 96% below")


def test_a_site_whose_boxes_are_all_offline_is_offline_not_failed() -> None:
    gates = evaluate_site(
        CRITERIA,
        workloads=(Workload("w", RELEASE, WorkloadRollout("waiting", "w")),),
        boxes=boxes("a", online=False),
        alerts=(FiringAlert("box-lost", started_at=5.0),),
        health=SiteHealth(current={}, baseline=BASELINE),
        started_at=0.0,
        now=10.0,
    )
    assert gates.offline
    assert gates.verdict == "wait"


box_states = st.builds(
    BoxApp,
    box=st.sampled_from([BoxId(f"b{i}") for i in range(6)]),
    online=st.booleans(),
    version=st.sampled_from(["3.5.0", "3.6.0", None]),
    state=st.sampled_from(["running", "failed", "pending", None]),
    running_since=st.one_of(st.none(), st.floats(0, 100)),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(box_states, max_size=6), st.sampled_from([0.0, 50.0, 90.0, 100.0]))
def test_offline_boxes_never_change_the_agents_verdict(site_boxes: list[BoxApp], percent: float) -> None:
    criteria = GateCriteria(app="sorting-recognition", version="3.6.0", release=RELEASE, running_percent=percent)
    gate, since, all_offline = agents_gate(criteria, site_boxes, now=100.0)
    online = [b for b in site_boxes if b.online]
    assert gate.verdict != "fail"
    assert all_offline == (bool(site_boxes) and not online)
    if online:
        alone, alone_since, _ = agents_gate(criteria, online, now=100.0)
        assert (alone.verdict, alone_since) == (gate.verdict, since)
    if gate.verdict == "pass" and since is not None:
        assert since <= 100.0


figures = st.floats(0, 1000, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(figures, figures, st.sampled_from([0.0, 10.0, 25.0]))
def test_a_figure_fails_exactly_when_worse_beyond_the_tolerance(base: float, value: float, tolerance: float) -> None:
    criteria = GateCriteria(
        app="sorting-recognition", version="3.6.0", release=RELEASE, health_tolerance_percent=tolerance
    )
    fps = figures_gate(
        criteria,
        SiteHealth(
            current={"fps": value, "inference_latency_ms": 1}, baseline={"fps": base, "inference_latency_ms": 1}
        ),
    )
    latency = figures_gate(
        criteria,
        SiteHealth(
            current={"fps": 1, "inference_latency_ms": value}, baseline={"fps": 1, "inference_latency_ms": base}
        ),
    )
    allowed = base * tolerance / 100
    assert (fps.verdict == "fail") == (base - value > allowed)
    assert (latency.verdict == "fail") == (value - base > allowed)
    # Better is never worse.
    if value >= base:
        assert fps.verdict == "pass"
    if value <= base:
        assert latency.verdict == "pass"
