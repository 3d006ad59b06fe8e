"""The health gate judges a site over its whole soak: it passes only once the soak is over with the means since
the new version ran within the tolerance, fails at the end of the soak when they are worse, and fails before the
end, and at the end, only when they are worse over at least ``MIN_READINGS_TO_FAIL`` readings (fewer: it waits for
more, bounded by the site's deadline). Zero soak: the first means, judged as at the end of a soak."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgefleet.cloud.rollouts.deciding import RolloutStatus, SiteObservation, decide, initial_status
from edgefleet.cloud.rollouts.gates import MIN_READINGS_TO_FAIL, GateCriteria, SiteHealth, health_over_soak
from edgefleet.ids import SiteId
from tests.rollouts.observations import BASELINE, RELEASE, good, spec
from tests.rollouts.world import SITES, small_world
from tests.rollouts.world import release as world_release

CRITERIA = GateCriteria(app="sorting-recognition", version="3.6.0", release=RELEASE, health_tolerance_percent=10)
SLOW = {"fps": 18.0, "inference_latency_ms": 40.0}  # 25% below the site's 24 fps
A = SiteId("a")


def _health(current: dict[str, float], readings: int, baseline: dict[str, float] | None = BASELINE) -> SiteHealth:
    return SiteHealth(current=current, baseline=baseline, previous_version="3.5.0", readings=readings)


@pytest.mark.parametrize(
    ("current", "readings", "soak_over", "verdict", "reason"),
    [
        # Within the tolerance: waits during the soak, passes at its end.
        (BASELINE, 3, False, "wait", "so far fps 24 (site's 24); inference latency 40 ms (site's 40 ms) on 3.5.0, "
         "within 10%; mean of 3 readings, judged at the end of the soak"),
        (BASELINE, 30, True, "pass", "fps 24 (site's 24); inference latency 40 ms (site's 40 ms) on 3.5.0, within "
         "10%; mean of 30 readings on the new version"),
        # Worse on a few readings: not yet a verdict; on enough readings, or at the end of the soak, it fails.
        (SLOW, MIN_READINGS_TO_FAIL - 1, False, "wait", "so far fps 18 is 25% below this site's 24 on 3.5.0 "
         f"(tolerance 10%); mean of {MIN_READINGS_TO_FAIL - 1} readings, too few to fail on (at least 5)"),
        (SLOW, MIN_READINGS_TO_FAIL, False, "fail", "fps 18 is 25% below this site's 24 on 3.5.0 (tolerance "
         f"10%); mean of {MIN_READINGS_TO_FAIL} readings, before the soak ended"),
        # At the end of the soak too: a mean of one reading is noise as much as a verdict (a zero soak judges the
        # first means), so it waits for more.
        (SLOW, 1, True, "wait", "so far fps 18 is 25% below this site's 24 on 3.5.0 (tolerance 10%); mean of 1 "
         "reading, too few to fail on (at least 5)"),
        (SLOW, MIN_READINGS_TO_FAIL, True, "fail", "fps 18 is 25% below this site's 24 on 3.5.0 (tolerance 10%); "
         f"mean of {MIN_READINGS_TO_FAIL} readings on the new version"),
        # A figure not reported yet waits, whatever the soak.
        ({"fps": 24.0}, 4, True, "wait", "waiting for the site to report inference latency"),
    ],
)  # fmt: skip
def test_the_health_gate_covers_the_soak(
    current: dict[str, float], readings: int, soak_over: bool, verdict: str, reason: str
) -> None:
    gate = health_over_soak(CRITERIA, _health(current, readings), soak_over=soak_over)
    assert (gate.verdict, gate.reason) == (verdict, reason)


def test_with_no_baseline_there_is_nothing_to_judge_over_the_soak() -> None:
    gate = health_over_soak(CRITERIA, _health(SLOW, 1, baseline=None), soak_over=False)
    assert (gate.verdict, gate.known) == ("pass", False)


class Site:
    """One site whose new version runs from t=0, ticked with the health means given."""

    def __init__(self, soak_s: float) -> None:
        self.spec = spec(["a"], soak_s=soak_s)
        self.status: RolloutStatus = initial_status(self.spec)

    def tick(self, now: float, current: dict[str, float], readings: int) -> str:
        observed: SiteObservation = replace(good("a"), health=_health(current, readings))
        decision = decide(self.spec, self.status, {A: observed}, now=now)
        # Deciding again on the same inputs changes nothing.
        assert decide(self.spec, decision.status, {A: observed}, now=now).status == decision.status
        self.status = decision.status
        return self.status.site(A).state


def test_a_site_passes_only_at_the_end_of_its_soak() -> None:
    site = Site(soak_s=600)
    assert site.tick(0, BASELINE, 1) == "soaking"
    assert site.status.site(A).reason.startswith("health: so far fps 24")
    assert site.tick(599, BASELINE, 60) == "soaking"
    assert site.tick(600, BASELINE, 61) == "passed"


def test_a_mean_worse_on_a_few_readings_does_not_fail_a_site_that_recovers_within_its_soak() -> None:
    site = Site(soak_s=600)
    assert site.tick(0, SLOW, 1) == "soaking"  # one noisy first reading
    assert site.tick(10, SLOW, MIN_READINGS_TO_FAIL - 1) == "soaking"
    assert site.status.site(A).soaking_since == 0  # the soak goes on
    assert site.tick(600, {"fps": 23.0, "inference_latency_ms": 41.0}, 60) == "passed"


def test_a_mean_worse_over_enough_readings_fails_before_the_soak_ends() -> None:
    site = Site(soak_s=600)
    site.tick(0, SLOW, 1)
    assert site.tick(50, SLOW, MIN_READINGS_TO_FAIL) == "failed"
    assert site.status.site(A).reason.endswith("before the soak ended")


def test_a_mean_worse_at_the_end_of_the_soak_on_few_readings_waits_for_enough_then_fails() -> None:
    site = Site(soak_s=600)
    site.tick(0, BASELINE, 1)
    assert site.tick(600, SLOW, 2) == "soaking"
    assert site.status.site(A).reason.endswith("too few to fail on (at least 5)")
    assert site.tick(610, SLOW, MIN_READINGS_TO_FAIL) == "failed"
    assert site.status.site(A).reason.startswith("health: fps 18 is 25% below")


@pytest.mark.parametrize(
    ("current", "readings", "state"),
    [(BASELINE, 1, "passed"), (SLOW, 1, "soaking"), (SLOW, MIN_READINGS_TO_FAIL, "failed")],
)
def test_zero_soak_judges_the_first_means_and_fails_only_on_enough_readings(
    current: dict[str, float], readings: int, state: str
) -> None:
    assert Site(soak_s=0).tick(0, current, readings) == state


fps = st.floats(10, 30, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from([0.0, 100.0, 600.0]),
    st.lists(st.tuples(st.sampled_from([0.0, 10.0, 60.0, 300.0]), fps, st.integers(0, 3)), min_size=1, max_size=15),
)
def test_a_site_passes_only_after_its_soak_with_good_means_and_fails_only_on_enough_readings(
    soak_s: float, ticks: list[tuple[float, float, int]]
) -> None:
    site = Site(soak_s=soak_s)
    now, readings = 0.0, 1
    allowed = BASELINE["fps"] * 0.9
    for dt, mean, more in ticks:
        now, readings = now + dt, readings + more
        before = site.status.site(A)
        state = site.tick(now, {"fps": mean, "inference_latency_ms": 40.0}, readings)
        if before.state in ("passed", "failed"):
            continue
        if state == "passed":
            # Passed: the soak is over and the mean over it is within the tolerance.
            soaked_since = site.status.site(A).soaking_since
            assert soaked_since is not None
            assert now - soaked_since >= soak_s
            assert mean >= allowed
        if state == "failed":
            # Early or at the end of the soak: only on a mean over enough readings.
            assert mean < allowed
            assert readings >= MIN_READINGS_TO_FAIL
        if mean >= allowed:
            assert state in ("soaking", "passed")


@pytest.mark.slow
def test_the_reconciler_counts_heartbeats_not_ticks_and_fails_a_slow_site_once_the_mean_is_clear(
    tmp_path: Path,
) -> None:
    with small_world(tmp_path) as world:
        world.beat()
        first, _ = world.service.start(world_release("1.0.0"), by="tester")
        world.run_until(first.id, "done")
        world.slow[SITES[0]] = ("2.0.0", 1.5)  # backlog 60 against the site's own 40: 50% worse
        rollout, _ = world.service.start(world_release("2.0.0", soak="10m"), by="tester")

        soaking = world.step_until(
            rollout.id, lambda r: r.status.sites[SITES[0]].state == "soaking", what="to soak the canary"
        )
        # The first readings are worse, but few: the soak goes on.
        health = soaking.gates[SITES[0]].health
        assert (health.verdict, health.reason.startswith("so far upload backlog 60 is 50% above")) == ("wait", True)
        readings = _readings(health.reason)
        assert readings < MIN_READINGS_TO_FAIL
        # Ticks without a new heartbeat add no reading.
        world.reconciler.tick()
        world.reconciler.tick()
        assert _readings(world.rollouts.get(rollout.id).gates[SITES[0]].health.reason) == readings

        # Heartbeats keep coming with the same figures: once the mean rests on enough readings the site fails,
        # long before its 10 minutes of soak (the fake clock has not moved).
        failed = world.step_until(
            rollout.id, lambda r: r.status.sites[SITES[0]].state == "failed", what="to fail the slow canary"
        )
        assert failed.status.sites[SITES[0]].reason == (
            "health: upload backlog 60 is 50% above this site's 40 on 1.0.0 (tolerance 10%); "
            f"mean of {MIN_READINGS_TO_FAIL} readings, before the soak ended"
        )


def _readings(reason: str) -> int:
    match = re.search(r"mean of (\d+) reading", reason)
    assert match is not None, reason
    return int(match.group(1))
