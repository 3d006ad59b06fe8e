"""The rollout's rules, one scenario each: ticks of ``decide`` on hand-written observations."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import pytest

from edgefleet.cloud.rollouts.deciding import (
    Apply,
    Commands,
    Decision,
    FailureThreshold,
    Notify,
    Revert,
    RolloutSpec,
    RolloutStatus,
    SiteObservation,
    Wave,
    decide,
    initial_status,
)
from edgefleet.ids import SiteId
from tests.rollouts.observations import PREVIOUS, RELEASE, bad, boxes, good, offline, rolling, spec


class Rollout:
    """Ticks one rollout, feeding each decision's status to the next, as the reconciler does."""

    def __init__(self, rollout_spec: RolloutSpec) -> None:
        self.spec = rollout_spec
        self.status: RolloutStatus = initial_status(rollout_spec)

    def tick(self, now: float, observations: Mapping[str, SiteObservation], **commands: object) -> Decision:
        if commands:
            self.spec = _with(self.spec, Commands(**commands))  # type: ignore[arg-type]
        decision = decide(self.spec, self.status, {SiteId(k): v for k, v in observations.items()}, now=now)
        self.status = decision.status
        again = decide(self.spec, decision.status, {SiteId(k): v for k, v in observations.items()}, now=now)
        assert again.actions == (), "deciding twice issued actions again"
        assert again.status == decision.status, "deciding twice changed the status"
        return decision

    def overall(self) -> str:
        return self.status.state

    def state(self, site: str) -> str:
        return self.status.site(SiteId(site)).state


def _with(rollout_spec: RolloutSpec, commands: Commands) -> RolloutSpec:
    return replace(rollout_spec, commands=commands)


def applies(decision: Decision) -> list[str]:
    return [a.site for a in decision.actions if isinstance(a, Apply)]


def reverts(decision: Decision) -> dict[str, str | None]:
    return {a.site: a.previous_release for a in decision.actions if isinstance(a, Revert)}


def notes(decision: Decision) -> list[str]:
    return [a.kind for a in decision.actions if isinstance(a, Notify)]


def test_a_good_release_goes_wave_by_wave_to_done() -> None:
    rollout = Rollout(spec(["a"], ["b", "c"]))
    first = rollout.tick(0, {"a": rolling("a"), "b": rolling("b"), "c": rolling("c")})
    assert applies(first) == ["a"]
    assert notes(first) == ["started"]
    assert rollout.status.waves == ("running", "waiting")
    assert rollout.state("a") == "in-progress"
    # The canary passes (zero soak): the next wave starts in the same tick.
    second = rollout.tick(10, {"a": good("a"), "b": rolling("b"), "c": rolling("c")})
    assert applies(second) == ["b", "c"]
    assert notes(second) == ["wave-passed"]
    assert rollout.status.waves == ("passed", "running")
    third = rollout.tick(20, {"a": good("a"), "b": good("b"), "c": good("c")})
    assert notes(third) == ["wave-passed", "done"]
    assert rollout.overall() == "done"
    assert all(a.release == RELEASE for a in first.actions + second.actions if isinstance(a, Apply))


def test_no_more_than_max_in_flight_sites_change_at_once() -> None:
    rollout = Rollout(spec(["a", "b", "c"], max_in_flight=2))
    first = rollout.tick(0, {s: rolling(s) for s in "abc"})
    assert applies(first) == ["a", "b"]
    assert rollout.status.site(SiteId("c")).reason == "waiting: 2 sites in flight (at most 2)"
    second = rollout.tick(10, {"a": good("a"), "b": rolling("b"), "c": rolling("c")})
    assert applies(second) == ["c"]


def test_a_site_passes_after_its_gates_held_for_the_whole_soak() -> None:
    rollout = Rollout(spec(["a"], ["b"], soak_s=600))
    rollout.tick(0, {"a": rolling("a"), "b": rolling("b")})
    rollout.tick(100, {"a": good("a", since=50), "b": rolling("b")})
    assert rollout.state("a") == "soaking"
    assert rollout.status.site(SiteId("a")).soaking_since == 100
    # A box restarted at 300: the soak counts from there.
    rollout.tick(350, {"a": good("a", since=300), "b": rolling("b")})
    assert rollout.status.site(SiteId("a")).soaking_since == 300
    assert applies(rollout.tick(850, {"a": good("a", since=300), "b": rolling("b")})) == []
    assert rollout.state("a") == "soaking"
    assert applies(rollout.tick(900, {"a": good("a", since=300), "b": rolling("b")})) == ["b"]
    assert rollout.state("a") == "passed"


