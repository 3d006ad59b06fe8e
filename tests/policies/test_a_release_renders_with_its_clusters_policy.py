"""A release rendered for a central site carries its cluster's policy (requests from limits by the ratio, host-group
node affinity, exclusive-host tolerations, soft anti-affinity) and its autoscaler; applied through the gateway to a
simulated central cluster, the API server stores all of it (the autoscaler validated as kube-apiserver does) and the
scheduler places the pod on the exclusive, tainted host group it may use. Computed requests never exceed limits and
hold the ratio within a unit (property test)."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kubernetes import client, config

from edgefleet.clock import FakeClock
from edgefleet.cloud.k8s.clients import ClusterClients
from edgefleet.cloud.k8s.errors import PermanentClusterError
from edgefleet.cloud.k8s.gateway import KubernetesGateway
from edgefleet.cloud.rollouts.rendering import NAMESPACE, namespace, render
from edgefleet.errors import ReleaseError
from edgefleet.ids import ClusterId, SiteId
from edgefleet.inventory import Inventory, load_inventory
from edgefleet.policies import (
    CPU_UNIT,
    EXCLUSIVE_TAINT,
    MEMORY_UNIT,
    Ratios,
    format_quantity,
    parse_quantity,
    request_for,
    requests_from_limits,
)
from edgefleet.releases import Release, load_release_text
from simulator.cluster.kubeconfig import write_kubeconfig
from simulator.cluster.nodes import site_boxes
from simulator.cluster.pods import PodTiming
from simulator.cluster.server import BackgroundCluster, start_cluster_in_background
from tests.k8s.conftest import TEST_TIMEOUTS
from tests.policies.central import CLUSTER, RELEASE, SITE, write_central
from tests.support.peers import wait_for

CENTRAL = ClusterId(CLUSTER)


@pytest.fixture
def inventory(tmp_path: Path) -> Inventory:
    (tmp_path / "sites").mkdir()
    return load_inventory(write_central(tmp_path / "sites"))


@pytest.fixture
def release(inventory: Inventory) -> Release:
    return load_release_text(RELEASE, "scan-upload-2.0.0.yaml", inventory)


def test_the_central_sites_workload_carries_every_policy(inventory: Inventory, release: Release) -> None:
    config_map, deployment, hpa = render(release, SiteId(CLUSTER), inventory, rollout_id=None)
    assert (config_map["kind"], deployment["kind"], hpa["kind"]) == (
        "ConfigMap",
        "Deployment",
        "HorizontalPodAutoscaler",
    )
    pod = deployment["spec"]["template"]["spec"]
    # 2 cores / 10 and 3Gi / 1.5; the release's own requests give way to the ratio.
    assert pod["containers"][0]["resources"] == {
        "requests": {"cpu": "200m", "memory": "2Gi"},
        "limits": {"cpu": "2", "memory": "3Gi"},
    }
    # The edgefleet namespace goes to the bigdata group, which it may use while it is exclusive.
    assert pod["affinity"]["nodeAffinity"] == {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [
                {"matchExpressions": [{"key": "edgefleet.io/host-group", "operator": "In", "values": ["bigdata"]}]}
            ]
        }
    }
    assert {"key": EXCLUSIVE_TAINT, "operator": "Equal", "value": "bigdata", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    preferred = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert preferred == [
        {
            "weight": 100,
            "podAffinityTerm": {
                "labelSelector": {
                    "matchExpressions": [
                        {"key": "app.kubernetes.io/name", "operator": "In", "values": ["video-transcode"]}
                    ]
                },
                "topologyKey": "kubernetes.io/hostname",
            },
        }
    ]
    # One scan-upload per node stays required beside the policy's preference.
    assert pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    # The autoscaler owns the replicas.
    assert "replicas" not in deployment["spec"]
    assert hpa["spec"] == {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "scan-upload-central-x"},
        "minReplicas": 1,
        "maxReplicas": 3,
        "metrics": [
            {
                "type": "Resource",
                "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
            }
        ],
    }


def test_a_cluster_without_policy_renders_as_before(tmp_path: Path) -> None:
    plain = SITE[: SITE.index("  policy:")]
    (tmp_path / "central-x.yaml").write_text(plain)
    inventory = load_inventory(tmp_path)
    release = load_release_text(RELEASE.replace("  autoscaling:", "  # autoscaling:"), "r.yaml", inventory)
    [_, deployment] = render(release, SiteId(CLUSTER), inventory, rollout_id=None)
    pod = deployment["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["requests"] == {"cpu": "1", "memory": "1Gi"}
    assert "nodeAffinity" not in pod["affinity"]
    assert "preferredDuringSchedulingIgnoredDuringExecution" not in str(pod)
    assert deployment["spec"]["replicas"] == 3


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        ("maxReplicas: 3", "maxReplicas: 0", "spec.autoscaling.maxReplicas: 0 is below minReplicas (1)"),
        (
            "minReplicas: 1",
            "minReplicas: 0",
            "spec.autoscaling.minReplicas: 0 replicas: an autoscaler keeps at least 1",
        ),
        ("cpuUtilization: 70", "cpuUtilization: 0", "spec.autoscaling.cpuUtilization: 0 is no utilization target"),
        (", cpuUtilization: 70", "", "spec.autoscaling: an autoscaler aims at something"),
        ("cpuUtilization: 70", "memoryUtilization: 70, cpuUtilization: 70", None),
    ],
)
def test_autoscaling_settings_are_checked(inventory: Inventory, old: str, new: str, reason: str | None) -> None:
    text = RELEASE.replace(old, new)
    if reason is None:
        assert load_release_text(text, "r.yaml", inventory).autoscaling is not None
        return
    with pytest.raises(ReleaseError) as caught:
        load_release_text(text, "r.yaml", inventory)
    assert [p.reason for p in caught.value.problems if reason.split(": ", 1)[1] in p.reason], caught.value.problems
    assert any(str(p).startswith(f"r.yaml:11: {reason.split(':', 1)[0]}") for p in caught.value.problems)


@pytest.fixture
def central(inventory: Inventory) -> Iterator[BackgroundCluster]:
    boxes = site_boxes(inventory, SiteId(CLUSTER))
    running = start_cluster_in_background(CLUSTER, boxes, controllers=True, pod_timing=PodTiming().scaled(0.05))
    yield running
    running.stop()


@pytest.fixture
def gateway(central: BackgroundCluster, tmp_path: Path) -> Iterator[KubernetesGateway]:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", {CENTRAL: central.url})
    built = KubernetesGateway(ClusterClients({CENTRAL: CLUSTER}, kubeconfig), clock=FakeClock(), timeouts=TEST_TIMEOUTS)
    yield built
    built.close()


def _taint(central: BackgroundCluster, tmp_path: Path, node: str, group: str) -> None:
    """What the exclusive window's scheduler does (a person, here): taint the group's node."""
    api = client.CoreV1Api(config.new_client_from_config(str(tmp_path / "kubeconfig")))  # type: ignore[no-untyped-call]
    api.patch_node(node, {"spec": {"taints": [{"key": EXCLUSIVE_TAINT, "value": group, "effect": "NoSchedule"}]}})


def test_applied_to_a_simulated_central_cluster_it_runs_on_the_exclusive_host_group(
    inventory: Inventory, release: Release, central: BackgroundCluster, gateway: KubernetesGateway, tmp_path: Path
) -> None:
    _taint(central, tmp_path, "central-x-node-03", "bigdata")
    manifests = [namespace(), *render(release, SiteId(CLUSTER), inventory, rollout_id="r1")]
    for manifest in manifests:
        gateway.apply(CENTRAL, manifest)
    stored = gateway.get(CENTRAL, "HorizontalPodAutoscaler", "scan-upload-central-x", namespace=NAMESPACE)
    assert (stored["apiVersion"], stored["spec"]["maxReplicas"]) == ("autoscaling/v2", 3)
    deployment = gateway.get_deployment(CENTRAL, NAMESPACE, "scan-upload-central-x")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["requests"] == {"cpu": "200m", "memory": "2Gi"}

    def placed() -> list[str] | None:
        pods = gateway.list_pods(CENTRAL, label_selector="app.kubernetes.io/name=scan-upload").items
        running = [p["spec"].get("nodeName") for p in pods if p["status"].get("phase") == "Running"]
        return running or None

    # The one replica (no autoscaler runs in the simulator) on the tainted bigdata node it tolerates.
    assert wait_for(placed, timeout=30, what="scan-upload to run") == ["central-x-node-03"]


def test_the_simulated_api_server_refuses_a_bad_autoscaler(gateway: KubernetesGateway) -> None:
    gateway.apply(CENTRAL, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
    bad: dict[str, Any] = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 3,
            "maxReplicas": 2,
        },
    }
    with pytest.raises(PermanentClusterError) as caught:
        gateway.apply(CENTRAL, bad)
    assert "spec.maxReplicas: Invalid value: 2: must be greater than or equal to `minReplicas`" in str(caught.value)
    bad["spec"]["maxReplicas"] = 4
    assert gateway.apply(CENTRAL, bad)["spec"]["minReplicas"] == 3


quantities = st.fractions(min_value=Fraction(1, 1000), max_value=Fraction(512), max_denominator=1000)
ratios = st.fractions(min_value=1, max_value=20, max_denominator=100)


@given(st.sampled_from(["cpu", "memory"]), quantities, ratios)
def test_computed_requests_never_exceed_limits_and_hold_the_ratio_within_a_unit(
    resource: str, amount: Fraction, ratio: Fraction
) -> None:
    unit = CPU_UNIT if resource == "cpu" else MEMORY_UNIT
    # Limits as people write them: whole millicores, or whole bytes of a size up to 512Gi.
    limit = Fraction(round(amount * 1000), 1000) if resource == "cpu" else Fraction(round(amount * 1024**3))
    limit = max(limit, unit / 1000 if resource == "cpu" else Fraction(1))
    request = request_for(resource, limit, ratio)
    assert 0 < request <= limit
    assert abs(request - limit / ratio) <= unit
    # Written out, it reads back as the same amount.
    limits = {resource: format_quantity(resource, limit)}
    written = requests_from_limits(limits, {}, Ratios(cpu=ratio, memory=ratio))[resource]
    assert parse_quantity(written) == request


@pytest.mark.parametrize(
    ("limits", "ratios", "requests"),
    [
        ({"cpu": "4", "memory": "8Gi"}, Ratios(Fraction(10), Fraction(3, 2)), {"cpu": "400m", "memory": "5461Mi"}),
        ({"cpu": "1", "memory": "512Mi"}, Ratios(Fraction(1), Fraction(1)), {"cpu": "1", "memory": "512Mi"}),
        ({"cpu": "100m"}, Ratios(Fraction(1000), None), {"cpu": "1m"}),
        # Below a unit, the limit is its own request.
        ({"memory": "100Ki"}, Ratios(None, Fraction(2)), {"memory": "102400"}),
        # A GPU request stays as given; a resource without a ratio too.
        ({"cpu": "2", "nvidia.com/gpu": "1"}, Ratios(None, Fraction(2)), {"nvidia.com/gpu": "1"}),
    ],
)
def test_requests_from_limits_table(limits: dict[str, str], ratios: Ratios, requests: dict[str, str]) -> None:
    given_requests = {"nvidia.com/gpu": "1"} if "nvidia.com/gpu" in limits else {}
    assert requests_from_limits(limits, given_requests, ratios) == requests
