"""A site's health baseline is its own figures over the last quarter of an hour on the version it runs (every
heartbeat the ingest took), not the one or two readings of the tick that first reaches it: a baseline of one
reading is as noisy as the figure, and a good canary site failed on it in the demo. ``FigureWindow`` keeps the
sums in one-minute buckets and forgets what is older than its window."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgefleet.cloud.ingesting import Ingest
from edgefleet.cloud.rollouts.figures import FigureWindow
from edgefleet.messages import AppState
from tests.rollouts.world import SITES, release, small_world

CANARY = SITES[0]


def _app(backlog: float, *, version: str = "1.0.0", state: str = "running") -> AppState:
    return AppState(name="scan-upload", version=version, state=state, figures={"upload_backlog": backlog})


def test_the_window_means_what_it_read_within_its_window_and_forgets_the_rest() -> None:
    window = FigureWindow(window_s=600.0, bucket_s=60.0)
    window.add("a", _app(100.0), now=0.0)  # too old by the end
    for i, backlog in enumerate([38.0, 42.0, 40.0, 44.0, 36.0]):
        window.add("a", _app(backlog), now=700.0 + i)
    window.add("a", _app(99.0, state="crash-loop"), now=705.0)  # not running: says nothing of the version
    window.add("a", _app(60.0, version="2.0.0"), now=705.0)
    assert window.mean("a", "scan-upload", "1.0.0", now=710.0) == ({"upload_backlog": 40.0}, 5)
    assert window.mean("a", "scan-upload", "2.0.0", now=710.0) == ({"upload_backlog": 60.0}, 1)
    assert window.mean("b", "scan-upload", "1.0.0", now=710.0) is None
    assert window.mean("a", "scan-upload", "1.0.0", now=2000.0) is None  # all of it older than the window
    assert window.versions("a", "scan-upload") == ["1.0.0", "2.0.0"]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 3000), st.floats(0, 1000)), min_size=1, max_size=60))
def test_the_mean_is_that_of_the_readings_in_the_buckets_the_window_covers(readings: list[tuple[float, float]]) -> None:
    window = FigureWindow(window_s=900.0, bucket_s=60.0)
    for at, backlog in sorted(readings):
        window.add("a", _app(backlog), now=at)
    now = max(at for at, _ in readings)
    kept = [backlog for at, backlog in readings if at // 60 >= now // 60 - 15]
    found = window.mean("a", "scan-upload", "1.0.0", now=now)
    assert found is not None
    means, count = found
    assert count == len(kept)
    assert math.isclose(means["upload_backlog"], math.fsum(kept) / len(kept), rel_tol=1e-9, abs_tol=1e-9)


def test_the_baseline_recorded_at_a_site_is_its_mean_over_the_window_not_its_last_reading(tmp_path: Path) -> None:
    with small_world(tmp_path) as world:
        ingest = Ingest(
            world.state, "mqtt://127.0.0.1:1", clock=world.clock, on_heartbeat=world.reconciler.heartbeat_taken
        )
        # The canary's figures on 0.9.0 go up and down around 40; the last reading before the rollout is 48.
        for backlog in [32.0, 48.0, 36.0, 44.0, 32.0, 48.0]:
            world.figures_override[CANARY] = {"upload_backlog": backlog, "error_rate_percent": 0.4}
            world.beat(dict.fromkeys(SITES, "0.9.0"), through=ingest)
            world.clock.advance(10.0)
        rollout, _ = world.service.start(release("1.0.0"), by="tester")
        world.step(rollout.id)
        baseline = world.rollouts.previous(rollout.id)[CANARY].baseline
        assert baseline == pytest.approx({"upload_backlog": 40.0, "error_rate_percent": 0.4})
