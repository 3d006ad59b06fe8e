"""Real kubectl (on PATH) against a simulated cluster with its workload controllers running: a Deployment pinned
to a site's node group rolls out (``rollout status``), takes a new image, rolls back (``rollout undo`` restores the
old image and the old ReplicaSet), restarts (a new ReplicaSet), lists its revisions (``rollout history``), is
Available for ``kubectl wait``, and leaves events ``kubectl get events`` lists; a DaemonSet on the site's GPU boxes
rolls out and back (``rollout status ds``, ControllerRevisions). Pods start in a tenth of the default times."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simulator.cluster.kubeconfig import write_kubeconfig
from simulator.cluster.nodes import ClusterBox
from simulator.cluster.pods import PodTiming
from simulator.cluster.server import BackgroundCluster, start_cluster_in_background
from tests.cluster.conftest import Kubectl, kubectl_runner
from tests.support.clusters import pinned_deployment
from tests.support.kubectls import KUBECTLS
from tests.support.peers import wait_for


@pytest.fixture
def cluster(boxes: list[ClusterBox]) -> Iterator[BackgroundCluster]:
    running = start_cluster_in_background(boxes[0].site, boxes, controllers=True, pod_timing=PodTiming().scaled(0.1))
    yield running
    running.stop()


@pytest.fixture(params=KUBECTLS)
def kubectl(request: pytest.FixtureRequest, cluster: BackgroundCluster, tmp_path: Path) -> Kubectl:
    """The kubectl on PATH, then the wheel's 1.37: a newer kubectl follows rollouts with a streaming list
    (``sendInitialEvents``), an older one with a list and a watch; the server must serve both."""
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", {cluster.api.name: cluster.url})
    return kubectl_runner(str(request.param), kubeconfig, tmp_path)


def _get(kubectl: Kubectl, *what: str) -> Any:
    return json.loads(kubectl("get", *what, "-o", "json").stdout)


def test_a_deployment_rolls_out_updates_rolls_back_and_restarts(kubectl: Kubectl, boxes: list[ClusterBox]) -> None:
    group = boxes[0].node_group or boxes[0].site
    kubectl("apply", "--validate=false", "-f", "-", stdin=pinned_deployment(group, replicas=3, change_cause="first"))
    done = kubectl("rollout", "status", "deploy/web", "--timeout=60s")
    assert 'deployment "web" successfully rolled out' in done.stdout
    pods = _get(kubectl, "pods", "-l", "app=web")["items"]
    site_nodes = {b.name for b in boxes}
    assert len(pods) == 3
    assert all(p["spec"]["nodeName"] in site_nodes for p in pods)
    on_node = kubectl("get", "pods", "-o", "wide", "--field-selector", f"spec.nodeName={pods[0]['spec']['nodeName']}")
    assert pods[0]["metadata"]["name"] in on_node.stdout
    assert "Running" in on_node.stdout
    (first,) = _get(kubectl, "rs", "-l", "app=web")["items"]

    kubectl("set", "image", "deploy/web", "web=registry.example/web:2.0")
    kubectl("rollout", "status", "deploy/web", "--timeout=60s")
    images = {p["spec"]["containers"][0]["image"] for p in _get(kubectl, "pods", "-l", "app=web")["items"]}
    assert images == {"registry.example/web:2.0"}
    history = kubectl("rollout", "history", "deploy/web").stdout
    assert "1         first" in history
    assert "2 " in history

    kubectl("rollout", "undo", "deploy/web")
    kubectl("rollout", "status", "deploy/web", "--timeout=60s")
    deployment = _get(kubectl, "deploy", "web")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/web:1.0"
    assert deployment["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    back = _get(kubectl, "rs", first["metadata"]["name"])
    assert back["spec"]["replicas"] == 3  # the old ReplicaSet is the new one again

    kubectl("rollout", "restart", "deploy/web")
    kubectl("rollout", "status", "deploy/web", "--timeout=60s")
    sets = _get(kubectl, "rs", "-l", "app=web")["items"]
    assert len(sets) == 3
    (current,) = [rs for rs in sets if rs["spec"]["replicas"] == 3]
    assert current["metadata"]["name"] != first["metadata"]["name"]
    assert "kubectl.kubernetes.io/restartedAt" in current["spec"]["template"]["metadata"]["annotations"]

    everything = kubectl("get", "all").stdout  # the "all" category of discovery
    assert "deployment.apps/web" in everything
    assert f"replicaset.apps/{current['metadata']['name']}" in everything
    assert "pod/web-" in everything
    waited = kubectl("wait", "--for=condition=Available", "deploy/web", "--timeout=30s")
    assert "condition met" in waited.stdout
    events = kubectl("get", "events").stdout
    for reason in ("ScalingReplicaSet", "SuccessfulCreate", "SuccessfulDelete", "Scheduled", "Pulled", "Started"):
        assert reason in events
    assert "deployment/web" in events
    described = kubectl("describe", "deploy", "web").stdout  # events by involvedObject.uid and friends
    assert "ScalingReplicaSet" in described
    assert "MinimumReplicasAvailable" in described

    # Draining a node (cordon, then delete its pods: no policy group, so kubectl deletes) moves its pods elsewhere.
    drained = _get(kubectl, "pods", "-l", "app=web")["items"][0]["spec"]["nodeName"]
    kubectl("drain", drained, "--ignore-daemonsets", "--timeout=30s")

    def moved() -> list[dict[str, Any]] | None:
        pods = _get(kubectl, "pods", "-l", "app=web")["items"]
        ready = [p for p in pods if p["status"].get("phase") == "Running"]
        return pods if len(ready) == 3 and drained not in {p["spec"]["nodeName"] for p in pods} else None

    wait_for(moved, timeout=30, interval=0.2, what=f"web's pods to leave the drained {drained}")


def test_a_daemon_set_on_the_sites_gpu_boxes_rolls_out_and_back(kubectl: Kubectl, boxes: list[ClusterBox]) -> None:
    gpu_boxes = sorted(b.name for b in boxes if b.gpus)
    assert gpu_boxes
    values = ", ".join(gpu_boxes)
    kubectl(
        "apply",
        "--validate=false",
        "-f",
        "-",
        stdin=f"""
apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: gpu-agent}}
spec:
  selector: {{matchLabels: {{app: gpu-agent}}}}
  template:
    metadata: {{labels: {{app: gpu-agent}}}}
    spec:
      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
            - matchExpressions: [{{key: kubernetes.io/hostname, operator: In, values: [{values}]}}]
      containers:
      - {{name: agent, image: "agent:1", resources: {{limits: {{nvidia.com/gpu: 1}}}}}}
""",
    )
    done = kubectl("rollout", "status", "ds/gpu-agent", "--timeout=60s")
    assert 'daemon set "gpu-agent" successfully rolled out' in done.stdout
    pods = _get(kubectl, "pods", "-l", "app=gpu-agent")["items"]
    assert sorted(p["spec"]["nodeName"] for p in pods) == gpu_boxes
    kubectl("set", "image", "ds/gpu-agent", "agent=agent:2")
    kubectl("rollout", "status", "ds/gpu-agent", "--timeout=60s")
    assert {p["spec"]["containers"][0]["image"] for p in _get(kubectl, "pods", "-l", "app=gpu-agent")["items"]} == {
        "agent:2"
    }
    assert "2 " in kubectl("rollout", "history", "ds/gpu-agent").stdout
    kubectl("rollout", "undo", "ds/gpu-agent")
    kubectl("rollout", "status", "ds/gpu-agent", "--timeout=60s")
    assert _get(kubectl, "ds", "gpu-agent")["spec"]["template"]["spec"]["containers"][0]["image"] == "agent:1"
    revisions = kubectl("get", "controllerrevisions").stdout
    assert "daemonset.apps/gpu-agent" in revisions
    assert "REVISION" in revisions
    kubectl("delete", "ds", "gpu-agent")
    kubectl("wait", "--for=delete", "pod", "-l", "app=gpu-agent", "--timeout=30s")


def test_a_deployment_that_cannot_progress_fails_rollout_status(kubectl: Kubectl) -> None:
    kubectl(
        "apply",
        "--validate=false",
        "-f",
        "-",
        stdin="""
apiVersion: apps/v1
kind: Deployment
metadata: {name: stuck}
spec:
  replicas: 1
  progressDeadlineSeconds: 2
  selector: {matchLabels: {app: stuck}}
  template:
    metadata: {labels: {app: stuck}}
    spec:
      nodeSelector: {apps.kubeedge.io/belonging-to: nowhere}
      containers: [{name: stuck, image: "stuck:1"}]
""",
    )
    done = kubectl("rollout", "status", "deploy/stuck", "--timeout=30s", check=False)
    assert done.returncode != 0
    assert 'deployment "stuck" exceeded its progress deadline' in done.stderr
    pending = kubectl("get", "events", "--field-selector", "reason=FailedScheduling").stdout
    assert "didn't match Pod's node affinity/selector" in pending
