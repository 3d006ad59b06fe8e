"""Server-side apply (``simulator.cluster.applying``): apply managers own the fields they apply (managedFields),
a field another manager owns with another value is a 409 unless forced, and a field a manager stops applying
is removed unless someone else owns it; through the real ``kubectl apply --server-side`` too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from simulator.cluster.applying import ApplyConflict, fields_of, fields_v1, paths_of, server_side_apply
from simulator.cluster.patching import definition_of
from simulator.cluster.server import BackgroundCluster
from simulator.cluster.store import Invalid
from tests.cluster.conftest import Kubectl

SCHEMA = definition_of("apps/v1", "Deployment")


def _deployment(replicas: int, *containers: tuple[str, str], labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", **({"labels": labels} if labels else {})},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": n, "image": i} for n, i in containers]},
            },
        },
    }


def _apply(live: dict[str, Any] | None, config: dict[str, Any], manager: str, *, force: bool = False) -> dict[str, Any]:
    return server_side_apply(
        live,
        config,
        manager=manager,
        force=force,
        schema=SCHEMA,
        api_version="apps/v1",
        now="2027-01-01T00:00:00Z",
        has_status=True,
    )


def _managers(obj: dict[str, Any]) -> dict[str, Any]:
    return {e["manager"]: e["fieldsV1"] for e in obj["metadata"]["managedFields"]}


def test_fields_of_a_configuration_read_as_fieldsv1() -> None:
    config = {
        "metadata": {"labels": {"a": "b"}, "finalizers": ["x/y"]},
        "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "app", "image": "i"}]}}},
    }
    tree = fields_v1(fields_of(config, SCHEMA))
    assert tree == {
        "f:metadata": {"f:labels": {"f:a": {}}, "f:finalizers": {'v:"x/y"': {}}},
        "f:spec": {
            "f:replicas": {},
            "f:template": {"f:spec": {"f:containers": {'k:{"name":"app"}': {".": {}, "f:image": {}, "f:name": {}}}}},
        },
    }
    assert paths_of(tree) == fields_of(config, SCHEMA)


def test_the_first_apply_creates_and_records_its_fields() -> None:
    created = _apply(None, _deployment(1, ("app", "app:1")), "deployer")
    assert created["spec"]["replicas"] == 1
    [entry] = created["metadata"]["managedFields"]
    assert (entry["manager"], entry["operation"], entry["apiVersion"], entry["fieldsType"]) == (
        "deployer",
        "Apply",
        "apps/v1",
        "FieldsV1",
    )
    assert "f:name" not in entry["fieldsV1"].get("f:metadata", {})
    assert entry["fieldsV1"]["f:spec"]["f:replicas"] == {}


def test_a_field_the_manager_stops_applying_is_removed_unless_another_owns_it() -> None:
    live = _apply(
        None, _deployment(1, ("app", "app:1"), ("sidecar", "proxy:1"), labels={"a": "1", "b": "2"}), "deployer"
    )
    live = _apply(
        live,
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"b": "2"}}},
        "labeller",
    )
    again = _apply(live, _deployment(1, ("app", "app:2")), "deployer")
    assert [c["name"] for c in again["spec"]["template"]["spec"]["containers"]] == ["app"]
    assert again["spec"]["template"]["spec"]["containers"][0]["image"] == "app:2"
    assert again["metadata"]["labels"] == {"b": "2"}  # "a" was the deployer's alone; "b" is shared
    assert set(_managers(again)) == {"deployer", "labeller"}


def test_another_managers_field_with_another_value_is_a_conflict_unless_forced() -> None:
    live = _apply(None, _deployment(1, ("app", "app:1")), "deployer")
    # The same value is no conflict: both own it.
    shared = _apply(
        live,
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 1}},
        "scaler",
    )
    assert "f:replicas" in _managers(shared)["scaler"]["f:spec"]
    scale = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 5}}
    with pytest.raises(ApplyConflict) as raised:
        _apply(live, scale, "scaler")
    assert raised.value.message == 'Apply failed with 1 conflict: conflict with "deployer": .spec.replicas'
    assert raised.value.status()["details"]["causes"] == [
        {"reason": "FieldManagerConflict", "message": 'conflict with "deployer"', "field": ".spec.replicas"}
    ]
    assert raised.value.code == 409
    forced = _apply(live, scale, "scaler", force=True)
    assert forced["spec"]["replicas"] == 5
    assert "f:replicas" not in _managers(forced)["deployer"]["f:spec"]
    image = _deployment(1, ("app", "app:9"))
    with pytest.raises(ApplyConflict) as by_key:
        _apply(live, image, "other")
    assert '.spec.template.spec.containers[name="app"].image' in by_key.value.message


def test_an_apply_that_changes_nothing_keeps_the_object_as_it_was() -> None:
    live = _apply(None, _deployment(1, ("app", "app:1")), "deployer")
    live = _apply(
        live,
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"x": "y"}}},
        "labeller",
    )
    later = server_side_apply(
        live,
        _deployment(1, ("app", "app:1")),
        manager="deployer",
        force=False,
        schema=SCHEMA,
        api_version="apps/v1",
        now="2027-06-01T00:00:00Z",
        has_status=True,
    )
    assert later == live


def test_apply_needs_a_field_manager() -> None:
    with pytest.raises(Invalid, match="fieldManager: Required value"):
        _apply(None, _deployment(1), "")


def test_status_is_not_owned_by_an_apply_to_the_object() -> None:
    config = {**_deployment(1, ("app", "app:1")), "status": {"replicas": 9}}
    created = _apply(None, config, "deployer")
    assert "status" not in created
    assert "f:status" not in _managers(created)["deployer"]


# --- through the server and kubectl -----------------------------------------------------------------------------


def test_kubectl_apply_server_side_with_conflicts_and_force(each_kubectl: Kubectl, tmp_path: Path) -> None:
    kubectl = each_kubectl  # the kubectl on PATH, then the wheel's 1.37
    manifest = tmp_path / "web.json"
    manifest.write_text(json.dumps(_deployment(1, ("app", "app:1"), ("sidecar", "proxy:1"))))
    assert (
        kubectl("apply", "--server-side", "-f", str(manifest)).stdout.strip()
        == "deployment.apps/web serverside-applied"
    )
    shown = json.loads(kubectl("get", "deploy", "web", "-o", "json", "--show-managed-fields").stdout)
    assert [(e["manager"], e["operation"]) for e in shown["metadata"]["managedFields"]] == [("kubectl", "Apply")]
    scale = tmp_path / "scale.json"
    scale.write_text(
        json.dumps(
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 4}}
        )
    )
    refused = kubectl("apply", "--server-side", "--field-manager=autoscaler", "-f", str(scale), check=False)
    assert 'Apply failed with 1 conflict: conflict with "kubectl": .spec.replicas' in refused.stderr
    kubectl(
        "apply",
        "--server-side",
        "--field-manager=autoscaler",
        "--force-conflicts",
        "-f",
        str(scale),
    )
    # The manifest drops the sidecar and no longer sets replicas (now the autoscaler's): the sidecar goes, 4 stays.
    changed = _deployment(1, ("app", "app:2"))
    del changed["spec"]["replicas"]
    manifest.write_text(json.dumps(changed))
    kubectl("apply", "--server-side", "-f", str(manifest))
    live = json.loads(kubectl("get", "deploy", "web", "-o", "json").stdout)
    assert live["spec"]["replicas"] == 4
    assert live["spec"]["template"]["spec"]["containers"] == [{"name": "app", "image": "app:2"}]


def test_apply_over_http_refuses_what_the_api_server_refuses(cluster: BackgroundCluster) -> None:
    url = f"{cluster.url}/apis/apps/v1/namespaces/default/deployments/web"
    yaml_body = {"content-type": "application/apply-patch+yaml"}
    body = json.dumps(_deployment(1, ("app", "app:1"))).encode()
    with httpx.Client() as client:
        assert client.patch(url, content=body, headers=yaml_body).status_code == 422  # no fieldManager
        created = client.patch(url, params={"fieldManager": "m"}, content=body, headers=yaml_body)
        assert created.status_code == 201
        again = client.patch(url, params={"fieldManager": "m"}, content=body, headers=yaml_body)
        assert (again.status_code, again.json()["metadata"]["resourceVersion"]) == (
            200,
            created.json()["metadata"]["resourceVersion"],
        )
        other = client.patch(f"{url[:-3]}other", params={"fieldManager": "m"}, content=body, headers=yaml_body)
        assert (other.status_code, other.json()["reason"]) == (400, "BadRequest")
        odd_yaml = b"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, labels: {1: 2020-01-01}}\n"
        odd = client.patch(url, params={"fieldManager": "yaml"}, content=odd_yaml, headers=yaml_body)
        assert odd.json()["metadata"]["labels"]["1"] == "2020-01-01"
        on_status = client.patch(f"{url}/status", params={"fieldManager": "m"}, content=body, headers=yaml_body)
        assert (on_status.status_code, on_status.json()["reason"]) == (415, "UnsupportedMediaType")
        forced_merge = client.patch(
            url, params={"force": "true"}, content=b"{}", headers={"content-type": "application/merge-patch+json"}
        )
        assert "may not be specified for non-apply patch" in forced_merge.json()["message"]
