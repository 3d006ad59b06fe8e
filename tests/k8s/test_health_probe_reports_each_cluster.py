"""The health probe: reachable, latency on the injected clock, the server's version, and the last error that says
something about the cluster (an unreachable server does; a missing object does not)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgefleet.clock import FakeClock
from edgefleet.cloud.k8s.clients import ClusterClients
from edgefleet.cloud.k8s.errors import PermanentClusterError
from edgefleet.cloud.k8s.gateway import ClusterHealth, KubernetesGateway
from edgefleet.ids import ClusterId
from simulator.cluster.kubeconfig import write_kubeconfig
from simulator.cluster.server import BackgroundCluster
from tests.k8s.conftest import EAST, TEST_TIMEOUTS, closed_port

DOWN = ClusterId("kubeedge-down")


@pytest.fixture
def two_clusters(cluster: BackgroundCluster, tmp_path: Path, clock: FakeClock) -> KubernetesGateway:
    kubeconfig = write_kubeconfig(
        tmp_path / "kubeconfig", {EAST: cluster.url, DOWN: f"http://127.0.0.1:{closed_port()}"}
    )
    return KubernetesGateway(ClusterClients({EAST: EAST, DOWN: DOWN}, kubeconfig), clock=clock, timeouts=TEST_TIMEOUTS)


def test_before_any_probe_nothing_is_claimed(two_clusters: KubernetesGateway) -> None:
    assert two_clusters.health() == [ClusterHealth(DOWN, DOWN), ClusterHealth(EAST, EAST)]


def test_a_reachable_cluster_reports_its_version_and_latency(two_clusters: KubernetesGateway, clock: FakeClock) -> None:
    health = two_clusters.probe(EAST)
    assert health.reachable is True
    assert health.version is not None
    assert health.version.startswith("v1.32")
    assert health.latency_s == 0.0  # the FakeClock did not move: latency is read on the injected clock
    assert health.checked_at == clock.now()
    assert health.last_error is None


def test_an_unreachable_cluster_reports_why_and_keeps_it(two_clusters: KubernetesGateway, clock: FakeClock) -> None:
    failed_at = clock.now()
    health = two_clusters.probe(DOWN)
    assert health.reachable is False
    assert health.latency_s is None
    assert health.last_error is not None
    assert "cluster kubeedge-down: read the server version: unreachable" in health.last_error
    assert health.last_error_at == failed_at
    clock.advance(60)
    assert two_clusters.probe(EAST).reachable is True
    assert [h.last_error for h in two_clusters.health()] == [health.last_error, None]


def test_a_missing_object_is_not_the_clusters_error(two_clusters: KubernetesGateway) -> None:
    with pytest.raises(PermanentClusterError):
        two_clusters.get_deployment(EAST, "default", "nowhere")
    assert two_clusters.probe(EAST).last_error is None
