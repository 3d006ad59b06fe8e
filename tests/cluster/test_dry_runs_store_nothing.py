"""``--dry-run=server`` (``?dryRun=All``) against a simulated cluster, as the API server answers it: the write is
validated and admitted, answered as if stored, and nothing is kept - no object, no change, no event, no
resourceVersion bump - for create, client-side apply (a strategic merge patch), server-side apply, update, scale
and delete. A value other than ``All`` is refused as the API server refuses it."""

from __future__ import annotations

import json

import httpx

from simulator.cluster.server import BackgroundCluster
from simulator.cluster.store import Store
from tests.cluster.conftest import Kubectl

CONFIG_MAP = (
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: default\ndata:\n  a: '{value}'\n"
)
DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: registry.example/web:1.0}]
"""


def version(cluster: BackgroundCluster) -> int:
    return cluster.call(lambda store: store.resource_version)


def stored(cluster: BackgroundCluster, plural: str, name: str) -> dict[str, object] | None:
    def find(store: Store) -> dict[str, object] | None:
        for resource_key, objects in store._objects.items():  # the store's own view, not an answer about it
            if resource_key.endswith("/" + plural) and ("default", name) in objects:
                return dict(objects[("default", name)])
        return None

    return cluster.call(find)


def test_a_dry_run_create_answers_the_object_and_keeps_nothing(kubectl: Kubectl, cluster: BackgroundCluster) -> None:
    before = version(cluster)

    answer = json.loads(kubectl("create", "--dry-run=server", "-o", "json", "-f", "-", stdin=DEPLOYMENT).stdout)

    assert answer["metadata"]["name"] == "web"
    assert answer["metadata"]["uid"]
    assert "resourceVersion" not in answer["metadata"]
    assert answer["spec"]["replicas"] == 2
    assert version(cluster) == before
    assert stored(cluster, "deployments", "web") is None
    gone = kubectl("get", "deployment", "web", check=False)
    assert gone.returncode == 1
    assert 'deployments.apps "web" not found' in gone.stderr


def test_dry_runs_of_every_change_leave_the_stored_object_as_it_was(
    kubectl: Kubectl, cluster: BackgroundCluster
) -> None:
    kubectl("apply", "-f", "-", stdin=CONFIG_MAP.format(value="1"))
    kubectl("apply", "-f", "-", stdin=DEPLOYMENT)
    # Its own object: server-side apply over a client-side applied one is another story (field managers).
    kubectl("apply", "--server-side", "-f", "-", stdin=CONFIG_MAP.format(value="1").replace("settings", "owned"))
    config_map, deployment = stored(cluster, "configmaps", "settings"), stored(cluster, "deployments", "web")
    owned = stored(cluster, "configmaps", "owned")
    before = version(cluster)

    applied = kubectl("apply", "--dry-run=server", "-o", "json", "-f", "-", stdin=CONFIG_MAP.format(value="2"))
    server_side = kubectl(
        "apply",
        "--server-side",
        "--dry-run=server",
        "-o",
        "json",
        "-f",
        "-",
        stdin=CONFIG_MAP.format(value="3").replace("settings", "owned"),
    )
    replaced = kubectl("replace", "--dry-run=server", "-o", "json", "-f", "-", stdin=CONFIG_MAP.format(value="4"))
    scaled = kubectl("scale", "deployment/web", "--replicas=5", "--dry-run=server")
    deleted = kubectl("delete", "configmap", "settings", "--dry-run=server")

    assert json.loads(applied.stdout)["data"] == {"a": "2"}
    assert json.loads(server_side.stdout)["data"] == {"a": "3"}
    assert json.loads(replaced.stdout)["data"] == {"a": "4"}
    assert "scaled (server dry run)" in scaled.stdout
    assert "deleted (server dry run)" in deleted.stdout
    assert version(cluster) == before
    assert stored(cluster, "configmaps", "settings") == config_map
    assert stored(cluster, "configmaps", "owned") == owned
    assert stored(cluster, "deployments", "web") == deployment


def test_a_dry_run_value_other_than_all_is_refused(cluster: BackgroundCluster) -> None:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}
    answer = httpx.post(f"{cluster.url}/api/v1/namespaces/default/configmaps?dryRun=Some", json=body, timeout=10)

    assert answer.status_code == 400
    assert answer.json()["message"] == 'dryRun: Unsupported value: "Some": supported values: "All"'
    assert stored(cluster, "configmaps", "x") is None
