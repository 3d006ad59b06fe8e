"""A simulated cluster (``kubeedge-east``, seeded with two of its sites' boxes), a kubeconfig naming it, and the
gateway over it on a FakeClock. A history shorter than the seed, so a watch from version 1 is already too old."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgefleet.clock import FakeClock
from edgefleet.cloud.k8s.clients import ClusterClients, Timeouts
from edgefleet.cloud.k8s.gateway import KubernetesGateway
from edgefleet.ids import ClusterId
from edgefleet.inventory import Inventory, Site, load_inventory
from simulator.cluster.kubeconfig import write_kubeconfig
from simulator.cluster.nodes import site_boxes
from simulator.cluster.server import BackgroundCluster, start_cluster_in_background
from tests.conftest import SITES

EAST = ClusterId("kubeedge-east")
# Short, so a test that goes wrong fails fast; the simulated server answers in milliseconds.
TEST_TIMEOUTS = Timeouts(connect_s=2.0, read_s=5.0)


@pytest.fixture(scope="module")
def inventory() -> Inventory:
    return load_inventory(SITES)


@pytest.fixture(scope="module")
def east_sites(inventory: Inventory) -> list[Site]:
    sites = [s for s in inventory.cluster_sites(EAST) if s.node_group is not None]
    assert len(sites) >= 2, "the test inventory has two transfer centers in kubeedge-east"
    return sites[:2]


@pytest.fixture
def cluster(inventory: Inventory, east_sites: list[Site]) -> Iterator[BackgroundCluster]:
    boxes = [box for site in east_sites for box in site_boxes(inventory, site.id)]
    running = start_cluster_in_background(EAST, boxes, history=5, bookmark_interval_s=0.2)
    yield running
    running.stop()


@pytest.fixture
def kubeconfig(cluster: BackgroundCluster, tmp_path: Path) -> Path:
    return write_kubeconfig(tmp_path / "kubeconfig", {EAST: cluster.url})


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def gateway_for(kubeconfig: Path, clock: FakeClock, *, watch_timeout_s: float = 5.0) -> KubernetesGateway:
    clients = ClusterClients({EAST: EAST}, kubeconfig)
    return KubernetesGateway(clients, clock=clock, timeouts=TEST_TIMEOUTS, watch_timeout_s=watch_timeout_s)


@pytest.fixture
def gateway(kubeconfig: Path, clock: FakeClock) -> Iterator[KubernetesGateway]:
    built = gateway_for(kubeconfig, clock)
    yield built
    built.close()


def closed_port() -> int:
    """A port of 127.0.0.1 nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
