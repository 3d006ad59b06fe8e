"""The controller's periodic probe (``edgefleet.cloud.probing``): each cluster has its own job and thread, so a
cluster whose API server never answers holds only its own probe; the others are probed and reported meanwhile."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgefleet.clock import FakeClock
from edgefleet.cloud.k8s.clients import ClusterClients
from edgefleet.cloud.k8s.gateway import KubernetesGateway
from edgefleet.cloud.probing import ClusterProbing
from edgefleet.ids import ClusterId
from simulator.cluster.kubeconfig import write_kubeconfig
from simulator.cluster.server import BackgroundCluster
from tests.k8s.conftest import EAST
from tests.support.peers import wait_for

SILENT = ClusterId("kubeedge-asleep")


@pytest.fixture
def silent_listener() -> Iterator[socket.socket]:
    """Accepts connections (the kernel does, from the backlog) and never answers; closing it resets them."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        yield listener
    finally:
        listener.close()


def test_a_silent_cluster_does_not_hold_up_the_others(
    cluster: BackgroundCluster, silent_listener: socket.socket, tmp_path: Path, clock: FakeClock
) -> None:
    port = silent_listener.getsockname()[1]
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", {EAST: cluster.url, SILENT: f"http://127.0.0.1:{port}"})
    # A probe timeout far beyond the wait below: the silent probe is still in flight when EAST is reported.
    gateway = KubernetesGateway(
        ClusterClients({EAST: EAST, SILENT: SILENT}, kubeconfig), clock=clock, probe_timeout_s=120.0
    )
    # The silent cluster sorts first: probed one after another, EAST would wait behind it.
    probing = ClusterProbing(gateway, [SILENT, EAST], interval_s=3600)
    try:
        probing.start()
        wait_for(
            lambda: next(h for h in gateway.health() if h.cluster == EAST).checked_at is not None,
            timeout=30,
            what="EAST probed while the silent cluster's probe waits",
        )
        health = {h.cluster: h for h in gateway.health()}
        assert health[EAST].reachable is True
        assert health[SILENT].checked_at is None
        assert health[SILENT].reachable is None
        # The silent server goes away: its probe fails at once and is reported.
        silent_listener.close()
        wait_for(
            lambda: next(h for h in gateway.health() if h.cluster == SILENT).checked_at is not None,
            timeout=30,
            what="the silent cluster's probe to end",
        )
        assert {h.cluster: h for h in gateway.health()}[SILENT].reachable is False
    finally:
        probing.stop()
        gateway.close()
