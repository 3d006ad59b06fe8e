"""The real kubectl (the one on PATH; client-side apply with the wheel's 1.37 too) patching a simulated cluster: ``label``, ``annotate``, ``cordon``/``uncordon``, ``patch``
of each type, ``scale``; and what the server answers to patches it must refuse."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from simulator.cluster.nodes import ClusterBox
from simulator.cluster.resources import DEPLOYMENTS, NODES
from simulator.cluster.server import BackgroundCluster
from tests.cluster.conftest import Kubectl

DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
    "spec": {
        "replicas": 1,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {
                "containers": [
                    {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}]},
                    {"name": "sidecar", "image": "proxy:1"},
                ]
            },
        },
    },
}


def _get(kubectl: Kubectl, *what: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(kubectl("get", *what, "-o", "json").stdout)
    return found


@pytest.fixture
def deployment(kubectl: Kubectl, tmp_path: Path) -> dict[str, Any]:
    manifest = tmp_path / "web.json"
    manifest.write_text(json.dumps(DEPLOYMENT))
    assert kubectl("create", "-f", str(manifest)).stdout.strip() == "deployment.apps/web created"
    return _get(kubectl, "deploy", "web")


def test_label_and_annotate_a_node(kubectl: Kubectl, boxes: list[ClusterBox]) -> None:
    node = boxes[0].name
    before = _get(kubectl, "node", node)["metadata"]
    assert kubectl("label", "node", node, "edgefleet.io/wave=1").stdout.strip() == f"node/{node} labeled"
    assert kubectl("annotate", "node", node, "edgefleet.io/note=gpu swapped").stdout.strip() == f"node/{node} annotated"
    after = _get(kubectl, "node", node)["metadata"]
    assert after["labels"] == {**before["labels"], "edgefleet.io/wave": "1"}
    assert after["annotations"]["edgefleet.io/note"] == "gpu swapped"
    assert int(after["resourceVersion"]) > int(before["resourceVersion"])
    shown = kubectl("get", "nodes", "-l", "edgefleet.io/wave=1", "-o", "name").stdout.split()
    assert shown == [f"node/{node}"]
    # Changing a label needs --overwrite, as on a real cluster (kubectl checks before it patches).
    refused = kubectl("label", "node", node, "edgefleet.io/wave=2", check=False)
    assert "already has a value (1)" in refused.stderr
    kubectl("label", "node", node, "edgefleet.io/wave-")
    assert "edgefleet.io/wave" not in _get(kubectl, "node", node)["metadata"]["labels"]


def test_cordon_and_uncordon_a_node(kubectl: Kubectl, boxes: list[ClusterBox]) -> None:
    node = boxes[0].name
    assert kubectl("cordon", node).stdout.strip() == f"node/{node} cordoned"
    assert _get(kubectl, "node", node)["spec"]["unschedulable"] is True
    assert kubectl("get", "nodes", "--field-selector", "spec.unschedulable=true", "-o", "name").stdout.split() == [
        f"node/{node}"
    ]
    status_line = next(line for line in kubectl("get", "nodes").stdout.splitlines() if line.startswith(node + " "))
    assert status_line.split()[1] == "Ready,SchedulingDisabled"
    assert kubectl("uncordon", node).stdout.strip() == f"node/{node} uncordoned"
    assert "unschedulable" not in _get(kubectl, "node", node)["spec"]


def test_patch_of_each_type(kubectl: Kubectl, deployment: dict[str, Any]) -> None:
    generation = deployment["metadata"]["generation"]
    strategic = '{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"app:2"}]}}}}'
    assert kubectl("patch", "deploy", "web", "-p", strategic).stdout.strip() == "deployment.apps/web patched"
    patched = _get(kubectl, "deploy", "web")
    containers = patched["spec"]["template"]["spec"]["containers"]
    assert [(c["name"], c["image"]) for c in containers] == [("app", "app:2"), ("sidecar", "proxy:1")]
    assert containers[0]["env"] == [{"name": "A", "value": "1"}]
    assert patched["metadata"]["generation"] == generation + 1

    merge = '{"spec":{"template":{"spec":{"containers":[{"name":"only","image":"o:1"}]}}}}'
    kubectl("patch", "deploy", "web", "--type=merge", "-p", merge)
    assert _get(kubectl, "deploy", "web")["spec"]["template"]["spec"]["containers"] == [
        {"name": "only", "image": "o:1"}
    ]

    operations = (
        '[{"op":"replace","path":"/spec/replicas","value":4},{"op":"add","path":"/metadata/labels/x","value":"y"}]'
    )
    kubectl("patch", "deploy", "web", "--type=json", "-p", operations)
    last = _get(kubectl, "deploy", "web")
    assert (last["spec"]["replicas"], last["metadata"]["labels"]["x"]) == (4, "y")
    assert last["metadata"]["generation"] == generation + 3

    # A patch that changes nothing is no write.
    unchanged = kubectl("patch", "deploy", "web", "--type=merge", "-p", '{"spec":{"replicas":4}}')
    assert unchanged.stdout.strip() == "deployment.apps/web patched (no change)"
    assert _get(kubectl, "deploy", "web")["metadata"]["resourceVersion"] == last["metadata"]["resourceVersion"]


def test_patch_refusals_read_as_the_api_servers(kubectl: Kubectl, deployment: dict[str, Any]) -> None:
    failing_test = kubectl(
        "patch", "deploy", "web", "--type=json", "-p", '[{"op":"test","path":"/spec/replicas","value":9}]', check=False
    )
    # kubectl prints an Invalid answer's causes; the cause is the JSON patch library's reason.
    assert failing_test.stderr.startswith("The request is invalid: ")
    assert "not equal to tested value 9" in failing_test.stderr
    stale = kubectl("patch", "deploy", "web", "--type=merge", "-p", '{"metadata":{"resourceVersion":"1"}}', check=False)
    assert 'Operation cannot be fulfilled on deployments.apps "web": the object has been modified' in stale.stderr
    missing = kubectl("patch", "deploy", "nope", "-p", '{"spec":{"replicas":2}}', check=False)
    assert 'deployments.apps "nope" not found' in missing.stderr
    no_key = kubectl(
        "patch", "deploy", "web", "-p", '{"spec":{"template":{"spec":{"containers":[{"image":"x"}]}}}}', check=False
    )
    assert "does not contain declared merge key: name" in no_key.stderr


def test_scale_a_deployment(kubectl: Kubectl, cluster: BackgroundCluster, deployment: dict[str, Any]) -> None:
    assert kubectl("scale", "deploy", "web", "--replicas=3").stdout.strip() == "deployment.apps/web scaled"
    scaled = _get(kubectl, "deploy", "web")
    assert scaled["spec"]["replicas"] == 3
    assert scaled["metadata"]["generation"] == deployment["metadata"]["generation"] + 1
    # With --current-replicas kubectl reads the Scale and writes it back with PUT.
    kubectl("scale", "deploy", "web", "--current-replicas=3", "--replicas=0")
    assert cluster.call(lambda s: s.get(DEPLOYMENTS, "default", "web"))["spec"]["replicas"] == 0
    wrong = kubectl("scale", "deploy", "web", "--current-replicas=5", "--replicas=1", check=False)
    assert "Expected replicas to be 5, was 0" in wrong.stderr


def test_scale_subresource_over_http(cluster: BackgroundCluster, deployment: dict[str, Any]) -> None:
    url = f"{cluster.url}/apis/apps/v1/namespaces/default/deployments/web/scale"
    with httpx.Client() as client:
        scale = client.get(url).json()
        assert (scale["kind"], scale["apiVersion"], scale["spec"], scale["status"]) == (
            "Scale",
            "autoscaling/v1",
            {"replicas": 1},
            {"replicas": 0, "selector": "app=web"},
        )
        stale = {**scale, "metadata": {**scale["metadata"], "resourceVersion": "1"}, "spec": {"replicas": 2}}
        assert client.put(url, json=stale).json()["reason"] == "Conflict"
        put = client.put(url, json={**scale, "spec": {"replicas": 2}})
        assert put.json()["spec"] == {"replicas": 2}
        negative = client.patch(
            url, content=b'{"spec":{"replicas":-1}}', headers={"content-type": "application/merge-patch+json"}
        )
        assert (negative.status_code, negative.json()["reason"]) == (422, "Invalid")
        json_patched = client.patch(
            url,
            content=b'[{"op":"replace","path":"/spec/replicas","value":6}]',
            headers={"content-type": "application/json-patch+json"},
        )
        assert json_patched.json()["spec"] == {"replicas": 6}
        assert client.get(f"{cluster.url}/api/v1/nodes/x/scale").status_code == 404
        discovery = client.get(f"{cluster.url}/apis/apps/v1").json()["resources"]
        entry = next(r for r in discovery if r["name"] == "deployments/scale")
        assert (entry["group"], entry["version"], entry["kind"]) == ("autoscaling", "v1", "Scale")


def test_patch_of_status_changes_only_status(cluster: BackgroundCluster, boxes: list[ClusterBox]) -> None:
    node = boxes[0].name
    url = f"{cluster.url}/api/v1/nodes/{node}"
    merge = {"content-type": "application/merge-patch+json"}
    with httpx.Client() as client:
        body = b'{"metadata":{"labels":{"via-status":"x"}},"status":{"phase":"Patched"}}'
        patched = client.patch(f"{url}/status", content=body, headers=merge).json()
        assert patched["status"]["phase"] == "Patched"
        assert "via-status" not in patched["metadata"]["labels"]
        main = client.patch(url, content=b'{"spec":{"unschedulable":true},"status":{"phase":"Lost"}}', headers=merge)
        assert main.json()["status"]["phase"] == "Patched"
        assert main.json()["spec"]["unschedulable"] is True


@pytest.mark.parametrize(
    ("content_type", "body", "code", "reason", "words"),
    [
        ("text/plain", b"{}", 415, "UnsupportedMediaType", "accepted media types include: application/json-patch+json"),
        ("application/json", b"{}", 415, "UnsupportedMediaType", "unknown format"),
        ("application/apply-patch+yaml", b"{}", 400, "BadRequest", "apiVersion"),
        ("application/apply-patch+yaml", b"a: [", 400, "BadRequest", "error decoding YAML"),
        ("application/merge-patch+json", b"{oops", 400, "BadRequest", "error decoding patch"),
        (
            "application/merge-patch+json",
            b'{"metadata":{"name":"other"}}',
            400,
            "BadRequest",
            "does not match the name",
        ),
        ("application/merge-patch+json", b'{"kind":"Pod"}', 400, "BadRequest", "kind"),
        (
            "application/merge-patch+json",
            b'{"metadata":{"labels":{"a":1}}}',
            422,
            "Invalid",
            ' "" is invalid: patch: Invalid value: "{',  # the patched object, then the decoder's words
        ),
        (
            "application/strategic-merge-patch+json",
            b'{"metadata":{"labels":{"a":1}}}',
            422,
            "Invalid",
            ' "" is invalid: patch: Invalid value: "map[metadata:map[labels:map[a:1]]]": json: cannot unmarshal number'
            " into Go struct field ObjectMeta.metadata.labels of type string",
        ),
    ],
)
def test_bad_patches_are_refused_over_http(
    cluster: BackgroundCluster,
    boxes: list[ClusterBox],
    content_type: str,
    body: bytes,
    code: int,
    reason: str,
    words: str,
) -> None:
    node = boxes[0].name
    before = cluster.call(lambda s: s.get(NODES, "", node))
    answer = httpx.patch(f"{cluster.url}/api/v1/nodes/{node}", content=body, headers={"content-type": content_type})
    assert (answer.status_code, answer.json()["reason"]) == (code, reason)
    assert words in answer.json()["message"]
    assert cluster.call(lambda s: s.get(NODES, "", node)) is before


def test_client_side_apply_configures_and_prunes_a_container(each_kubectl: Kubectl, tmp_path: Path) -> None:
    # Validation on: kubectl reads the OpenAPI v3 document, leaves validation to the server (fieldValidation=Strict)
    # and computes its three-way strategic merge patch from the document's patch strategies.
    kubectl = each_kubectl
    manifest = tmp_path / "web.json"
    manifest.write_text(json.dumps(DEPLOYMENT))
    assert kubectl("apply", "-f", str(manifest)).stdout.strip() == "deployment.apps/web created"
    kubectl("label", "deploy", "web", "added-by-hand=yes")
    changed = json.loads(json.dumps(DEPLOYMENT))
    changed["spec"]["replicas"] = 2
    # The sidecar leaves the manifest: kubectl's three-way patch deletes it ($patch: delete by its merge key).
    changed["spec"]["template"]["spec"]["containers"] = [{"name": "app", "image": "app:2"}]
    manifest.write_text(json.dumps(changed))
    assert kubectl("apply", "-f", str(manifest)).stdout.strip() == "deployment.apps/web configured"
    applied = _get(kubectl, "deploy", "web")
    assert applied["spec"]["replicas"] == 2
    assert applied["spec"]["template"]["spec"]["containers"] == [{"name": "app", "image": "app:2"}]
    assert applied["metadata"]["labels"]["added-by-hand"] == "yes"  # not in the manifest, not the apply's to remove
