"""The controller builds the gateway for the inventory's clusters from its kubeconfig setting and probes each one;
``GET /api/v1/clusters``, ``edgefleet clusters`` and ``/metrics`` show every cluster, healthy or not: two simulated
clusters reachable, one stopped -> unreachable with its last error, and back once the kubeconfig names its new
address (no restart); a cluster whose context the kubeconfig lacks says which context and how to fix it.

The controller is built, not started (no ingest, no schedule): the test runs each probe pass itself
(``cluster_probing.probe_all``), so no probe races the test. ``test_start_probes_and_stop_closes`` runs the
schedule."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from edgefleet.cli import clusters as clusters_command
from edgefleet.cli import fleet
from edgefleet.clock import FakeClock
from edgefleet.cloud.api import create_app
from edgefleet.cloud.controller import Controller
from edgefleet.cloud.settings import Settings
from edgefleet.ids import SiteId
from edgefleet.inventory import load_inventory
from simulator.cluster.kubeconfig import write_kubeconfig
from simulator.cluster.nodes import site_boxes
from simulator.cluster.server import BackgroundCluster, start_cluster_in_background
from tests.cloud.api.memory import write_inventory
from tests.cloud.api.serving import serving
from tests.support.access import as_cli, mint, use_token
from tests.support.clusters import TEST_HOST, cluster_manifest
from tests.support.peers import wait_for

CENTRAL = "central-bj"
# Declared in the inventory, absent from the kubeconfig: a central cluster and its site.
WEST = "central-xa"
WEST_SITE = """\
apiVersion: edgefleet.io/v1
kind: Site
metadata: {name: central-xa}
spec:
  kind: central
  displayName: "Xi'an Central Cluster"
  region: west
  timezone: Asia/Shanghai
  cluster: central-xa
  boxes:
    - {name: central-xa-node-01, role: cluster-node}
---
"""


class Clusters:
    """The small inventory's two clusters, simulated, and the kubeconfig that names them."""

    def __init__(self, sites: Path, kubeconfig: Path) -> None:
        self.inventory = load_inventory(sites)
        self.kubeconfig = kubeconfig
        self.running: dict[str, BackgroundCluster] = {}
        for name in (TEST_HOST, CENTRAL):
            self.start(name)

    def start(self, name: str) -> None:
        boxes = [b for s in self.inventory.cluster_sites(name) for b in site_boxes(self.inventory, SiteId(s.id))]  # type: ignore[arg-type]
        self.running[name] = start_cluster_in_background(name, boxes)
        self.write_kubeconfig()

    def stop(self, name: str) -> None:
        self.running[name].stop()

    def write_kubeconfig(self) -> None:
        # Beside it, then renamed over: the controller's clients follow the file to its new version.
        fresh = write_kubeconfig(
            self.kubeconfig.with_suffix(".new"), {n: c.url for n, c in sorted(self.running.items())}
        )
        os.replace(fresh, self.kubeconfig)

    def close(self) -> None:
        for cluster in self.running.values():
            cluster.stop()


@pytest.fixture
def sites(tmp_path: Path) -> Path:
    directory = write_inventory(tmp_path / "sites")
    (directory / "central-xa.yaml").write_text(WEST_SITE + cluster_manifest(WEST, "central", region="west"))
    return directory


@pytest.fixture
def clusters(sites: Path, tmp_path: Path) -> Iterator[Clusters]:
    running = Clusters(sites, tmp_path / "kubeconfig")
    yield running
    running.close()


@pytest.fixture
def settings(sites: Path, clusters: Clusters, tmp_path: Path) -> Settings:
    return Settings(
        broker_url="mqtt://127.0.0.1:1",
        database_url=f"sqlite:///{tmp_path / 'edgefleet.db'}",
        sites_dir=sites,
        kubeconfig=clusters.kubeconfig,
    )


@pytest.fixture
def controller(settings: Settings) -> Iterator[Controller]:
    built = Controller(settings, clock=FakeClock())
    yield built
    built.stop()


