"""One cluster that cannot be reached, or that refuses every change, does not stall the sites of the others:
its sites are deferred (offline is not failed) while the other cluster's sites pass, the status never records a
site as applied when its apply failed, and once the cluster answers again its sites catch up. Two simulated
clusters, the second one's API server failing requests as the simulator's ``api-errors`` fault does."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from simulator.cluster.troubles import ApiError, ApiTrouble
from tests.rollouts.world import CLUSTER_2, SITES, Trouble, World, release, small_world

pytestmark = pytest.mark.slow

ON_FIRST, ON_SECOND = SITES[:2], SITES[2:]


@pytest.fixture
def trouble() -> Trouble:
    return Trouble()


@pytest.fixture
def world(tmp_path: Path, trouble: Trouble) -> Iterator[World]:
    with small_world(tmp_path, second_cluster=trouble) as built:
        assert {built.inventory.sites[s].cluster for s in ON_SECOND} == {CLUSTER_2}
        built.beat()
        yield built


def _touched(world: World, site: str) -> list[tuple[str, str]]:
    return [(kind, name) for kind, name in world.gateway.applied if name.endswith(site)]


def test_a_cluster_that_cannot_be_reached_defers_its_sites_and_the_others_go_on(world: World, trouble: Trouble) -> None:
    trouble.now = ApiTrouble(rate=1.0, errors=("503",))  # every request to the second cluster fails
    rollout, _ = world.service.start(release("1.0.0"), by="tester")

    current = world.step_until(rollout.id, lambda r: r.status.waves == ("passed", "passed"), what="to pass both waves")
    for site in ON_FIRST:
        assert current.status.sites[site].state == "passed"
    for site in ON_SECOND:
        status = current.status.sites[site]
        assert status.state == "deferred"
        assert status.reason.startswith(f"offline when its turn came: cluster {CLUSTER_2} cannot be reached")
        assert not status.applied
        assert _touched(world, site) == []
    assert current.status.state == "running"  # not done while two sites wait to catch up

    trouble.now = None
    done = world.run_until(rollout.id, "done")
    assert all(done.status.sites[s].state == "passed" for s in SITES)
    assert all(world.site_release(s)[1] == rollout.id for s in ON_SECOND)


def test_a_cluster_that_refuses_every_apply_leaves_its_sites_unapplied_and_retries_them(
    world: World, trouble: Trouble
) -> None:
    # Reads are served, every write fails: the sites are seen, but their applies fail.
    trouble.now = ApiTrouble(rate=1.0, errors=("409",))
    rollout, _ = world.service.start(release("1.0.0"), by="tester")

    current = world.step_until(rollout.id, lambda r: r.status.waves == ("passed", "passed"), what="to pass both waves")
    assert all(current.status.sites[s].state == "passed" for s in ON_FIRST)
    for site in ON_SECOND:
        status = current.status.sites[site]
        # The status stays true: the apply failed, so the site is not recorded as applied.
        assert (status.state, status.applied, status.started_at) == ("deferred", False, None)
        assert "its cluster refused the apply" in status.reason
        assert world.running(site) is None
    applies = {e.what for e in world.rollouts.audit(rollout.id) if e.what.startswith("apply")}
    assert applies == {f"apply scan-upload-1.0.0 at {s}" for s in ON_FIRST}
    # Tried again on the next tick (site-a and site-b passed: every apply now is for site-c or site-d).
    tried = len(world.gateway.applied)
    world.step(rollout.id)
    assert len(world.gateway.applied) > tried

    trouble.now = None
    done = world.run_until(rollout.id, "done")
    assert all(done.status.sites[s].state == "passed" for s in SITES)
    applies = {e.what for e in world.rollouts.audit(rollout.id) if e.what.startswith("apply")}
    assert applies == {f"apply scan-upload-1.0.0 at {s}" for s in SITES}


# Down: the second cluster's sites are not seen, so no revert is tried; refusing writes: they are seen, the
# revert is tried and fails, and the status must not say they were reverted.
@pytest.mark.parametrize("error", ["503", "409"])
def test_a_rollback_reverts_the_sites_it_can_reach_and_the_others_when_their_cluster_is_back(
    world: World, trouble: Trouble, error: ApiError
) -> None:
    rollout, _ = world.service.start(release("1.0.0"), by="tester")
    world.run_until(rollout.id, "done")
    trouble.now = ApiTrouble(rate=1.0, errors=(error,))
    world.service.command(rollout.id, "rollback", by="tester")

    waiting = world.step(rollout.id)
    assert waiting.status.state == "aborting"
    assert all(waiting.status.sites[s].state == "rolled-back" for s in ON_FIRST)
    assert all(world.running(s) is None for s in ON_FIRST)
    for site in ON_SECOND:  # not reverted: not reachable
        assert (waiting.status.sites[site].state, waiting.status.sites[site].reverted) == ("passed", False)
    assert f"offline, reverted when back: {', '.join(ON_SECOND)}" in waiting.status.reason
    reverts = {e.what for e in world.rollouts.audit(rollout.id) if e.what.startswith("revert")}
    assert reverts == {f"revert {s}: deleted scan-upload (it was not there before)" for s in ON_FIRST}

    trouble.now = None
    ended = world.run_until(rollout.id, "rolled-back")
    assert all(ended.status.sites[s].state == "rolled-back" for s in SITES)
    assert all(world.running(s) is None for s in ON_SECOND)


@dataclass
class FailingNext(Trouble):
    """The second cluster's API server failing the next ``left`` requests with a 503, then serving every one."""

    left: int = 0

    def asked(self) -> ApiTrouble | None:
        now = super().asked()
        with self._counting:
            if self.left > 0:
                self.left -= 1
                return ApiTrouble(rate=1.0, errors=("503",))
        return now


def test_one_failed_list_does_not_defer_the_sites_soaking_in_that_cluster(tmp_path: Path) -> None:
    """A list that fails once (in the demo: a keep-alive connection reset under load) is asked again within the
    tick: it deferred every site in flight in that cluster and started their soak again, with a "sites deferred"
    message each time, so a 10-minute canary soak on a busy machine could go on for ever."""
    once = FailingNext()
    with small_world(tmp_path, second_cluster=once) as world:
        world.beat()
        canary = ON_SECOND[0]
        rollout, _ = world.service.start(release("1.0.0", canary=canary, soak="1h"), by="tester")
        soaking = world.step_until(
            rollout.id, lambda r: r.status.sites[canary].state == "soaking", what=f"{canary} to soak"
        ).status.sites[canary]

        world.beat()  # the boxes report first (their agents read the cluster too), then one tick alone:
        asked_before = once.requests
        once.left = 1  # the tick's one list of the second cluster fails
        world.reconciler.tick()
        after = world.rollouts.get(rollout.id).status.sites[canary]

        assert once.left == 0  # the tick met the failure
        assert once.requests == asked_before + 2  # and asked again
        assert (after.state, after.soaking_since, after.started_at) == (
            "soaking",
            soaking.soaking_since,
            soaking.started_at,
        )

        # A cluster that fails every ask is unreachable for the tick, as before: its site is deferred.
        once.now = ApiTrouble(rate=1.0, errors=("503",))
        deferred = world.step(rollout.id).status.sites[canary]
        assert deferred.state == "deferred"
        assert f"cluster {CLUSTER_2} cannot be reached" in deferred.reason
