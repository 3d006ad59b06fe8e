"""A rollout is followed through its watch: the clusters' watch of Deployments and DaemonSets in edgefleet's
namespace (``WorkloadWatch``, through the gateway) tells the reconciler of each change to a site's workload, and it
ticks early when that site is in flight. The reconciler's schedule is an hour and no heartbeat goes through an
ingest here, so a tick after the first can only have been woken by the watch."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edgefleet.clock import SystemClock
from edgefleet.cloud.rollouts.rendering import NAMESPACE
from edgefleet.cloud.rollouts.workload_watching import WorkloadWatch
from tests.rollouts.world import SITES, World, release, small_world
from tests.support.peers import wait_for

pytestmark = pytest.mark.slow

CANARY, LATER = SITES[0], SITES[3]
AN_HOUR = 3600.0


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with small_world(tmp_path) as built:
        built.beat()
        built.restart(interval_s=AN_HOUR)
        yield built


def test_the_canarys_workload_rolling_out_wakes_the_reconciler_and_other_sites_do_not(world: World) -> None:
    watch = WorkloadWatch(
        lambda: world.inventory, world.gateway, changed=world.reconciler.workload_changed, clock=SystemClock()
    )
    world.reconciler.start()
    watch.start()
    try:
        # No rollout: no site in flight, so a change to any site's workload wakes nothing.
        wait_for(lambda: world.reconciler.idle, timeout=30, what="the first scheduled tick to end")
        wakes = world.reconciler.wakes
        world.reconciler.workload_changed(CANARY)
        assert world.reconciler.wakes == wakes

        rollout, _ = world.service.start(release("1.0.0"), by="tester")  # the start wakes the reconciler once
        wait_for(
            lambda: world.rollouts.get(rollout.id).status.site(CANARY).state == "in-progress" and world.reconciler.idle,
            timeout=30,
            what="the woken tick to apply the canary",
        )
        # The canary's Deployment may already have rolled its pods out (and woken the reconciler) while the tick
        # ran; restarting it (what `kubectl rollout restart` does) makes its pods roll again after we look.
        wakes = world.reconciler.wakes
        deployment = world.running(CANARY)
        assert deployment is not None
        world.gateway.restart(
            world.inventory.sites[CANARY].cluster,
            "Deployment",
            NAMESPACE,
            deployment["metadata"]["name"],
            at=world.clock.now(),
        )
        # Each status change comes through the watch, and the reconciler is woken with no heartbeat and no
        # scheduled tick.
        wait_for(lambda: world.reconciler.wakes > wakes, timeout=30, what="a wake from the canary's workload")
    finally:
        watch.stop()
        world.reconciler.stop()