@pytest.fixture
def api(controller: Controller, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with serving(create_app(settings, controller=controller)) as url:
        use_token(monkeypatch, mint(controller))  # the CLI and these calls act as an admin
        yield url


def by_name(api: str) -> dict[str, dict[str, Any]]:
    answer = as_cli.get(f"{api}/api/v1/clusters", timeout=10)
    assert answer.status_code == 200
    return {c["name"]: c for c in answer.json()}


def probe(controller: Controller) -> None:
    assert controller.cluster_probing is not None
    controller.cluster_probing.probe_all()


def cli(api: str, *args: str) -> str:
    """``edgefleet clusters`` as ``edgefleet.cli.app`` registers it, in process."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    fleet.register(app)
    clusters_command.register(app)
    result = CliRunner(env={"COLUMNS": "250", "NO_COLOR": "1"}).invoke(app, ["clusters", "--api", api, *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_every_cluster_shows_healthy_or_not_and_recovers(controller: Controller, clusters: Clusters, api: str) -> None:
    before = by_name(api)
    assert sorted(before) == [CENTRAL, WEST, TEST_HOST]
    assert all(c["reachable"] is None and c["checked_at"] is None for c in before.values())

    probe(controller)
    healthy = by_name(api)
    host = healthy[TEST_HOST]
    assert host["role"] == "kubeedge-host"
    assert host["context"] == TEST_HOST
    assert host["sites"] == ["bj-daxing", "sh-pudong"]
    assert host["reachable"] is True
    assert host["latency_ms"] == 0.0  # measured on the controller's (fake) clock
    assert host["version"].startswith("v1.")
    assert host["last_error"] is None
    assert host["checked_at"] == host["last_success_at"]
    assert healthy[CENTRAL]["reachable"] is True
    assert healthy[CENTRAL]["sites"] == ["central-bj"]

    west = healthy[WEST]
    assert west["reachable"] is False
    assert west["sites"] == ["central-xa"]
    assert (
        f"context '{WEST}' not in kubeconfig {clusters.kubeconfig}; add it or fix the Cluster manifest's context"
        in west["last_error"]
    )

    table = cli(api)
    assert "3 clusters, 2 reachable, 1 unreachable" in table
    assert f"context '{WEST}' not in kubeconfig" in table
    metrics = as_cli.get(f"{api}/metrics", timeout=10).text
    assert f'edgefleet_cluster_up{{cluster="{TEST_HOST}"}} 1.0' in metrics
    assert f'edgefleet_cluster_up{{cluster="{WEST}"}} 0.0' in metrics
    assert f'edgefleet_cluster_probe_seconds{{cluster="{TEST_HOST}"}} 0.0' in metrics
    assert f'edgefleet_cluster_gateway_errors_total{{cluster="{WEST}",kind="permanent"}} 1.0' in metrics
    assert f'edgefleet_cluster_gateway_errors_total{{cluster="{TEST_HOST}",kind="temporary"}} 0.0' in metrics

    # One cluster's API server goes away.
    clusters.stop(CENTRAL)
    probe(controller)
    lost = by_name(api)[CENTRAL]
    assert lost["reachable"] is False
    assert lost["last_error"].startswith(f"cluster {CENTRAL}: read the server version: unreachable")
    assert lost["last_success_at"] == healthy[CENTRAL]["last_success_at"]
    assert by_name(api)[TEST_HOST]["reachable"] is True
    assert "3 clusters, 1 reachable, 2 unreachable" in cli(api)
    metrics = as_cli.get(f"{api}/metrics", timeout=10).text
    assert f'edgefleet_cluster_up{{cluster="{CENTRAL}"}} 0.0' in metrics
    assert f'edgefleet_cluster_gateway_errors_total{{cluster="{CENTRAL}",kind="temporary"}} 1.0' in metrics

    # It comes back on another port; the kubeconfig is rewritten, and the controller follows it.
    clusters.start(CENTRAL)
    probe(controller)
    back = by_name(api)[CENTRAL]
    assert back["reachable"] is True
    assert back["last_error"] == lost["last_error"]  # kept, with its time, so ops see what happened
    listed = as_cli.get(f"{api}/api/v1/clusters/{CENTRAL}", timeout=10).json()
    assert listed == back
    row = next(line for line in cli(api).splitlines() if line.startswith(CENTRAL))
    assert f"recovered; at {back['last_error_at']}: cluster {CENTRAL}: read the server version: unreachable" in row
    as_json = cli(api, "-o", "json")
    assert '"name": "central-bj"' in as_json


def test_an_unknown_cluster_is_a_404_naming_it(controller: Controller, api: str) -> None:
    answer = as_cli.get(f"{api}/api/v1/clusters/kubeedge-nowhere", timeout=10)
    assert answer.status_code == 404
    error = answer.json()["error"]
    assert error["code"] == "not-found"
    assert "no cluster 'kubeedge-nowhere' in the inventory" in error["message"]
    assert TEST_HOST in error["message"]


def test_start_probes_and_stop_closes(settings: Settings) -> None:
    controller = Controller(settings, clock=FakeClock(), cluster_probe_interval_s=3600)
    try:
        controller.start()
        # The first probe of each cluster runs at start, in the background.
        wait_for(
            lambda: all(h.checked_at is not None for h in controller.cluster_health()),
            timeout=20,
            what="every cluster probed once",
        )
        health = {h.cluster: h for h in controller.cluster_health()}
        assert health[TEST_HOST].reachable is True
        assert health[WEST].reachable is False
    finally:
        controller.stop()
