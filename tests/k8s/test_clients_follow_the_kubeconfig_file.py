"""The clients follow the kubeconfig file: one that appears after the gateway was built, or is replaced (a new
server address), is used from the next call on, without a restart; one that disappears fails calls again with the
permanent error that says how to fix it."""

from __future__ import annotations

import os
from pathlib import Path

from edgefleet.clock import FakeClock
from edgefleet.cloud.k8s.clients import ClusterClients
from edgefleet.cloud.k8s.gateway import KubernetesGateway
from simulator.cluster.kubeconfig import write_kubeconfig
from simulator.cluster.server import BackgroundCluster
from tests.k8s.conftest import EAST, TEST_TIMEOUTS, closed_port


def replace_kubeconfig(path: Path, url: str) -> None:
    """Write a new version beside it and rename it over (a new inode, as editors and ``kubectl config`` do)."""
    fresh = write_kubeconfig(path.with_suffix(".new"), {EAST: url})
    os.replace(fresh, path)


def test_a_kubeconfig_written_later_is_used_without_a_restart(
    cluster: BackgroundCluster, tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "kubeconfig"
    gateway = KubernetesGateway(ClusterClients({EAST: EAST}, path), clock=clock, timeouts=TEST_TIMEOUTS)
    try:
        before = gateway.probe(EAST)
        assert before.reachable is False
        assert before.last_error is not None
        assert f"the kubeconfig {path} does not exist" in before.last_error
        replace_kubeconfig(path, cluster.url)
        assert gateway.probe(EAST).reachable is True
        path.unlink()
        gone = gateway.probe(EAST)
        assert gone.reachable is False
        assert gone.last_error is not None
        assert "does not exist" in gone.last_error
    finally:
        gateway.close()


def test_a_replaced_kubeconfig_moves_the_cluster_to_its_new_address(
    cluster: BackgroundCluster, tmp_path: Path, clock: FakeClock
) -> None:
    path = write_kubeconfig(tmp_path / "kubeconfig", {EAST: f"http://127.0.0.1:{closed_port()}"})
    gateway = KubernetesGateway(ClusterClients({EAST: EAST}, path), clock=clock, timeouts=TEST_TIMEOUTS)
    try:
        assert gateway.probe(EAST).reachable is False
        replace_kubeconfig(path, cluster.url)
        assert gateway.probe(EAST).reachable is True
    finally:
        gateway.close()
