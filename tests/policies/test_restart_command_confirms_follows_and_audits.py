"""``edgefleet restart --cluster C`` and ``POST /api/v1/clusters/{name}/restart`` over a real uvicorn whose
controller reaches a simulated cluster: the command names how many Deployments it touches and restarts nothing
when the person says no; ``--yes`` restarts them, showing each step, and stops at the one that crash-loops (exit
1, naming it and those not restarted); a start that confirmed another number than the selection holds is refused
(409); every step is in the audit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner

from edgefleet.cli import clusters as clusters_cli
from edgefleet.clock import SystemClock
from edgefleet.cloud.api import create_app
from edgefleet.cloud.k8s.clients import ClusterClients
from edgefleet.cloud.k8s.gateway import KubernetesGateway
from edgefleet.cloud.restarts import Restarts
from edgefleet.cloud.rollouts.store import RolloutStore
from edgefleet.cloud.settings import Settings
from edgefleet.cloud.store import Store
from edgefleet.ids import ClusterId, SiteId
from edgefleet.inventory import load_inventory
from simulator.cluster.kubeconfig import write_kubeconfig
from simulator.cluster.nodes import site_boxes
from simulator.cluster.pods import PodTiming
from simulator.cluster.server import start_cluster_in_background
from tests.cloud.api.memory import MemoryController
from tests.cloud.api.serving import serving
from tests.k8s.conftest import TEST_TIMEOUTS
from tests.policies.central import CLUSTER, write_central
from tests.policies.test_batch_restart_stops_at_a_failing_deployment import CrashLoops, deployment
from tests.support.access import cli_headers, mint, use_token
from tests.support.peers import wait_for

CENTRAL = ClusterId(CLUSTER)
NAMES = ["a-web", "b-api", "c-worker"]


@pytest.fixture
def world(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[KubernetesGateway, CrashLoops, RolloutStore, str]]:
    (tmp_path / "sites").mkdir()
    inventory = load_inventory(write_central(tmp_path / "sites"))
    crash_loops = CrashLoops()
    cluster = start_cluster_in_background(
        CLUSTER,
        site_boxes(inventory, SiteId(CLUSTER)),
        controllers=True,
        pod_timing=PodTiming().scaled(0.05),
        pod_fate=crash_loops,
    )
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", {CENTRAL: cluster.url})
    clock = SystemClock()
    gateway = KubernetesGateway(ClusterClients({CENTRAL: CLUSTER}, kubeconfig), clock=clock, timeouts=TEST_TIMEOUTS)
    store = Store(database_url)
    store.create_schema()
    rollouts = RolloutStore(store)
    rollouts.create_schema()
    memory = MemoryController(inventory)
    memory.gateway = gateway
    memory.restarts = Restarts(gateway, clock=clock, audit=rollouts.record, poll_s=0.2)
    try:
        with serving(create_app(Settings(), controller=memory)) as url:
            use_token(monkeypatch, mint(memory))  # the CLI and the tests' own calls act as an admin
            yield gateway, crash_loops, rollouts, url
    finally:
        gateway.close()
        cluster.stop()
        store.close()


def cli() -> typer.Typer:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    clusters_cli.register(app)
    return app


RUNNER = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_restart_command_confirms_follows_stops_and_audits(
    world: tuple[KubernetesGateway, CrashLoops, RolloutStore, str],
) -> None:
    gateway, crash_loops, rollouts, url = world
    gateway.apply(CENTRAL, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
    for name in NAMES:
        gateway.apply(CENTRAL, deployment(name))
    wait_for(
        lambda: all(gateway.rollout_progress(CENTRAL, "Deployment", "shop", n).done for n in NAMES),
        timeout=30,
        what="the Deployments to roll out",
    )
    args = ["restart", "--cluster", CLUSTER, "--namespace", "shop", "--api", url]

    declined = RUNNER.invoke(cli(), args, input="n\n")
    assert declined.exit_code == 1, declined.output
    assert "Restart 3 Deployments in cluster central-x, namespace shop, 1 at a time?" in declined.output
    assert rollouts.audit() == []

    with httpx.Client(base_url=url, timeout=10, headers=cli_headers()) as client:
        stale = client.post(f"/api/v1/clusters/{CLUSTER}/restart", json={"namespace": "shop", "expect": 2})
        assert stale.status_code == 409, stale.text
        assert "holds 3 Deployment(s) of cluster 'central-x' now and 2 were confirmed" in stale.text

    crash_loops.broken.add("registry.local/b-api:1")
    stopped = RUNNER.invoke(cli(), [*args, "--yes"])
    assert stopped.exit_code == 1, stopped.output
    assert "shop/a-web: restarted" in stopped.output
    assert 'shop/a-web: rolled out - deployment "a-web" successfully rolled out' in stopped.output
    assert 'the restart stopped at shop/b-api: deployment "b-api" exceeded its progress deadline' in stopped.output
    assert "1 Deployment not restarted: shop/c-worker" in stopped.output
    said = [e.what for e in rollouts.audit()]
    assert said[1:] == [
        "restart Deployment shop/a-web of cluster central-x",
        "restart Deployment shop/b-api of cluster central-x",
        "batch restart "
        + said[0].split()[2].rstrip(":")
        + ' stopped at Deployment shop/b-api: deployment "b-api" exceeded its progress deadline',
    ]
    assert said[0].endswith("3 Deployment(s) of cluster central-x, at most 1 in flight")
