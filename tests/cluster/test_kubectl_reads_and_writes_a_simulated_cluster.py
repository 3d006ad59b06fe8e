"""The real kubectl (the one on PATH; the wheel's 1.37 for the representative tests) against a simulated cluster: the tables, selectors, JSON, create/delete and watch a
user of a real KubeEdge cluster would see."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from typing import Any

from simulator.cluster.nodes import ClusterBox
from simulator.cluster.resources import NODES
from simulator.cluster.server import BackgroundCluster
from simulator.cluster.store import Store
from tests.cluster.conftest import Kubectl


def _rows(output: str) -> list[list[str]]:
    return [line.split() for line in output.strip().splitlines()]


def test_nodes_of_a_site_show_kubeedges_roles(each_kubectl: Kubectl, boxes: list[ClusterBox]) -> None:
    kubectl = each_kubectl
    shown = _rows(kubectl("get", "nodes", "-l", f"apps.kubeedge.io/belonging-to={boxes[0].site}").stdout)
    assert shown[0] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert sorted(r[0] for r in shown[1:]) == sorted(b.name for b in boxes)
    assert {(r[1], r[2]) for r in shown[1:]} == {("Ready", "agent,edge")}
    assert "No resources found" in kubectl("get", "nodes", "-l", "apps.kubeedge.io/belonging-to=elsewhere").stderr
    wide = _rows(kubectl("get", "nodes", "-o", "wide").stdout)
    assert wide[0][5:7] == ["INTERNAL-IP", "EXTERNAL-IP"]


def test_nodes_as_json_carry_capacity_and_gpus(kubectl: Kubectl, boxes: list[ClusterBox]) -> None:
    listed: dict[str, Any] = json.loads(kubectl("get", "nodes", "-o", "json").stdout)
    gpus = {n["metadata"]["name"]: n["status"]["allocatable"].get("nvidia.com/gpu") for n in listed["items"]}
    assert gpus == {b.name: (str(b.gpus) if b.gpus else None) for b in boxes}
    assert any(b.gpus for b in boxes)
    ready = [c for c in listed["items"][0]["status"]["conditions"] if c["type"] == "Ready"]
    assert ready[0]["status"] == "True"
    assert ready[0]["lastHeartbeatTime"].endswith("Z")


def test_namespaces_and_config_maps_in_all_namespaces(kubectl: Kubectl) -> None:
    namespaces = _rows(kubectl("get", "ns").stdout)
    assert namespaces[0] == ["NAME", "STATUS", "AGE"]
    assert {r[0] for r in namespaces[1:]} == {"default", "kube-node-lease", "kube-public", "kube-system"}
    assert "No resources found" in kubectl("get", "cm", "-A").stderr
    kubectl("create", "configmap", "x", "--from-literal=a=b")
    every = _rows(kubectl("get", "cm", "-A").stdout)
    assert every == [["NAMESPACE", "NAME", "DATA", "AGE"], ["default", "x", "1", every[1][3]]]


def test_create_get_delete_a_config_map(each_kubectl: Kubectl) -> None:
    kubectl = each_kubectl
    assert kubectl("create", "configmap", "x", "--from-literal=a=b").stdout.strip() == "configmap/x created"
    shown = json.loads(kubectl("get", "configmap", "x", "-o", "json").stdout)
    assert shown["data"] == {"a": "b"}
    assert shown["metadata"]["namespace"] == "default"
    again = kubectl("create", "configmap", "x", "--from-literal=a=b", check=False)
    assert 'configmaps "x" already exists' in again.stderr
    # kubectl 1.37 adds "from default namespace".
    assert kubectl("delete", "configmap", "x").stdout.startswith('configmap "x" deleted')
    gone = kubectl("get", "configmap", "x", check=False)
    assert gone.returncode != 0
    assert 'configmaps "x" not found' in gone.stderr


def test_get_nodes_watch_sees_a_change(
    kubectl: Kubectl, kubeconfig: Any, cluster: BackgroundCluster, tmp_path: Any
) -> None:
    env = {**os.environ, "HOME": str(tmp_path / "home"), "KUBECONFIG": str(kubeconfig)}
    watching = subprocess.Popen(
        ["kubectl", "--kubeconfig", str(kubeconfig), "get", "nodes", "-w", "--request-timeout=20s"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert watching.stdout is not None
        header = watching.stdout.readline().split()
        assert header == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
        first = [watching.stdout.readline() for _ in range(len(cluster.call(lambda s: s.list_objects(NODES).items)))]
        name = first[0].split()[0]

        def cordon(store: Store) -> None:
            node = store.get(NODES, "", name)
            store.update(NODES, {**node, "spec": {"unschedulable": True}})

        cluster.call(cordon)
        changed = watching.stdout.readline().split()
        assert changed[:2] == [name, "Ready,SchedulingDisabled"]
    finally:
        watching.send_signal(signal.SIGTERM)
        watching.communicate(timeout=10)
