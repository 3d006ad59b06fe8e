"""A site cut during its wave (issue 15, "Offline is not failed"): applied, then its agents fall silent before
its gates passed. Against the simulated cluster and the reconciler (``world.py``): the site is deferred, not
failed (the threshold allows no failed site, and the rollout never stops), the wave passes with the other sites,
the rollout waits for it, and once it is back it is gated again from its return, without a second apply, and
brought to ``passed`` with the new release running."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edgefleet.cloud.rollouts.deciding import Notify
from edgefleet.cloud.rollouts.store import StoredRollout
from tests.rollouts.world import SITES, World, release, small_world
from tests.support.peers import wait_for

pytestmark = pytest.mark.slow

CUT = SITES[2]
# Past the sites' heartbeat timeout (10 s x 3 missed beats): the cut site's boxes are offline.
SILENCE_S = 120.0


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with small_world(tmp_path) as built:
        built.beat()
        yield built


def test_a_site_cut_during_its_wave_is_deferred_then_gated_again_when_back(world: World) -> None:
    world.stuck.add(CUT)  # its agents do not report the new version yet: its gates wait
    rollout, _ = world.service.start(release("1.0.0", failed_sites=0), by="tester")
    notified: list[tuple[str, tuple[str, ...]]] = []

    def step_until(condition: object, what: str) -> StoredRollout:
        def reached() -> StoredRollout | None:
            world.beat()
            for result in world.reconciler.tick():
                assert result.saved, result.error
                if result.decision is not None:
                    notified.extend((a.kind, tuple(a.sites)) for a in result.decision.actions if isinstance(a, Notify))
            current = world.rollouts.get(rollout.id)
            assert current.status.state == "running", current.status  # never stops, never done too early
            return current if condition(current) else None  # type: ignore[operator]

        return wait_for(reached, timeout=60, interval=0.05, what=f"rollout {rollout.id} {what}")

    applied = step_until(lambda r: r.status.sites[CUT].state == "in-progress", "to start the site to cut")
    assert world.site_release(CUT)[1] == rollout.id  # applied: the cluster has its new workload

    # The cut: its agents fall silent while its gates still wait.
    assert applied.status.sites[CUT].state == "in-progress"
    world.silent.add(CUT)
    world.clock.advance(SILENCE_S)
    cut = step_until(lambda r: r.status.waves == ("passed", "passed"), "to pass both waves without the cut site")
    assert cut.status.sites[CUT].state == "deferred"
    assert cut.status.sites[CUT].reason == "offline during its rollout"
    assert cut.status.reason == f"every wave passed; waiting for 1 deferred ({CUT})"
    assert all(cut.status.sites[s].state == "passed" for s in SITES if s != CUT)
    assert [note for note in notified if note[0] == "sites-deferred"] == [("sites-deferred", (CUT,))]  # once

    # Back, its agents still on the old version: started again, gated from its return, nothing applied again.
    world.silent.clear()
    back_at = world.clock.now()
    back = step_until(lambda r: r.status.sites[CUT].state == "in-progress", "to take the site back")
    assert back.status.sites[CUT].started_at == back_at
    assert back.status.sites[CUT].applied

    world.stuck.clear()
    done = world.run_until(rollout.id, "done")

    assert all(done.status.sites[s].state == "passed" for s in SITES)
    assert world.site_release(CUT) == (
        "scan-upload-1.0.0",
        rollout.id,
        "registry.local:5000/edgefleet/scan-upload:1.0.0",
    )
    applies = [e.what for e in world.rollouts.audit(rollout.id) if e.what.startswith("apply")]
    assert sorted(applies) == sorted(f"apply scan-upload-1.0.0 at {s}" for s in SITES)  # one each, the cut site too
