"""Done when (issue 14): ``edgefleet boxes --site S`` shows each box's node state beside its agent state. A real
``Controller`` whose node watch reads a simulated cluster through the gateway it builds from the kubeconfig
setting, served by the real API, read by the CLI."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from edgefleet.clock import FakeClock
from edgefleet.cloud.api import create_app
from edgefleet.cloud.controller import Controller
from edgefleet.cloud.settings import Settings
from edgefleet.ids import SiteId
from edgefleet.inventory import load_inventory
from simulator.cluster.kubeconfig import write_kubeconfig
from simulator.cluster.nodes import site_boxes
from simulator.cluster.resources import NODES
from simulator.cluster.server import BackgroundCluster, start_cluster_in_background
from simulator.cluster.store import Store
from tests.cli.test_fleet_commands_print_tables import rows
from tests.cloud.api.memory import write_inventory
from tests.cloud.api.serving import serving
from tests.support.access import mint, use_token
from tests.support.clusters import TEST_HOST
from tests.support.peers import wait_for

SITE = "sh-pudong"


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Controller, BackgroundCluster, str]]:
    sites = write_inventory(tmp_path / "sites")
    inventory = load_inventory(sites)
    # The host cluster holds the transfer centers' boxes, but sh-pudong-edge-01 never joined it.
    boxes = [b for s in ("sh-pudong", "bj-daxing") for b in site_boxes(inventory, SiteId(s))]
    cluster = start_cluster_in_background(TEST_HOST, [b for b in boxes if b.name != "sh-pudong-edge-01"])
    try:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", {TEST_HOST: cluster.url})
        settings = Settings(
            database_url=f"sqlite:///{tmp_path / 'edgefleet.db'}", sites_dir=sites, kubeconfig=kubeconfig
        )
        controller = Controller(settings, clock=FakeClock())
        try:
            controller.node_watch.start()
            with serving(create_app(settings, controller=controller)) as url:
                use_token(monkeypatch, mint(controller))
                yield controller, cluster, url
        finally:
            controller.stop()
    finally:
        cluster.stop()


@pytest.fixture
def runner() -> CliRunner:
    """Without the in-memory app's token: ``served`` sets its own controller's (``EDGEFLEET_TOKEN``)."""
    return CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})


def edgecore_stops(name: str) -> Callable[[Store], None]:
    def run(store: Store) -> None:
        node = copy.deepcopy(store.get(NODES, "", name))
        for condition in node["status"]["conditions"]:
            if condition["type"] == "Ready":
                condition.update(status="False", reason="EdgeNotReady", message="edgecore stopped")
        store.update(NODES, node, subresource="status")

    return run


def test_boxes_show_each_boxs_node_state_beside_its_agent_state(
    served: tuple[Controller, BackgroundCluster, str], cli: typer.Typer, runner: CliRunner
) -> None:
    controller, cluster, url = served

    def table() -> dict[str, list[str]]:
        result = runner.invoke(cli, ["boxes", "--site", SITE, "--api", url])
        assert result.exit_code == 0, result.output
        return rows(result.output)

    wait_for(lambda: table()["sh-pudong-gpu-01"][2] == "ready", what="the node listed")
    listed = table()
    assert listed["box"][:3] == ["role", "state", "node"]
    assert {box: cells[1:3] for box, cells in listed.items() if box != "box"} == {
        "sh-pudong-gpu-01": ["never-seen", "ready"],
        "sh-pudong-gpu-02": ["never-seen", "ready"],
        "sh-pudong-edge-01": ["never-seen", "missing"],
    }
    assert controller.gateway is not None

    cluster.call(edgecore_stops("sh-pudong-gpu-02"))
    wait_for(lambda: table()["sh-pudong-gpu-02"][2] == "not-ready", what="the change")
    changed = table()
    assert changed["sh-pudong-gpu-01"][2] == "ready"
