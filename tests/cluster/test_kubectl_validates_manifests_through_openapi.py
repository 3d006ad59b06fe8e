"""kubectl's validation against a simulated cluster, as against a real one: it reads ``/openapi/v3``, finds that the
kind's PATCH declares ``fieldValidation``, sends ``fieldValidation=Strict`` and leaves the checking to the server,
which refuses unknown and mistyped fields in the API server's words (``simulator/cluster/validating.py``). Both
kubectls: the one on PATH and the wheel's 1.37. Also the documents themselves, and ``kubectl explain``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from simulator.cluster.server import BackgroundCluster
from tests.cluster.conftest import Kubectl


def _deployment(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]},
            },
            **spec,
        },
    }


def test_unknown_and_mistyped_fields_are_refused_with_the_api_servers_words(
    each_kubectl: Kubectl, tmp_path: Path
) -> None:
    kubectl = each_kubectl
    manifest = tmp_path / "web.json"
    manifest.write_text(json.dumps(_deployment(foo="bar")))
    created = kubectl("create", "-f", str(manifest), check=False)
    assert created.returncode == 1
    assert created.stderr.strip() == (
        f'Error from server (BadRequest): error when creating "{manifest}": Deployment in version "v1" cannot be'
        ' handled as a Deployment: strict decoding error: unknown field "spec.foo"'
    )
    assert kubectl("apply", "-f", str(manifest), check=False).returncode == 1
    assert "No resources found" in kubectl("get", "deploy").stderr
    # A field misspelt deep down is named with its list index.
    typo = _deployment()
    typo["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    manifest.write_text(json.dumps(typo))
    refused = kubectl("apply", "-f", str(manifest), check=False)
    assert 'unknown field "spec.template.spec.containers[0].imagePullPolcy"' in refused.stderr
    # A value of the wrong type: the Go decoder's words.
    manifest.write_text(json.dumps(_deployment(replicas="two")))
    mistyped = kubectl("apply", "-f", str(manifest), check=False)
    assert (
        "json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32"
        in mistyped.stderr
    )
    # Server-side apply: structured-merge-diff's words, whatever fieldValidation says.
    manifest.write_text(json.dumps(_deployment(foo="bar")))
    applied = kubectl("apply", "--server-side", "-f", str(manifest), check=False)
    assert applied.stderr.strip() == (
        "Error from server: failed to create typed patch object (default/web; apps/v1, Kind=Deployment): .spec.foo:"
        " field not declared in schema"
    )


def test_a_good_manifest_applies_and_validation_off_drops_the_unknown_field(kubectl: Kubectl, tmp_path: Path) -> None:
    manifest = tmp_path / "web.json"
    manifest.write_text(json.dumps(_deployment()))
    assert kubectl("apply", "-f", str(manifest)).stdout.strip() == "deployment.apps/web created"
    manifest.write_text(json.dumps(_deployment(replicas=2, foo="bar")))
    # On an object that exists, client-side apply sends a strategic merge patch: refused as an invalid "patch".
    refused = kubectl("apply", "-f", str(manifest), check=False)
    assert refused.stderr.startswith('The request is invalid: patch: Invalid value: "map[metadata:map[annotations:map[')
    assert refused.stderr.strip().endswith(
        ' spec:map[foo:bar replicas:2]]": strict decoding error: unknown field "spec.foo"'
    )
    # --validate=false: fieldValidation=Ignore; the field is dropped, as the API server's decoder drops it.
    assert kubectl("apply", "-f", str(manifest), "--validate=false").stdout.strip() == "deployment.apps/web configured"
    live = json.loads(kubectl("get", "deploy", "web", "-o", "json").stdout)
    assert live["spec"]["replicas"] == 2
    assert "foo" not in live["spec"]
    # --validate=warn: applied, with the server's warning.
    manifest.write_text(json.dumps(_deployment(replicas=3, foo="bar")))
    warned = kubectl("apply", "-f", str(manifest), "--validate=warn")
    assert 'Warning: unknown field "spec.foo"' in warned.stderr


def test_kubectl_explain_reads_the_documents(each_kubectl: Kubectl) -> None:
    explained = each_kubectl("explain", "deployment.spec.replicas").stdout
    assert "GROUP:      apps" in explained
    assert "FIELD: replicas <integer>" in explained
    assert "Number of desired pods" in explained


def test_the_index_and_documents_are_as_the_api_server_publishes_them(cluster: BackgroundCluster) -> None:
    with httpx.Client(base_url=cluster.url) as http:
        index = http.get("/openapi/v3").json()["paths"]
        assert {
            "api/v1", "apis/apps/v1", "apis/batch/v1", "apis/coordination.k8s.io/v1", "api", "apis", "version"
        } <= set(index)  # fmt: skip
        url = index["apis/apps/v1"]["serverRelativeURL"]
        assert url.startswith("/openapi/v3/apis/apps/v1?hash=")
        document = http.get(url).json()
        assert http.get("/openapi/v3/apis/networking.k8s.io/v1").status_code == 404
        assert http.get("/openapi/v2").status_code == 404
    schemas = document["components"]["schemas"]
    deployment = schemas["io.k8s.api.apps.v1.Deployment"]
    assert deployment["x-kubernetes-group-version-kind"] == [{"group": "apps", "kind": "Deployment", "version": "v1"}]
    assert deployment["properties"]["spec"]["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.api.apps.v1.DeploymentSpec"}
    ]
    containers = schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert (containers["x-kubernetes-patch-strategy"], containers["x-kubernetes-patch-merge-key"]) == ("merge", "name")
    assert schemas["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["replicas"]["type"] == "integer"
    # Every reference resolves inside the document.
    text = json.dumps(document)
    referenced = {part.split('"')[0] for part in text.split('"$ref": "#/components/schemas/')[1:]}
    assert referenced <= set(schemas)
    patch = document["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {"group": "apps", "version": "v1", "kind": "Deployment"}
    assert "fieldValidation" in {p["name"] for p in patch["parameters"] if p["in"] == "query"}
    assert "application/strategic-merge-patch+json" in patch["requestBody"]["content"]