def test_a_gate_that_stops_passing_restarts_the_soak() -> None:
    rollout = Rollout(spec(["a"], soak_s=600))
    rollout.tick(0, {"a": rolling("a")})
    rollout.tick(100, {"a": good("a")})
    rollout.tick(200, {"a": rolling("a")})
    assert rollout.state("a") == "in-progress"
    rollout.tick(300, {"a": good("a")})
    assert rollout.status.site(SiteId("a")).soaking_since == 300


def test_a_site_offline_when_its_turn_comes_is_deferred_and_caught_up_later() -> None:
    rollout = Rollout(spec(["a", "b"], ["c"]))
    first = rollout.tick(0, {"a": rolling("a"), "b": offline("b"), "c": rolling("c")})
    assert applies(first) == ["a"]
    assert rollout.state("b") == "deferred"
    deferred = [a for a in first.actions if isinstance(a, Notify) and a.kind == "sites-deferred"]
    assert [d.sites for d in deferred] == [(SiteId("b"),)]
    # The canary passes without b; the next wave starts.
    second = rollout.tick(10, {"a": good("a"), "b": offline("b"), "c": rolling("c")})
    assert applies(second) == ["c"]
    third = rollout.tick(20, {"a": good("a"), "b": offline("b"), "c": good("c")})
    assert notes(third) == ["wave-passed"]
    assert rollout.overall() == "running"
    assert rollout.status.reason == "every wave passed; waiting for 1 deferred (b)"
    # b is back: applied and gated, and only then is the rollout done.
    back = rollout.tick(30, {"a": good("a"), "b": rolling("b"), "c": good("c")})
    assert applies(back) == ["b"]
    done = rollout.tick(40, {"a": good("a"), "b": good("b"), "c": good("c")})
    assert notes(done) == ["done"]


def test_a_site_cut_during_its_wave_is_deferred_not_failed_and_not_applied_again() -> None:
    rollout = Rollout(spec(["a", "b"], threshold=FailureThreshold(sites=0, percent_of_wave=0)))
    rollout.tick(0, {"a": rolling("a"), "b": rolling("b")})
    rollout.tick(10, {"a": offline("a"), "b": good("b")})
    assert rollout.state("a") == "deferred"
    assert rollout.status.site(SiteId("a")).reason == "offline during its rollout"  # not "when its turn came"
    assert rollout.overall() == "running"
    rollout.tick(15, {"a": offline("a"), "b": good("b")})
    assert rollout.status.site(SiteId("a")).reason == "offline during its rollout"
    back = rollout.tick(20, {"a": rolling("a"), "b": good("b")})
    assert applies(back) == []
    assert rollout.state("a") == "in-progress"
    assert rollout.status.site(SiteId("a")).started_at == 20
    rollout.tick(30, {"a": good("a"), "b": good("b")})
    assert rollout.overall() == "done"


def test_a_held_site_is_skipped_until_released() -> None:
    held = SiteObservation(held="peak day", running_release=PREVIOUS)
    rollout = Rollout(spec(["a", "b"], ["c"]))
    first = rollout.tick(0, {"a": rolling("a"), "b": held, "c": rolling("c")})
    assert applies(first) == ["a"]
    assert rollout.status.site(SiteId("b")).reason == "held: peak day"
    assert applies(rollout.tick(10, {"a": good("a"), "b": held, "c": rolling("c")})) == ["c"]
    rollout.tick(20, {"a": good("a"), "b": held, "c": good("c")})
    assert (rollout.overall(), rollout.state("b")) == ("running", "held")
    assert applies(rollout.tick(30, {"a": good("a"), "b": rolling("b"), "c": good("c")})) == ["b"]


def test_a_hold_placed_on_a_site_in_flight_does_not_stop_its_gates() -> None:
    rollout = Rollout(spec(["a"]))
    rollout.tick(0, {"a": rolling("a")})
    rollout.tick(10, {"a": replace(good("a"), held="peak day")})
    assert rollout.state("a") == "passed"


def test_a_blacked_out_site_waits_for_its_window_to_end_and_keeps_its_wave_waiting() -> None:
    night = SiteObservation(blackout="sorting peak", running_release=PREVIOUS)
    rollout = Rollout(spec(["a", "b"], ["c"]))
    first = rollout.tick(0, {"a": rolling("a"), "b": night, "c": rolling("c")})
    assert applies(first) == ["a"]
    assert rollout.status.site(SiteId("b")).reason == "in a blackout window: sorting peak"
    second = rollout.tick(10, {"a": good("a"), "b": night, "c": rolling("c")})
    assert applies(second) == []
    assert rollout.status.waves == ("running", "waiting")
    assert applies(rollout.tick(20, {"a": good("a"), "b": rolling("b"), "c": rolling("c")})) == ["b"]


