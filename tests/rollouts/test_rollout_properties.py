"""Properties of ``decide`` over any interleaving of site results, outages, holds, blackouts and commands: the
failure threshold always aborts, offline never counts as failed, deciding is idempotent, the in-flight limit holds,
nothing is applied twice or while held, and an abort reverts every touched site exactly once."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from edgefleet.cloud.rollouts.deciding import (
    Apply,
    Commands,
    Decision,
    FailureThreshold,
    Revert,
    RolloutSpec,
    RolloutStatus,
    SiteObservation,
    Wave,
    decide,
    initial_status,
)
from edgefleet.ids import SiteId
from tests.rollouts.observations import PREVIOUS, RELEASE, bad, good, offline, rolling

STOPPED = {"aborting", "aborted", "rolled-back"}
KINDS = ("good", "rolling", "bad", "offline", "held", "blackout")


def observe(site: str, kind: str) -> SiteObservation:
    if kind == "good":
        return good(site)
    if kind == "rolling":
        return rolling(site)
    if kind == "bad":
        return bad(site)
    if kind == "offline":
        return offline(site)
    if kind == "held":
        return replace(rolling(site), held="maintenance")
    return replace(rolling(site), blackout="sorting peak")


@dataclass(frozen=True)
class Tick:
    dt: float
    results: tuple[str, ...]
    paused: bool
    promote: bool
    abort: bool
    rollback: bool


@st.composite
def scenarios(draw: st.DrawFn, kinds: tuple[str, ...] = KINDS, commands: bool = True) -> tuple[RolloutSpec, list[Tick]]:
    count = draw(st.integers(1, 8))
    sites = [SiteId(f"s{i}") for i in range(count)]
    cuts = sorted(set(draw(st.lists(st.integers(1, count), max_size=3))) - {count})
    bounds = [0, *cuts, count]
    waves = tuple(
        Wave(f"w{i}", tuple(sites[a:b]), needs_approval=commands and draw(st.booleans()))
        for i, (a, b) in enumerate(pairwise(bounds))
    )
    spec = RolloutSpec(
        release=RELEASE,
        app="sorting-recognition",
        version="3.6.0",
        waves=waves,
        threshold=FailureThreshold(
            sites=draw(st.integers(0, 3)), percent_of_wave=draw(st.sampled_from([0.0, 34.0, 50.0, 100.0]))
        ),
        soak_s=draw(st.sampled_from([0.0, 100.0])),
        max_in_flight=draw(st.integers(1, 3)),
        site_deadline_s=draw(st.sampled_from([150.0, 3600.0])),
    )
    ticks = draw(
        st.lists(
            st.builds(
                Tick,
                dt=st.sampled_from([0.0, 50.0, 120.0]),
                results=st.tuples(*[st.sampled_from(kinds) for _ in sites]),
                paused=st.booleans() if commands else st.just(False),
                promote=st.booleans() if commands else st.just(True),
                abort=st.integers(0, 9).map(lambda n: n == 0) if commands else st.just(False),
                rollback=st.integers(0, 14).map(lambda n: n == 0) if commands else st.just(False),
            ),
            min_size=1,
            max_size=12,
        )
    )
    return spec, ticks


def _failed_too_many(spec: RolloutSpec, status: RolloutStatus) -> bool:
    failed = {site for site, s in status.sites.items() if s.state == "failed"}
    if len(failed) > spec.threshold.sites:
        return True
    return any(
        wave.sites
        and sum(site in failed for site in wave.sites) * 100 > spec.threshold.percent_of_wave * len(wave.sites)
        for wave in spec.waves
    )


class Run:
    """Ticks a scenario and checks the per-tick properties on the way."""

    def __init__(self, spec: RolloutSpec) -> None:
        self.spec = spec
        self.status = initial_status(spec)
        self.now = 0.0
        self.commands = Commands()
        self.applied: Counter[SiteId] = Counter()
        self.reverted: Counter[SiteId] = Counter()
        self.sites = [site for wave in spec.waves for site in wave.sites]

    def tick(self, tick: Tick) -> Decision:
        self.now += tick.dt
        promoted = self.commands.promoted
        if tick.promote and "awaiting-approval" in self.status.waves:
            # The release manager promotes the wave that waits.
            promoted = promoted | {self.status.waves.index("awaiting-approval")}
        self.commands = Commands(
            paused=tick.paused,
            promoted=promoted,
            # Commands are desired state: once asked, an abort or rollback stays asked.
            aborted=self.commands.aborted or tick.abort,
            rolled_back=self.commands.rolled_back or tick.rollback,
        )
        self.spec = replace(self.spec, commands=self.commands)
        observations = {site: observe(site, kind) for site, kind in zip(self.sites, tick.results, strict=True)}
        before = self.status
        decision = decide(self.spec, before, observations, now=self.now)
        status = decision.status

        # Idempotent: the same inputs again, on the new status, change nothing.
        again = decide(self.spec, status, observations, now=self.now)
        assert again.actions == ()
        assert again.status == status

        # The threshold is never crossed without the rollout stopping in the same decision.
        if _failed_too_many(self.spec, status):
            assert status.state in STOPPED, status

        for site, kind in zip(self.sites, tick.results, strict=True):
            if kind == "offline":
                # An offline site is never judged failed: one in flight is deferred (unless the rollout stops).
                if before.site(site).state != "failed":
                    assert status.site(site).state != "failed"
                if before.site(site).state in ("in-progress", "soaking") and status.state not in STOPPED:
                    assert status.site(site).state == "deferred"
                # Nothing is done to a site that cannot be reached: it is changed when it is back.
                assert not any(isinstance(a, Apply | Revert) and a.site == site for a in decision.actions), (
                    decision.actions
                )
            # A held site is never applied while held.
            if kind == "held":
                assert Apply(site, RELEASE) not in decision.actions

        in_flight = sum(1 for s in status.sites.values() if s.state in ("in-progress", "soaking"))
        assert in_flight <= self.spec.max_in_flight

        for action in decision.actions:
            if isinstance(action, Apply):
                self.applied[action.site] += 1
                assert action.release == RELEASE
            elif isinstance(action, Revert):
                self.reverted[action.site] += 1
                assert action.previous_release == PREVIOUS
        # Nothing is applied twice, nothing reverted twice, nothing reverted that was not applied.
        assert all(n == 1 for n in self.applied.values())
        assert all(n == 1 for n in self.reverted.values())
        assert set(self.reverted) <= set(self.applied)
        # No site starts once the rollout stops.
        if before.state in STOPPED:
            assert not any(isinstance(a, Apply) for a in decision.actions)
        self.status = status
        return decision


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_any_interleaving_keeps_the_rules(scenario: tuple[RolloutSpec, list[Tick]]) -> None:
    spec, ticks = scenario
    run = Run(spec)
    for tick in ticks:
        run.tick(tick)
    # Then abort (roll back, if it is done), with every site reachable: every touched site is reverted exactly
    # once, the others never.
    everyone_back = Tick(
        dt=10.0,
        results=tuple("rolling" for _ in run.sites),
        paused=False,
        promote=False,
        abort=True,
        rollback=run.status.state == "done",
    )
    run.tick(everyone_back)
    assert run.status.state in {"aborted", "rolled-back"}
    assert set(run.reverted) == set(run.applied)


@settings(max_examples=100, deadline=None)
@given(scenarios(kinds=("good", "rolling", "offline", "held"), commands=False))
def test_offline_and_held_sites_never_stop_a_good_release(scenario: tuple[RolloutSpec, list[Tick]]) -> None:
    """With no bad site and no command, whatever the outages and holds, nothing fails and nothing aborts; once
    every site is back and good, the rollout is done with every site passed."""
    spec, ticks = scenario
    # A deadline would fail sites that keep "rolling"; that is a failure, not an outage.
    run = Run(replace(spec, site_deadline_s=1e9))
    for tick in ticks:
        run.tick(tick)
        assert run.status.state not in STOPPED
        assert not any(s.state == "failed" for s in run.status.sites.values())
    good_now = Tick(
        dt=0.0, results=tuple("good" for _ in run.sites), paused=False, promote=True, abort=False, rollback=False
    )
    later = replace(good_now, dt=spec.soak_s + 1)
    for tick in [good_now] * (len(run.sites) + len(spec.waves) + 1) + [later] * (len(run.sites) + len(spec.waves) + 1):
        run.tick(tick)
    assert run.status.state == "done"
    assert {s.state for s in run.status.sites.values()} == {"passed"}
