"""A simulated cluster serves ``autoscaling/v2`` HorizontalPodAutoscalers as kube-apiserver does, for kubectl:
discovery and OpenAPI (``kubectl apply`` validates on the server, an unknown field refused), ``minReplicas``
defaulted, bounds validated with the API server's words, ``kubectl get hpa``'s columns. No controller scales by
them here (docs/simulated-clusters.md)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator.cluster.kubeconfig import write_kubeconfig
from simulator.cluster.nodes import ClusterBox
from simulator.cluster.server import BackgroundCluster, start_cluster_in_background
from tests.cluster.conftest import Kubectl, kubectl_runner
from tests.support.kubectls import ON_PATH

HPA = """\
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: default}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  maxReplicas: 5
  metrics:
    - type: Resource
      resource: {name: cpu, target: {type: Utilization, averageUtilization: 70}}
"""


@pytest.fixture
def admitting(boxes: list[ClusterBox]) -> Iterator[BackgroundCluster]:
    # With its controllers, the API server's defaulting and admission run (``simulator.cluster.admission``).
    running = start_cluster_in_background(boxes[0].site, boxes, controllers=True)
    yield running
    running.stop()


@pytest.fixture
def kubectl(admitting: BackgroundCluster, tmp_path: Path) -> Kubectl:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", {admitting.api.name: admitting.url})
    return kubectl_runner(ON_PATH, kubeconfig, tmp_path)


def test_kubectl_applies_gets_and_is_refused_autoscalers(kubectl: Kubectl) -> None:
    assert "horizontalpodautoscaler.autoscaling/web created" in kubectl("apply", "-f", "-", stdin=HPA).stdout
    got = kubectl("get", "hpa", "web", "-o", "jsonpath={.spec.minReplicas}").stdout
    assert got == "1"
    table = kubectl("get", "hpa").stdout.splitlines()
    assert table[0].split() == ["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"]
    assert table[1].split()[:7] == ["web", "Deployment/web", "cpu:", "<unknown>/70%", "1", "5", "0"]

    typo = kubectl("apply", "-f", "-", stdin=HPA.replace("maxReplicas: 5", "maxReplica: 5"), check=False)
    assert typo.returncode != 0
    assert 'unknown field "spec.maxReplica"' in typo.stderr
    backwards = kubectl("apply", "-f", "-", stdin=HPA.replace("maxReplicas: 5", "maxReplicas: 5\n  minReplicas: 6"),
                        check=False)  # fmt: skip
    assert backwards.returncode != 0
    assert "spec.maxReplicas: Invalid value: 5: must be greater than or equal to `minReplicas`" in backwards.stderr
    assert "maxReplicas" in kubectl("explain", "hpa.spec").stdout