def test_an_override_starts_sites_inside_their_blackout_window() -> None:
    night = SiteObservation(blackout="sorting peak", running_release=PREVIOUS)
    rollout = Rollout(spec(["a"], commands=Commands(blackout_override="hotfix for a crash")))
    assert applies(rollout.tick(0, {"a": night})) == ["a"]
    assert rollout.status.site(SiteId("a")).blackout_override == (
        "inside its blackout window (sorting peak): hotfix for a crash"
    )


def test_a_wave_that_needs_approval_waits_for_its_promotion() -> None:
    rollout = Rollout(spec(["a"], ["b"], approval=(1,)))
    rollout.tick(0, {"a": rolling("a"), "b": rolling("b")})
    waiting = rollout.tick(10, {"a": good("a"), "b": rolling("b")})
    assert applies(waiting) == []
    assert notes(waiting) == ["wave-passed", "awaiting-approval"]
    assert (rollout.overall(), rollout.status.waves) == ("awaiting-approval", ("passed", "awaiting-approval"))
    assert notes(rollout.tick(20, {"a": good("a"), "b": rolling("b")})) == []
    promoted = rollout.tick(30, {"a": good("a"), "b": rolling("b")}, promoted=frozenset({1}))
    assert applies(promoted) == ["b"]
    assert rollout.overall() == "running"


def test_pause_starts_nothing_but_keeps_judging_the_sites_in_flight() -> None:
    rollout = Rollout(spec(["a", "b"], max_in_flight=1))
    rollout.tick(0, {"a": rolling("a"), "b": rolling("b")})
    paused = rollout.tick(10, {"a": good("a"), "b": rolling("b")}, paused=True)
    assert applies(paused) == []
    assert (rollout.overall(), rollout.state("a"), rollout.state("b")) == ("paused", "passed", "pending")
    assert rollout.status.site(SiteId("b")).reason == "waiting: the rollout is paused"
    assert applies(rollout.tick(20, {"a": good("a"), "b": rolling("b")}, paused=False)) == ["b"]


def test_pause_does_not_hold_back_an_abort_at_the_threshold() -> None:
    rollout = Rollout(spec(["a", "b"], threshold=FailureThreshold(sites=0, percent_of_wave=100)))
    rollout.tick(0, {"a": rolling("a"), "b": rolling("b")})
    stopped = rollout.tick(10, {"a": bad("a"), "b": rolling("b")}, paused=True)
    assert rollout.overall() == "aborted"
    assert reverts(stopped) == {"a": PREVIOUS, "b": PREVIOUS}


@pytest.mark.parametrize(
    ("threshold", "failing", "aborts"),
    [
        (FailureThreshold(sites=1, percent_of_wave=100), ["a"], False),
        (FailureThreshold(sites=1, percent_of_wave=100), ["a", "b"], True),
        (FailureThreshold(sites=10, percent_of_wave=20), ["a"], True),  # 1 of 4 is 25%
        (FailureThreshold(sites=10, percent_of_wave=25), ["a"], False),  # 25% is not more than 25%
    ],
)
def test_the_failure_threshold_aborts_in_the_tick_that_crosses_it(
    threshold: FailureThreshold, failing: list[str], aborts: bool
) -> None:
    rollout = Rollout(spec(["a", "b", "c", "d"], ["e"], threshold=threshold))
    rollout.tick(0, {s: rolling(s) for s in "abcde"})
    decision = rollout.tick(10, {s: bad(s) if s in failing else rolling(s) for s in "abcde"})
    if aborts:
        assert rollout.overall() == "aborted"
        assert reverts(decision) == dict.fromkeys("abcd", PREVIOUS)
        assert notes(decision) == ["aborted", "rolled-back"]
        assert "failed" in rollout.status.reason
    else:
        assert rollout.overall() == "running"
        assert reverts(decision) == {}


def test_a_failed_site_under_the_threshold_does_not_stop_its_wave() -> None:
    rollout = Rollout(spec(["a", "b"], ["c"], threshold=FailureThreshold(sites=1, percent_of_wave=50)))
    rollout.tick(0, {s: rolling(s) for s in "abc"})
    decision = rollout.tick(10, {"a": bad("a"), "b": good("b"), "c": rolling("c")})
    assert rollout.state("a") == "failed"
    assert rollout.status.site(SiteId("a")).reason == "kubernetes: failed message"
    assert applies(decision) == ["c"]
    rollout.tick(20, {"a": bad("a"), "b": good("b"), "c": good("c")})
    assert (rollout.overall(), rollout.status.reason) == ("done", "done; 1 sites failed: a")


