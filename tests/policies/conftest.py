"""A real uvicorn serving the API over an in-memory controller whose gateway reaches a simulated central cluster
(``tests/policies/central.py``) through the real Kubernetes client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edgefleet.clock import FakeClock
from edgefleet.cloud.api import create_app
from edgefleet.cloud.k8s.clients import ClusterClients
from edgefleet.cloud.k8s.gateway import KubernetesGateway
from edgefleet.cloud.settings import Settings
from edgefleet.ids import ClusterId, SiteId
from edgefleet.inventory import load_inventory
from simulator.cluster.kubeconfig import write_kubeconfig
from simulator.cluster.nodes import site_boxes
from simulator.cluster.server import start_cluster_in_background
from tests.cloud.api.memory import MemoryController
from tests.cloud.api.serving import serving
from tests.k8s.conftest import TEST_TIMEOUTS
from tests.policies.central import CLUSTER, write_central
from tests.support.access import mint, use_token

CENTRAL = ClusterId(CLUSTER)


@pytest.fixture
def served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[MemoryController, KubernetesGateway, str]]:
    (tmp_path / "sites").mkdir()
    inventory = load_inventory(write_central(tmp_path / "sites"))
    cluster = start_cluster_in_background(CLUSTER, site_boxes(inventory, SiteId(CLUSTER)))
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", {CENTRAL: cluster.url})
    gateway = KubernetesGateway(
        ClusterClients({CENTRAL: CLUSTER}, kubeconfig), clock=FakeClock(), timeouts=TEST_TIMEOUTS
    )
    memory = MemoryController(inventory)
    memory.gateway = gateway
    try:
        with serving(create_app(Settings(), controller=memory)) as url:
            use_token(monkeypatch, mint(memory))  # the CLI and the tests' own calls act as an admin
            yield memory, gateway, url
    finally:
        gateway.close()
        cluster.stop()
