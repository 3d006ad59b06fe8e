"""The simulated apps' health figures: each site's own healthy baseline from the seed, a little noise per heartbeat,
none from an app that is not running; and the ``slow`` fault, whose pure rules say which version is how much worse
where, and which makes exactly those figures worse in their direction."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgefleet.ids import BoxId, SiteId
from edgefleet.inventory import Inventory, load_inventory
from edgefleet.messages import AppRunState, AppState
from simulator.faults import DEFAULT_SLOW_PERCENT, FaultRejected, FaultRequest, Faults
from simulator.figures import SHAPES, SimulatedFigures, noisy, site_baseline, worse
from simulator.sources import NodePodsAppSource
from tests.simulator.fleets import write_inventory

EDGE, GPU, GPU2 = BoxId("site-01-edge-01"), BoxId("site-01-gpu-01"), BoxId("site-01-gpu-02")
OTHER = BoxId("site-02-gpu-01")
SITE = SiteId("site-01")
SEED = 7


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Inventory:
    directory: Path = tmp_path_factory.mktemp("sites")
    write_inventory(directory, sites=2, boxes_per_site=3, central=True)
    return load_inventory(directory)


# --- the slow fault's rules ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "reason", "field", "words"),
    [
        (FaultRequest(kind="slow"), "invalid", "version", "needs an image version"),
        (FaultRequest(kind="slow", version="2 0"), "invalid", "version", "one word"),
        (FaultRequest(kind="slow", version="2.0", by=0), "invalid", "by", "by must be more than 0"),
        (FaultRequest(kind="slow", version="2.0", by=-10), "invalid", "by", "more than 0"),
        (FaultRequest(kind="slow", version="2.0", by=float("nan")), "invalid", "by", "got nan"),
        (FaultRequest(kind="slow", version="2.0", by=5000), "invalid", "by", "at most 1000"),
        (FaultRequest(kind="slow", version="2.0", site="mars"), "not-found", "site", "no site 'mars'"),
        (FaultRequest(kind="slow", version="2.0", gpu_model="H100"), "not-found", "gpu_model", "NVIDIA L4"),
        (
            FaultRequest(kind="slow", version="2.0", site=SITE, gpu_model="NVIDIA L4"),
            "invalid",
            "gpu_model",
            "at a site or on a GPU model, not both",
        ),
        (FaultRequest(kind="slow", version="2.0", box=GPU), "invalid", "box", "'box' does not apply to a slow fault"),
        (FaultRequest(kind="crash-loop", version="2.0", site=SITE, by=5), "invalid", "by", "does not apply"),
    ],
)
def test_bad_slow_requests_are_refused_saying_which_field_and_why(
    fleet: Inventory, request_: FaultRequest, reason: str, field: str, words: str
) -> None:
    with pytest.raises(FaultRejected) as caught:
        Faults(fleet).add(request_, now=0.0)
    assert (caught.value.reason, caught.value.field) == (reason, field)
    assert words in caught.value.message


def test_a_slow_fault_hits_its_version_where_it_is_set(fleet: Inventory) -> None:
    faults = Faults(fleet)
    everywhere = faults.add(FaultRequest(kind="slow", version="3.5.0"), now=0.0)
    assert (everywhere.site, everywhere.by) == (None, DEFAULT_SLOW_PERCENT)
    faults.add(FaultRequest(kind="slow", version="2.0", app="scan-upload", site=SITE, by=50, seconds=10), now=0.0)
    faults.add(FaultRequest(kind="slow", version="9.9", gpu_model="NVIDIA L4", by=200), now=0.0)
    assert faults.slowdown_of(OTHER, "sorting-recognition", "3.5.0", 1.0) == DEFAULT_SLOW_PERCENT
    assert faults.slowdown_of(EDGE, "scan-upload", "2.0", 1.0) == 50.0
    assert faults.slowdown_of(EDGE, "scan-upload", "2.0", 10.0) == 0.0, "ended"
    assert faults.slowdown_of(BoxId("site-02-edge-01"), "scan-upload", "2.0", 1.0) == 0.0, "another site"
    assert faults.slowdown_of(EDGE, "label-print", "2.0", 1.0) == 0.0, "another app"
    assert faults.slowdown_of(EDGE, "scan-upload", "2.1", 1.0) == 0.0, "another version"
    assert faults.slowdown_of(OTHER, "sorting-recognition", "9.9", 1.0) == 200.0, "every box with that GPU model"
    assert faults.slowdown_of(BoxId("site-02-edge-01"), "scan-upload", "9.9", 1.0) == 0.0, "no GPU there"


def test_of_two_slow_faults_on_one_version_the_later_counts(fleet: Inventory) -> None:
    faults = Faults(fleet)
    faults.add(FaultRequest(kind="slow", version="1.0", by=20), now=0.0)
    later = faults.add(FaultRequest(kind="slow", version="1.0", site=SITE, by=80), now=1.0)
    assert faults.slowdown_of(GPU, "sorting-recognition", "1.0", 2.0) == 80.0
    assert faults.slowdown_of(OTHER, "sorting-recognition", "1.0", 2.0) == 20.0
    faults.clear(fault_id=later.id)
    assert faults.slowdown_of(GPU, "sorting-recognition", "1.0", 2.0) == 20.0


# --- the figures ---------------------------------------------------------------------------------------------


@given(seed=st.integers(0, 2**32), site=st.from_regex(r"[a-z]{2,8}-[0-9]{2}", fullmatch=True))
def test_every_site_has_a_healthy_baseline_of_its_own_in_the_documented_ranges(seed: int, site: str) -> None:
    for app, shapes in SHAPES.items():
        baseline = site_baseline(seed, site, app)
        assert baseline == site_baseline(seed, site, app), "the same every run"
        assert set(baseline) == {s.name for s in shapes}
        for shape in shapes:
            assert shape.low <= baseline[shape.name] <= shape.high
    assert site_baseline(seed, site, "label-print") == {}


def test_sites_differ() -> None:
    assert len({site_baseline(SEED, f"site-{i:02d}", "sorting-recognition")["fps"] for i in range(10)}) == 10


@given(
    app=st.sampled_from(sorted(SHAPES)),
    by=st.floats(min_value=0.1, max_value=1000),
    seed=st.integers(0, 1000),
)
def test_worse_is_worse_in_each_figures_direction_by_the_share_asked(app: str, by: float, seed: int) -> None:
    baseline = site_baseline(seed, "site-01", app)
    slower = worse(app, baseline, by)
    for shape in SHAPES[app]:
        before, after = baseline[shape.name], slower[shape.name]
        if shape.better == "higher":
            assert after < before
            assert after * (1 + by / 100) == pytest.approx(before)
        else:
            assert after > before
            assert after == pytest.approx(before * (1 + by / 100))


@given(app=st.sampled_from(sorted(SHAPES)), seed=st.integers(0, 1000))
def test_noise_is_small_and_never_below_zero(app: str, seed: int) -> None:
    baseline = site_baseline(seed, "site-01", app)
    rng = random.Random(seed)
    for _ in range(20):
        sample = noisy(app, baseline, rng)
        for shape in SHAPES[app]:
            assert sample[shape.name] >= 0
            # Five standard deviations plus the rounding: a draw past it would take longer than the universe.
            assert abs(sample[shape.name] - baseline[shape.name]) <= 5 * shape.noise * baseline[shape.name] + 0.5


def _app(name: str, version: str, state: AppRunState = "running") -> AppState:
    return AppState(name=name, version=version, state=state)


def test_a_box_reports_its_sites_figures_and_a_slow_version_worse() -> None:
    slow: dict[tuple[str, str], float] = {}
    figures = SimulatedFigures(
        seed=SEED, site="site-01", box="site-01-gpu-01", slowdown=lambda a, v: slow.get((a, v), 0)
    )
    baseline = site_baseline(SEED, "site-01", "sorting-recognition")
    healthy = [figures(_app("sorting-recognition", "3.5.0")) for _ in range(30)]
    assert all(h is not None for h in healthy)
    mean_fps = sum(h["fps"] for h in healthy if h is not None) / len(healthy)
    assert mean_fps == pytest.approx(baseline["fps"], rel=0.03)
    slow[("sorting-recognition", "3.5.0")] = 100.0
    slowed = [figures(_app("sorting-recognition", "3.5.0")) for _ in range(30)]
    slow_fps = sum(s["fps"] for s in slowed if s is not None) / len(slowed)
    assert slow_fps == pytest.approx(baseline["fps"] / 2, rel=0.03)
    other = figures(_app("sorting-recognition", "3.4.2"))
    assert other is not None
    assert other["fps"] == pytest.approx(baseline["fps"], rel=0.15), "another version runs as fast as ever"


@pytest.mark.parametrize("state", ["failed", "pending", "stopped", "unknown"])
def test_an_app_that_is_not_running_reports_no_figures(state: AppRunState) -> None:
    figures = SimulatedFigures(seed=SEED, site="s", box="b", slowdown=lambda a, v: 0.0)
    assert figures(_app("sorting-recognition", "3.5.0", state)) is None
    assert figures(_app("label-print", "1.0")) is None, "an app the simulator has no figures for"


def _pod(name: str, *, crashing: bool) -> dict[str, Any]:
    state = {"waiting": {"reason": "CrashLoopBackOff"}} if crashing else {"running": {}}
    return {
        "metadata": {"name": f"{name}-x", "namespace": "edgefleet", "labels": {"app.kubernetes.io/name": name}},
        "spec": {"containers": [{"name": name, "image": f"registry.local:5000/{name}:3.5.0"}]},
        "status": {
            "phase": "Running",
            "containerStatuses": [{"name": name, "ready": not crashing, "restartCount": 0, "state": state}],
        },
    }


def test_node_pods_carry_figures_and_a_crash_looping_pod_none() -> None:
    figures = SimulatedFigures(seed=SEED, site="s", box="b", slowdown=lambda a, v: 0.0)
    pods = [_pod("sorting-recognition", crashing=False), _pod("scan-upload", crashing=True)]
    report = NodePodsAppSource(lambda: pods, figures=figures).read()
    running, crashing = report.apps
    assert running.figures is not None
    assert set(running.figures) == {"fps", "inference_latency_ms"}
    assert (crashing.state, crashing.figures) == ("failed", None)
    assert NodePodsAppSource(lambda: pods).read().apps[0].figures is None, "no figures source, no figures"