def test_gates_that_wait_past_the_deadline_fail_the_site() -> None:
    rollout = Rollout(spec(["a"], deadline_s=900))
    rollout.tick(0, {"a": rolling("a")})
    rollout.tick(900, {"a": rolling("a")})
    assert rollout.state("a") == "in-progress"
    rollout.tick(901, {"a": rolling("a")})
    assert rollout.state("a") == "failed"
    assert rollout.status.site(SiteId("a")).reason.startswith("gates still waiting 15m after the site started: ")


def test_abort_reverts_every_touched_site_once_and_the_offline_ones_when_they_are_back() -> None:
    rollout = Rollout(spec(["a", "b", "c"], ["d"], max_in_flight=2))
    rollout.tick(0, {s: rolling(s) for s in "abcd"})
    rollout.tick(10, {"a": good("a"), "b": rolling("b"), "c": rolling("c"), "d": rolling("d")})
    assert [rollout.state(s) for s in "abc"] == ["passed", "in-progress", "in-progress"]
    aborted = rollout.tick(20, {"a": good("a"), "b": offline("b"), "c": rolling("c"), "d": rolling("d")}, aborted=True)
    assert reverts(aborted) == {"a": PREVIOUS, "c": PREVIOUS}
    assert rollout.overall() == "aborting"
    assert rollout.status.reason == "aborted by the release manager; 1 site offline, reverted when back: b"
    back = rollout.tick(30, {s: rolling(s) for s in "abcd"}, aborted=True)
    assert reverts(back) == {"b": PREVIOUS}
    assert notes(back) == ["rolled-back"]
    assert rollout.overall() == "aborted"


def test_rollback_of_a_done_rollout_reverts_every_site_to_its_own_previous_release() -> None:
    rollout = Rollout(spec(["a", "b"]))
    rollout.tick(0, {"a": rolling("a"), "b": SiteObservation(running_release=None)})
    rollout.tick(10, {"a": good("a"), "b": good("b")})
    assert rollout.overall() == "done"
    assert reverts(rollout.tick(20, {"a": good("a"), "b": good("b")}, aborted=True)) == {}  # nothing to abort
    back = rollout.tick(30, {"a": good("a"), "b": good("b")}, rolled_back=True)
    assert reverts(back) == {"a": PREVIOUS, "b": None}
    assert rollout.overall() == "rolled-back"


def test_a_site_in_two_waves_is_refused() -> None:
    with pytest.raises(ValueError, match="site 'a' is in wave 'w0' and in wave 'w1'; put each site in one wave"):
        RolloutSpec(
            release=RELEASE,
            app="sorting-recognition",
            version="3.6.0",
            waves=(Wave("w0", (SiteId("a"),)), Wave("w1", (SiteId("a"),))),
        )


def test_sites_deferred_in_one_tick_make_one_notification() -> None:
    rollout = Rollout(spec(["a", "b", "c", "d"]))
    first = rollout.tick(0, {"a": offline("a"), "b": offline("b"), "c": rolling("c"), "d": offline("d")})
    deferred = [a for a in first.actions if isinstance(a, Notify) and a.kind == "sites-deferred"]
    assert [(d.sites, d.message) for d in deferred] == [
        ((SiteId("a"), SiteId("b"), SiteId("d")), "3 sites offline, deferred: a, b, d")
    ]
    assert notes(rollout.tick(10, {"a": offline("a"), "b": offline("b"), "c": rolling("c"), "d": offline("d")})) == []


def test_a_site_whose_boxes_are_all_offline_is_deferred_even_when_reachable() -> None:
    dark = replace(rolling("b"), boxes=boxes("b", online=False))
    rollout = Rollout(spec(["a", "b"]))
    first = rollout.tick(0, {"a": rolling("a"), "b": dark})
    assert applies(first) == ["a"]
    assert rollout.state("b") == "deferred"
    # In flight, the same: deferred, not failed, even when the threshold allows no failure.
    strict = Rollout(spec(["c"], threshold=FailureThreshold(sites=0, percent_of_wave=0)))
    strict.tick(0, {"c": rolling("c")})
    strict.tick(10, {"c": replace(good("c"), boxes=boxes("c", online=False))})
    assert (strict.state("c"), strict.overall()) == ("deferred", "running")
