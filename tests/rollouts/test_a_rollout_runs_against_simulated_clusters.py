"""A rollout end to end: the store, the reconciler's ticks and the service's commands against a simulated
cluster whose workload controllers run the pods, and a fleet state whose agents report what their site runs.
Durable and level-triggered: a tick run twice applies nothing new, a new reconciler over the same database
resumes, and a crash between an apply and the status write re-applies without losing the previous release."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgefleet.cloud.rollouts.reconciling import Reconciler
from edgefleet.cloud.rollouts.service import RolloutRefused, RolloutService
from edgefleet.cloud.rollouts.store import ActiveRolloutExists
from edgefleet.cloud.store import StoreError
from tests.rollouts.world import SITES, World, release, small_world
from tests.support.peers import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with small_world(tmp_path) as built:
        built.beat()
        yield built


def _done(world: World, version: str, **options: object) -> str:
    rollout, created = world.service.start(release(version, **options), by="tester")  # type: ignore[arg-type]
    assert created
    world.run_until(rollout.id, "done")
    return rollout.id


def test_a_good_release_reaches_every_site_with_its_image_and_rollout_label(world: World) -> None:
    rollout, _ = world.service.start(release("1.0.0"), by="tester")
    assert [w.sites for w in rollout.spec.waves] == [("site-a",), ("site-b", "site-c", "site-d")]

    done = world.run_until(rollout.id, "done")

    assert all(done.status.sites[s].state == "passed" for s in SITES)
    for site in SITES:
        assert world.site_release(site) == (
            "scan-upload-1.0.0",
            rollout.id,
            "registry.local:5000/edgefleet/scan-upload:1.0.0",
        )
    assert not done.active
    # Every apply is in the audit, with the release before (none: the app was not there) and after.
    applied = [e for e in world.rollouts.audit(rollout.id) if e.what.startswith("apply")]
    assert sorted(e.what for e in applied) == sorted(f"apply scan-upload-1.0.0 at {s}" for s in SITES)
    assert {(e.before, e.after) for e in applied} == {(None, "scan-upload-1.0.0")}


def test_ticking_again_applies_nothing_and_a_new_reconciler_resumes_without_applying_twice(world: World) -> None:
    rollout, _ = world.service.start(release("1.0.0", waves='["1", "100%"]'), by="tester")
    world.run_until(rollout.id, "done")
    applies = len(world.gateway.applied)

    world.step(rollout.id)
    world.restart()
    world.step(rollout.id)
    assert len(world.gateway.applied) == applies


def test_a_new_reconciler_goes_on_with_a_soak_rather_than_starting_it_again(world: World) -> None:
    """A takeover or a restart does not restart the soak: the site soaking since S passes at S + soak, as it
    would have under the reconciler that started it (the box times are memory; the soak's start is stored)."""
    rollout, _ = world.service.start(release("1.0.0", soak="10m"), by="tester")
    soaking = world.step_until(
        rollout.id, lambda r: r.status.site(SITES[0]).state == "soaking", what="the canary to soak"
    )
    began = soaking.status.site(SITES[0]).soaking_since
    assert began is not None
    world.clock.advance(400)
    world.step(rollout.id)
    world.restart()  # a new reconciler over the same database: what a standby taking over builds
    world.clock.advance(300)  # 700 s since the soak began: past its 600 s, not 600 s past the restart
    passed = world.step(rollout.id)
    assert passed.status.site(SITES[0]).state == "passed", passed.status.site(SITES[0])


def test_a_crash_between_apply_and_status_write_reapplies_and_keeps_the_previous_release(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    _done(world, "1.0.0")
    rollout, _ = world.service.start(release("2.0.0"), by="tester")

    def lost(*args: object, **kwargs: object) -> None:
        raise StoreError("database gone (the controller was killed)")

    with monkeypatch.context() as patched:
        patched.setattr(world.rollouts, "save_status", lost)
        with pytest.raises(StoreError):
            world.reconciler.tick()
    assert world.site_release(SITES[0])[1] == rollout.id  # applied, but the status says pending
    assert world.rollouts.get(rollout.id).status.sites[SITES[0]].state == "pending"

    world.restart()
    done = world.run_until(rollout.id, "done")
    assert done.status.sites[SITES[0]].previous_release == "scan-upload-1.0.0"
    assert world.rollouts.previous(rollout.id)[SITES[0]].release == "scan-upload-1.0.0"


def test_a_site_past_the_threshold_aborts_and_every_touched_site_goes_back_to_its_previous_release(
    world: World,
) -> None:
    _done(world, "1.0.0")
    world.stuck.add(SITES[1])  # its agents never report 2.0.0
    rollout, _ = world.service.start(release("2.0.0", failed_sites=0), by="tester")
    # Let every other site pass, then go past the site's deadline: it fails, and the rollout aborts.
    world.step_until(
        rollout.id,
        lambda current: all(current.status.sites[s].state == "passed" for s in SITES if s != SITES[1]),
        what="to pass every site but the stuck one",
    )
    world.clock.advance(3601)

    ended = world.run_until(rollout.id, "aborted")

    # The failed site is named in why the rollout stopped, and keeps why it failed once reverted.
    assert ended.status.sites[SITES[1]].reason.startswith("reverted; it had failed: gates still waiting 60m after")
    assert ended.status.stopped_because == f"1 sites failed (the rollout stops at more than 0): {SITES[1]}"
    for site in SITES:
        assert ended.status.sites[site].state == "rolled-back"
        assert world.site_release(site)[0] == "scan-upload-1.0.0"
        assert world.site_release(site)[2] == "registry.local:5000/edgefleet/scan-upload:1.0.0"
    reverts = [e for e in world.rollouts.audit(rollout.id) if e.what.startswith("revert")]
    assert sorted(e.what for e in reverts) == sorted(f"revert {s} to scan-upload-1.0.0" for s in SITES)


def test_a_release_that_is_only_slower_at_a_site_fails_its_own_baseline_and_is_rolled_back(world: World) -> None:
    _done(world, "1.0.0")
    world.slow[SITES[1]] = ("2.0.0", 1.5)  # half as much backlog again: past the 10% tolerance
    rollout, _ = world.service.start(release("2.0.0", failed_sites=0), by="tester")

    ended = world.run_until(rollout.id, "aborted")

    gates = ended.gates[SITES[1]]
    assert gates.health.verdict == "fail"
    # Zero soak: judged on the first means of the new version.
    assert gates.health.reason.startswith(
        "upload backlog 60 is 50% above this site's 40 on 1.0.0 (tolerance 10%); mean of"
    )
    assert world.rollouts.previous(rollout.id)[SITES[1]].baseline == {"error_rate_percent": 0.4, "upload_backlog": 40.0}
    for site in SITES:
        assert world.site_release(site)[0] == "scan-upload-1.0.0"


def _abort_with_a_stuck_site(world: World) -> str:
    world.stuck.add(SITES[1])  # its agents never report 2.0.0
    rollout, _ = world.service.start(release("2.0.0", failed_sites=0), by="tester")
    world.step_until(
        rollout.id,
        lambda current: all(current.status.sites[s].state == "passed" for s in SITES if s != SITES[1]),
        what="to pass every site but the stuck one",
    )
    world.clock.advance(3601)
    world.run_until(rollout.id, "aborted")
    return rollout.id


def test_a_workload_set_up_before_rollouts_goes_back_to_its_release_file(world: World, tmp_path: Path) -> None:
    releases = tmp_path / "releases"
    releases.mkdir()
    (releases / "scan-upload-1.0.0.yaml").write_text(release("1.0.0"))
    for site in SITES:
        world.seed_unlabelled(site, "1.0.0")
    world.releases_dir = releases
    world.restart()

    rollout_id = _abort_with_a_stuck_site(world)

    assert world.rollouts.previous(rollout_id)[SITES[0]].release == "scan-upload-1.0.0"
    for site in SITES:
        assert world.site_release(site) == (
            "scan-upload-1.0.0",
            None,
            "registry.local:5000/edgefleet/scan-upload:1.0.0",
        )


def test_a_previous_release_with_no_manifest_anywhere_is_left_running_never_deleted(world: World) -> None:
    for site in SITES:
        world.seed_unlabelled(site, "1.0.0")

    rollout_id = _abort_with_a_stuck_site(world)

    reverts = [e.what for e in world.rollouts.audit(rollout_id) if e.what.startswith("revert")]
    assert reverts == [
        f"revert {s}: not done, no manifest of scan-upload-1.0.0 on record; roll it out by hand" for s in SITES
    ]
    assert all(world.running(s) is not None for s in SITES)


def test_a_revert_where_the_app_was_not_there_deletes_the_rollouts_workloads(world: World) -> None:
    rollout, _ = world.service.start(release("1.0.0"), by="tester")
    world.run_until(rollout.id, "done")
    world.service.command(rollout.id, "rollback", by="tester")

    ended = world.run_until(rollout.id, "rolled-back")

    assert all(ended.status.sites[s].state == "rolled-back" for s in SITES)
    assert all(world.running(s) is None for s in SITES)


def test_an_offline_site_is_deferred_then_caught_up(world: World) -> None:
    world.silent.add(SITES[2])
    world.clock.advance(120)  # its boxes' last heartbeats are now too old: offline
    rollout, _ = world.service.start(release("1.0.0"), by="tester")

    waiting = world.run_until(rollout.id, "running")
    waiting = world.step_until(
        rollout.id, lambda current: current.status.waves == ("passed", "passed"), what="to pass both waves"
    )
    assert waiting.status.sites[SITES[2]].state == "deferred"
    assert waiting.status.state == "running"  # not done while a site waits to catch up
    assert world.running(SITES[2]) is None

    world.silent.clear()
    done = world.run_until(rollout.id, "done")
    assert done.status.sites[SITES[2]].state == "passed"
    assert world.site_release(SITES[2])[1] == rollout.id


def test_pause_holds_every_start_and_resume_goes_on(world: World) -> None:
    rollout, _ = world.service.start(release("1.0.0"), by="tester")
    world.service.command(rollout.id, "pause", by="tester")

    paused = world.step(rollout.id)
    assert paused.status.state == "paused"
    assert world.gateway.applied == []

    world.service.command(rollout.id, "resume", by="tester")
    world.run_until(rollout.id, "done")
    whats = [e.what for e in world.rollouts.audit(rollout.id)]
    assert whats[:3] == ["start rollout of scan-upload-1.0.0", "pause rollout", "resume rollout"]


def test_a_held_site_is_skipped_until_released(world: World) -> None:
    world.service.hold(SITES[3], reason="peak day", by="site staff")
    rollout, _ = world.service.start(release("1.0.0"), by="tester")

    current = world.step_until(
        rollout.id, lambda rollout: rollout.status.waves == ("passed", "passed"), what="to pass both waves"
    )
    assert current.status.sites[SITES[3]].state == "held"
    assert current.status.sites[SITES[3]].reason == "held: peak day"
    assert world.running(SITES[3]) is None

    world.service.release_hold(SITES[3], by="site staff")
    world.run_until(rollout.id, "done")
    assert world.site_release(SITES[3])[1] == rollout.id


def test_an_idempotency_key_starts_one_rollout_and_an_app_has_one_active_rollout(world: World) -> None:
    first, created = world.service.start(release("1.0.0"), by="tester", idempotency_key="k-1")
    again, created_again = world.service.start(release("1.0.0"), by="tester", idempotency_key="k-1")
    assert (created, created_again) == (True, False)
    assert again.id == first.id

    with pytest.raises(ActiveRolloutExists, match=first.id):
        world.service.start(release("1.0.1"), by="tester", idempotency_key="k-2")


def test_a_release_older_than_what_runs_is_refused_unless_it_is_a_rollback(world: World) -> None:
    _done(world, "2.0.0")
    with pytest.raises(RolloutRefused, match=r"older than 2\.0\.0.*rollback: true"):
        world.service.start(release("1.0.0"), by="tester")

    rollout, created = world.service.start(release("1.0.0", rollback=True), by="tester")
    assert created
    world.run_until(rollout.id, "done")


def test_the_scheduled_tick_runs_a_rollout_with_no_one_ticking_by_hand(world: World) -> None:
    world.restart(interval_s=0.1)
    world.reconciler.start()
    try:
        rollout, _ = world.service.start(release("1.0.0"), by="tester")

        def done() -> bool:
            world.beat()  # the agents keep reporting; the schedule does the rest
            return world.rollouts.get(rollout.id).status.state == "done"

        wait_for(done, timeout=60, what="the scheduled ticks to finish the rollout")
    finally:
        world.reconciler.stop()
    assert world.reconciler.ticks > 1
    assert all(world.site_release(s)[1] == rollout.id for s in SITES)


def test_a_controller_without_clusters_refuses_to_start_a_rollout(world: World) -> None:
    nowhere = Reconciler(world.rollouts, world.state, None, clock=world.clock)
    service = RolloutService(world.rollouts, world.state, nowhere, clock=world.clock)
    with pytest.raises(RolloutRefused, match="no Kubernetes cluster"):
        service.start(release("1.0.0"), by="tester")
    assert world.rollouts.page() == []


def test_ticks_failing_for_the_database_are_logged_once_per_streak(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edgefleet.cloud.rollouts.reconciling")
    real_tick = world.reconciler.tick

    def refused() -> None:
        raise StoreError("database postgresql://x/y: failed to read the rollouts: server closed the connection")

    monkeypatch.setattr(world.reconciler, "tick", refused)
    for _ in range(5):  # a tick every few seconds through an outage
        world.reconciler._scheduled_tick()
    monkeypatch.setattr(world.reconciler, "tick", real_tick)
    world.reconciler._scheduled_tick()
    world.reconciler._scheduled_tick()
    assert [r.getMessage() for r in caplog.records if "tick" in r.getMessage().lower()] == [
        "Failed to tick rollouts; trying again at every tick",
        "Ticked rollouts again after failed ticks",
    ]
