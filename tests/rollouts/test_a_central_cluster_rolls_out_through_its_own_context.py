"""Central clusters go through the same code, with their own contexts (issue 15, "Execution"). A central site is a
site whose cluster is a central cluster of its own: named in a release (an override's ``sites``; the canary is
for transfer centers), scan-upload rolls out to it in its wave through that cluster's context (one replica per cluster node, on the cluster nodes; docs/kubernetes.md), gated
by the same gates on its cluster nodes' heartbeats, and a rollback puts its previous release back there, while
the transfer centers' host cluster never holds a workload of the central site."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgefleet.cloud.rollouts.rendering import BOX_ROLE_LABEL, NAMESPACE, SITE_LABEL
from edgefleet.ids import ClusterId
from tests.rollouts.world import CENTRAL, CENTRAL_SITE, CLUSTER, SITES, World, release, small_world

pytestmark = pytest.mark.slow


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with small_world(tmp_path, central=True) as built:
        built.beat()
        yield built


def central_release(version: str) -> str:
    """scan-upload ``version`` that names the central site in an override (so it is targeted, with a config of its
    own): the canary site-a, then the central site (it sorts first), then the rest."""
    named = f'  overrides:\n    - sites: [{CENTRAL_SITE}]\n      config: {{upload.batch-size: "200"}}\n  strategy:\n'
    return release(version, waves='["1", "100%"]').replace("  strategy:\n", named)


def _deployments(world: World, cluster: ClusterId, site: str) -> list[dict[str, Any]]:
    listed = world.gateway.list_objects(
        cluster, "Deployment", namespace=NAMESPACE, label_selector=f"{SITE_LABEL}={site}"
    )
    return list(listed.items)


def test_a_release_rolls_out_to_a_central_site_through_its_own_context_and_rolls_back(world: World) -> None:
    first, _ = world.service.start(central_release("1.0.0"), by="tester")
    assert [w.sites for w in first.spec.waves] == [(SITES[0],), (CENTRAL_SITE,), tuple(SITES[1:])]
    world.run_until(first.id, "done")
    rollout, _ = world.service.start(central_release("2.0.0"), by="tester")

    done = world.run_until(rollout.id, "done")

    assert done.status.sites[CENTRAL_SITE].state == "passed"
    # In the central cluster, through its context: one replica per cluster node, on the cluster nodes.
    (deployment,) = _deployments(world, CENTRAL, CENTRAL_SITE)
    assert world.site_release(CENTRAL_SITE) == (
        "scan-upload-2.0.0",
        rollout.id,
        "registry.local:5000/edgefleet/scan-upload:2.0.0",
    )
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["template"]["spec"]["nodeSelector"] == {BOX_ROLE_LABEL: "cluster-node"}
    (config,) = world.gateway.list_objects(
        CENTRAL, "ConfigMap", namespace=NAMESPACE, label_selector=f"{SITE_LABEL}={CENTRAL_SITE}"
    ).items
    assert config["data"] == {"upload.batch-size": "200"}  # its own override, over the release's 50
    pods = world.gateway.list_objects(
        CENTRAL, "Pod", namespace=NAMESPACE, label_selector=f"{SITE_LABEL}={CENTRAL_SITE}"
    )
    running = {p["spec"].get("nodeName") for p in pods.items if p["status"].get("phase") == "Running"}
    assert running <= {f"{CENTRAL_SITE}-node-0{i}" for i in (1, 2, 3)}
    assert running  # the gates passed on pods the central cluster runs
    # The host cluster of the transfer centers holds nothing of the central site, the central cluster nothing of
    # the centers.
    assert _deployments(world, CLUSTER, CENTRAL_SITE) == []
    assert all(_deployments(world, CENTRAL, site) == [] for site in SITES)
    assert all(world.site_release(site)[1] == rollout.id for site in SITES)

    world.service.command(rollout.id, "rollback", by="tester")
    ended = world.run_until(rollout.id, "rolled-back")

    assert ended.status.sites[CENTRAL_SITE].state == "rolled-back"
    assert world.site_release(CENTRAL_SITE) == (
        "scan-upload-1.0.0",
        None,
        "registry.local:5000/edgefleet/scan-upload:1.0.0",
    )
    reverts = [e.what for e in world.rollouts.audit(rollout.id) if e.what.startswith("revert")]
    assert f"revert {CENTRAL_SITE} to scan-upload-1.0.0" in reverts
    assert _deployments(world, CLUSTER, CENTRAL_SITE) == []
