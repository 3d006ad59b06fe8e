"""One path from a release file to ``decide``: the loader reads the release, ``plan_rollout`` places the sites,
``rollout_spec`` turns plan and release into the ``RolloutSpec`` the state machine runs: the canary as wave 0,
``approvalBefore`` numbering the same waves, and the strategy's soak, sites in flight, failure threshold and gate
criteria carried over."""

from __future__ import annotations

from dataclasses import replace

import pytest

from edgefleet.cloud.rollouts.deciding import (
    Apply,
    Commands,
    FailureThreshold,
    SiteObservation,
    Wave,
    decide,
    initial_status,
)
from edgefleet.cloud.rollouts.planning import SiteFacts, plan_rollout, rollout_spec
from edgefleet.ids import SiteId
from tests.rollouts.builders import fleet, release

L4 = ("NVIDIA L4", "550.90.07")
T4 = ("NVIDIA T4", "535.183.01")
A10 = ("NVIDIA A10", "535.183.01")
NOW = 1_796_000_000.0

FOUR = fleet(
    [
        ("a-east", "east", [L4]),
        ("b-east", "east", [T4]),
        ("c-north", "north", [L4, T4]),
        ("d-north", "north", [A10]),
    ]
)
FACTS = {s: SiteFacts(reachable=True, versions=frozenset({"3.5.0"})) for s in FOUR.sites}
STRATEGY = {
    "waves": ["50%", "100%"],
    "approvalBefore": [2],
    "soak": "1h30m",
    "maxInFlight": 3,
    "failureThreshold": {"sites": 1, "percentOfWave": 40},
    "gates": {"runningPercent": 80, "healthTolerancePercent": 5},
}


def test_the_spec_has_the_plans_waves_and_the_releases_strategy() -> None:
    loaded = release(FOUR, **STRATEGY)
    plan = plan_rollout(loaded, FOUR, FACTS, now=NOW)

    spec = rollout_spec(plan, loaded)

    assert spec.waves == (
        Wave("canary", (SiteId("c-north"), SiteId("d-north")), needs_approval=False),
        Wave("wave 1", (SiteId("a-east"),), needs_approval=False),
        Wave("wave 2", (SiteId("b-east"),), needs_approval=True),
    )
    assert (spec.release, spec.app, spec.version) == ("sorting-recognition-x", "sorting-recognition", "3.6.0")
    assert spec.threshold == FailureThreshold(sites=1, percent_of_wave=40.0)
    assert (spec.soak_s, spec.max_in_flight) == (5400.0, 3)
    assert (spec.criteria.running_percent, spec.criteria.health_tolerance_percent) == (80.0, 5.0)
    assert spec.criteria.release == "sorting-recognition-x"
    assert spec.commands == Commands()


@pytest.mark.parametrize("approval", [[], [1], [1, 2], [2]])
def test_approval_before_wave_n_of_the_release_is_wave_n_of_the_spec(approval: list[int]) -> None:
    loaded = release(FOUR, **{**STRATEGY, "approvalBefore": approval})

    spec = rollout_spec(plan_rollout(loaded, FOUR, FACTS, now=NOW), loaded)

    assert [n for n, wave in enumerate(spec.waves) if wave.needs_approval] == approval


def test_decide_starts_the_canary_of_the_spec() -> None:
    loaded = release(FOUR, **STRATEGY)
    spec = rollout_spec(plan_rollout(loaded, FOUR, FACTS, now=NOW), loaded)
    observations = {s: SiteObservation(running_release="sorting-recognition-3.5.0") for s in FOUR.sites}

    decision = decide(spec, initial_status(spec), observations, now=NOW)

    assert [a for a in decision.actions if isinstance(a, Apply)] == [
        Apply(SiteId("c-north"), "sorting-recognition-x"),
        Apply(SiteId("d-north"), "sorting-recognition-x"),
    ]
    assert decision.status.waves[0] == "running"


def test_a_plan_of_another_release_is_refused() -> None:
    loaded = release(FOUR, **STRATEGY)
    plan = plan_rollout(loaded, FOUR, FACTS, now=NOW)

    with pytest.raises(ValueError, match="the plan is of release 'sorting-recognition-x', not of 'other'"):
        rollout_spec(plan, replace(loaded, name="other"))
