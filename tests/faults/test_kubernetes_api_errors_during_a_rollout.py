"""Fault: a site cluster's API server answers 20% of the rollout's requests with 409, 429, 500, 503 or a timeout
(the simulator's api-errors fault, ``simulator.cluster.troubles``). Invariant: the rollout still completes, every
site runs the release, each site is applied once in the audit, and the troubled cluster was asked at most 3x the
requests of the same rollout without faults
(its applies, counted at the gateway, are printed beside them). Two sites (site-c, site-d) sit on the troubled cluster; the real
gateway, reconciler and simulated clusters run as in tests/rollouts/world.py.

410 (a watch's resourceVersion expired) is not in the api-errors fault: the reconciler does not watch, and the
gateway's watch surviving it is tests/k8s/test_watches_resume_and_relist_after_410.py."""

from __future__ import annotations

from pathlib import Path

from edgefleet.cloud.k8s.clients import Timeouts
from simulator.cluster.troubles import API_ERRORS, ApiTrouble
from tests.rollouts.world import CLUSTER_2, SITES, Trouble, World, release, small_world

RATE = 0.2
# A held request counts as a timeout after this long (kube-apiserver would hold it 60 s): short, to stay fast.
TIMEOUTS = Timeouts(connect_s=1.0, read_s=0.5)
ON_SECOND = tuple(SITES[2:])


def _roll_out(directory: Path, trouble: Trouble) -> tuple[World, int, int]:
    """Run one rollout of scan-upload 1.0.0 to done; returns the world, the troubled cluster's requests, and the
    applies the gateway made to its sites."""
    directory.mkdir()
    with small_world(directory, second_cluster=trouble, timeouts=TIMEOUTS) as world:
        assert {world.inventory.sites[s].cluster for s in ON_SECOND} == {CLUSTER_2}
        world.beat()
        asked_before = trouble.requests
        rollout, _ = world.service.start(release("1.0.0"), by="tester")
        done = world.run_until(rollout.id, "done", timeout=90)
        asked = trouble.requests - asked_before
        # The test's own reads of what each cluster runs are not the rollout's: they go through a healed server,
        # or an injected error would fail the check rather than the rollout.
        trouble.now = None
        assert all(done.status.sites[s].state == "passed" for s in SITES), done.status.sites
        assert all(world.site_release(s)[:2] == ("scan-upload-1.0.0", rollout.id) for s in SITES)
        applies = [e.what for e in world.rollouts.audit(rollout.id) if e.what.startswith("apply")]
        assert sorted(applies) == sorted(f"apply scan-upload-1.0.0 at {s}" for s in SITES), "each site applied once"
        site_applies = sum(1 for _, name in world.gateway.applied if name.endswith(ON_SECOND))
        return world, asked, site_applies


def test_a_rollout_completes_through_api_errors_within_three_times_the_calls(tmp_path: Path) -> None:
    clean = Trouble()
    _, clean_requests, clean_applies = _roll_out(tmp_path / "clean", clean)

    troubled = Trouble(now=ApiTrouble(rate=RATE, errors=API_ERRORS))
    _, requests, applies = _roll_out(tmp_path / "troubled", troubled)

    print(
        f"injected: {RATE:.0%} of {CLUSTER_2}'s API requests failed with one of {', '.join(API_ERRORS)}"
        f" (timeout after {TIMEOUTS.read_s} s)\n"
        f"checked: rollout done, every site passed once; {CLUSTER_2} asked {requests} requests"
        f" (fault-free: {clean_requests}), its sites' applies {applies} (fault-free: {clean_applies})"
    )
    assert clean_requests > 0
    assert clean_applies > 0
    assert applies > clean_applies, "the fault was injected: failed applies were tried again"
    # The calls are the API server's requests; one failed apply has the site's whole set applied again on the
    # next tick, so the gateway's applies grow faster (11 against 4 here) and are shown, not bounded.
    assert requests <= 3 * clean_requests
