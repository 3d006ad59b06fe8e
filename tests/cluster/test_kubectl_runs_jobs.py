"""Real kubectl (on PATH, then the wheel's 1.37) runs batch/v1 Jobs on a simulated cluster with its controllers:
``kubectl create job`` (sent in protobuf) and ``kubectl apply`` of a manifest both run to completion for
``kubectl wait --for=condition=complete``; ``kubectl get jobs`` prints STATUS, COMPLETIONS, DURATION and AGE as
Kubernetes' printer does, and ``-o wide`` the containers, images and the generated selector; the pods show
Completed; a Job that restarts Always is refused with the API server's words; ``kubectl delete job`` takes its
pods with it. Pods start and run in a tenth of the default times."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator.cluster.kubeconfig import write_kubeconfig
from simulator.cluster.nodes import ClusterBox
from simulator.cluster.pods import PodTiming
from simulator.cluster.server import BackgroundCluster, start_cluster_in_background
from tests.cluster.conftest import Kubectl, kubectl_runner
from tests.support.kubectls import KUBECTLS
from tests.support.peers import wait_for

TRAINING = """
apiVersion: batch/v1
kind: Job
metadata:
  name: train
spec:
  completions: 2
  parallelism: 2
  template:
    metadata:
      annotations:
        sim.edgefleet.io/run-seconds: "1"
    spec:
      restartPolicy: Never
      containers:
        - name: train
          image: registry.example/train:1
          resources:
            requests: {cpu: 100m, memory: 64Mi}
"""


@pytest.fixture
def cluster(boxes: list[ClusterBox]) -> Iterator[BackgroundCluster]:
    running = start_cluster_in_background(boxes[0].site, boxes, controllers=True, pod_timing=PodTiming().scaled(0.1))
    yield running
    running.stop()


@pytest.fixture(params=KUBECTLS)
def kubectl(request: pytest.FixtureRequest, cluster: BackgroundCluster, tmp_path: Path) -> Kubectl:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", {cluster.api.name: cluster.url})
    return kubectl_runner(str(request.param), kubeconfig, tmp_path)


def test_jobs_run_to_completion_for_kubectl(kubectl: Kubectl) -> None:
    kubectl("create", "job", "once", "--image=registry.example/batch:1", "--", "echo", "done")
    kubectl("apply", "-f", "-", stdin=TRAINING)
    kubectl("wait", "--for=condition=complete", "job/once", "job/train", "--timeout=60s")

    listed = kubectl("get", "jobs").stdout.splitlines()
    assert listed[0].split() == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    rows = {line.split()[0]: line.split() for line in listed[1:]}
    assert rows["once"][1:3] == ["Complete", "1/1"]
    assert rows["train"][1:3] == ["Complete", "2/2"]
    assert rows["train"][3].endswith("s")  # a duration such as "2s"

    train = json.loads(kubectl("get", "job", "train", "-o", "json").stdout)
    uid = train["metadata"]["uid"]
    assert train["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    wide = kubectl("get", "job", "train", "-o", "wide").stdout.splitlines()
    assert wide[0].split()[5:] == ["CONTAINERS", "IMAGES", "SELECTOR"]
    assert wide[1].split()[5:] == ["train", "registry.example/train:1", f"batch.kubernetes.io/controller-uid={uid}"]

    pods = kubectl("get", "pods", "-l", "job-name=train").stdout.splitlines()
    assert len(pods) == 3
    assert all(line.split()[1:3] == ["0/1", "Completed"] for line in pods[1:])
    once = json.loads(kubectl("get", "job", "once", "-o", "json").stdout)
    assert once["spec"]["template"]["spec"]["containers"][0]["command"] == ["echo", "done"]
    assert once["spec"]["backoffLimit"] == 6

    kubectl("delete", "job", "train")

    def gone() -> bool:
        return kubectl("get", "pods", "-l", "job-name=train", "-o", "name").stdout.strip() == ""

    wait_for(gone, timeout=10)


def test_a_job_that_restarts_always_is_refused(kubectl: Kubectl) -> None:
    refused = kubectl(
        "apply", "-f", "-", stdin=TRAINING.replace("restartPolicy: Never", "restartPolicy: Always"), check=False
    )
    assert refused.returncode != 0
    assert (
        'The Job "train" is invalid: spec.template.spec.restartPolicy: Unsupported value: "Always": '
        'supported values: "OnFailure", "Never"'
    ) in refused.stderr
    assert kubectl("get", "jobs", "-o", "name").stdout.strip() == ""
