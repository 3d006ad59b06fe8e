"""A heartbeat that changes what a rollout waits for wakes the reconciler before its schedule; one that changes
nothing it waits for does not. The heartbeats go through the controller's ingest (``Ingest.handle``, as paho hands
it messages) into the reconciler's filter; the reconciler runs on its own schedule with an interval of an hour,
so a tick after the first can only have been woken. The cluster is the simulated one, its workload controllers
running the pods."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edgefleet.cloud.ingesting import Ingest
from tests.rollouts.world import SITES, World, release, small_world
from tests.support.peers import wait_for

pytestmark = pytest.mark.slow

CANARY, OTHER = SITES[0], SITES[1]
# Longer than any test here runs: the schedule itself never ticks after its first run.
AN_HOUR = 3600.0


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with small_world(tmp_path) as built:
        built.beat()
        built.restart(interval_s=AN_HOUR)
        yield built


def test_a_heartbeat_reporting_the_new_version_wakes_the_reconciler_and_one_changing_nothing_does_not(
    world: World,
) -> None:
    ingest = Ingest(world.state, "mqtt://127.0.0.1:1", clock=world.clock, on_heartbeat=world.reconciler.heartbeat_taken)
    world.stuck.add(CANARY)  # its agent goes on reporting what ran before, whatever the cluster runs
    world.reconciler.start()
    try:
        rollout, _ = world.service.start(release("1.0.0"), by="tester")  # the start wakes the reconciler
        wait_for(
            lambda: world.rollouts.get(rollout.id).status.site(CANARY).state == "in-progress" and world.reconciler.idle,
            timeout=30,
            what="the woken tick to apply the canary",
        )
        ticks, wakes = world.reconciler.ticks, world.reconciler.wakes

        # The canary's agent reports nothing new; another site (not in flight) reports another version.
        world.beat({OTHER: "0.9.0"}, through=ingest)
        assert world.reconciler.wakes == wakes
        assert world.reconciler.idle

        # The canary's agent reports the new version once its pod runs: the reconciler is woken, ticks, the canary
        # passes and the next wave starts, all without a scheduled tick.
        world.stuck.discard(CANARY)
        wait_for(lambda: world.site_release(CANARY)[0] == "scan-upload-1.0.0", what="the canary's Deployment")
        wait_for(
            lambda: world._rolled_out_version(CANARY) == "1.0.0",
            timeout=30,
            what="the cluster to run 1.0.0 at the canary",
        )
        world.beat(through=ingest)
        assert world.reconciler.wakes == wakes + 1
        moved = wait_for(
            lambda: (found := world.rollouts.get(rollout.id)).status.site(OTHER).state != "pending" and found,
            timeout=30,
            what="the woken tick to pass the canary and start the next wave",
        )
    finally:
        world.reconciler.stop()
    assert moved.status.site(CANARY).state == "passed"
    assert moved.status.waves[0] == "passed"
    assert world.reconciler.ticks > ticks


def test_wakes_fold_into_one_tick_and_a_wake_during_a_tick_runs_one_more_after_it(world: World) -> None:
    reconciler = world.reconciler
    reconciler.start()
    try:
        wait_for(lambda: reconciler.ticks >= 1 and reconciler.idle, what="the first scheduled tick")
        ticks, wakes = reconciler.ticks, reconciler.wakes
        for _ in range(50):
            reconciler.wake()
        assert reconciler.wakes == wakes + 1  # one pending at most
        wait_for(lambda: reconciler.idle, timeout=30, what="the woken tick")
        assert reconciler.ticks == ticks + 1

        # A tick in flight (held up on the reconciler's lock) when the next wake comes: it may have read the state
        # before the change, so one more tick runs after it.
        with reconciler._lock:
            reconciler.wake()
            wait_for(lambda: reconciler._ticking, timeout=30, what="the woken tick to start")
            reconciler.wake()
            assert reconciler.wakes == wakes + 3
        wait_for(lambda: reconciler.idle, timeout=30, what="the tick after the tick")
    finally:
        reconciler.stop()
    assert reconciler.ticks == ticks + 3
