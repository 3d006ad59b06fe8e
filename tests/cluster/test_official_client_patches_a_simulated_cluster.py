"""The official Python client (``kubernetes``) patching a simulated cluster: a dict goes as a strategic merge
patch, a list as a JSON patch, ``_content_type`` picks a merge patch; the scale subresource of a deployment."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from simulator.cluster.nodes import ClusterBox


@pytest.fixture
def api_client(kubeconfig: Path) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(kubeconfig))


def test_patch_a_config_map_three_ways(api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    made = core.create_namespaced_config_map(
        "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="settings"), data={"a": "1", "b": "2"})
    )
    strategic = core.patch_namespaced_config_map("settings", "default", {"data": {"b": None, "c": "3"}})
    assert strategic.data == {"a": "1", "c": "3"}
    assert int(strategic.metadata.resource_version) > int(made.metadata.resource_version)
    json_patch = core.patch_namespaced_config_map(
        "settings", "default", [{"op": "replace", "path": "/data/a", "value": "10"}]
    )
    assert json_patch.data == {"a": "10", "c": "3"}
    merged = core.patch_namespaced_config_map(
        "settings", "default", {"metadata": {"labels": {"x": "y"}}}, _content_type="application/merge-patch+json"
    )
    assert (merged.metadata.labels, merged.data) == ({"x": "y"}, {"a": "10", "c": "3"})
    with pytest.raises(ApiException) as stale:
        core.patch_namespaced_config_map(
            "settings", "default", {"metadata": {"resourceVersion": made.metadata.resource_version}}
        )
    assert stale.value.status == 409
    with pytest.raises(ApiException) as missing:
        core.patch_namespaced_config_map("nothing", "default", {"data": {"a": "b"}})
    assert missing.value.status == 404


def test_patch_a_node_and_its_status(api_client: client.ApiClient, boxes: list[ClusterBox]) -> None:
    core = client.CoreV1Api(api_client)
    name = boxes[0].name
    cordoned = core.patch_node(name, {"spec": {"unschedulable": True}, "metadata": {"labels": {"wave": "2"}}})
    assert cordoned.spec.unschedulable is True
    assert cordoned.metadata.labels["wave"] == "2"
    condition = {"type": "Ready", "status": "False", "reason": "Patched"}
    # conditions merge by type in Kubernetes' definitions: the other conditions stay.
    before = {c.type for c in cordoned.status.conditions}
    patched = core.patch_node_status(name, {"status": {"conditions": [condition]}})
    ready = next(c for c in patched.status.conditions if c.type == "Ready")
    assert (ready.status, ready.reason) == ("False", "Patched")
    assert {c.type for c in patched.status.conditions} == before


def test_scale_a_deployment(api_client: client.ApiClient) -> None:
    apps = client.AppsV1Api(api_client)
    labels = {"app": "web"}
    apps.create_namespaced_deployment(
        "default",
        client.V1Deployment(
            metadata=client.V1ObjectMeta(name="web"),
            spec=client.V1DeploymentSpec(
                replicas=1,
                selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels),
                    spec=client.V1PodSpec(containers=[client.V1Container(name="app", image="app:1")]),
                ),
            ),
        ),
    )
    scale = apps.read_namespaced_deployment_scale("web", "default")
    assert (scale.spec.replicas, scale.status.selector) == (1, "app=web")
    patched = apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 3}})
    assert patched.spec.replicas == 3
    assert apps.read_namespaced_deployment("web", "default").spec.replicas == 3
