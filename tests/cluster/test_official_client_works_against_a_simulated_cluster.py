"""The official Python client (``kubernetes``) against a simulated cluster: lists with selectors, reads and
writes, a watch from a list's version, and 410 when that version has left the history."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from simulator.cluster.nodes import ClusterBox
from simulator.cluster.resources import CONFIG_MAPS
from simulator.cluster.server import BackgroundCluster
from simulator.cluster.store import Store


@pytest.fixture
def core(kubeconfig: Path) -> client.CoreV1Api:
    api_client = config.new_client_from_config(config_file=str(kubeconfig))
    return client.CoreV1Api(api_client)


def test_list_nodes_by_site(core: client.CoreV1Api, boxes: list[ClusterBox]) -> None:
    nodes = core.list_node(label_selector=f"apps.kubeedge.io/belonging-to={boxes[0].site}")
    assert sorted(n.metadata.name for n in nodes.items) == sorted(b.name for b in boxes)
    assert core.list_node(label_selector="apps.kubeedge.io/belonging-to notin (" + boxes[0].site + ")").items == []
    page = core.list_node(limit=1)
    assert len(page.items) == 1
    assert page.metadata._continue
    with pytest.raises(ApiException) as bad:
        core.list_node(label_selector="app in (")
    assert bad.value.status == 400


def test_create_read_delete_a_config_map(core: client.CoreV1Api) -> None:
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="settings"), data={"a": "b"})
    made = core.create_namespaced_config_map("default", body)
    assert core.read_namespaced_config_map("settings", "default").data == {"a": "b"}
    made.data = {"a": "c"}
    core.replace_namespaced_config_map("settings", "default", made)
    with pytest.raises(ApiException) as stale:
        core.replace_namespaced_config_map("settings", "default", made)  # made still holds the old version
    assert stale.value.status == 409
    core.delete_namespaced_config_map("settings", "default")
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_config_map("settings", "default")
    assert gone.value.status == 404
    with pytest.raises(ApiException) as nowhere:
        core.create_namespaced_config_map("no-such-namespace", body)
    assert nowhere.value.status == 404


def test_watch_from_a_lists_version_sees_added_modified_deleted(
    core: client.CoreV1Api, cluster: BackgroundCluster
) -> None:
    version = core.list_namespaced_config_map("default").metadata.resource_version

    def churn(store: Store) -> None:
        made = store.create(CONFIG_MAPS, {"metadata": {"name": "w"}, "data": {"n": "1"}}, "default")
        store.update(CONFIG_MAPS, {**made, "data": {"n": "2"}}, "default")
        store.delete(CONFIG_MAPS, "default", "w")

    cluster.call(churn)
    seen = []
    for event in watch.Watch().stream(
        core.list_namespaced_config_map, "default", resource_version=version, timeout_seconds=5
    ):
        seen.append((event["type"], event["object"].metadata.name))
        if event["type"] == "DELETED":
            break
    assert seen == [("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w")]


def test_a_watch_from_a_version_the_history_lost_is_410(core: client.CoreV1Api) -> None:
    # The cluster's history (tests/cluster/conftest.py) is shorter than its seed: version 1 is gone already.
    with pytest.raises(ApiException) as expired:
        for _ in watch.Watch().stream(
            core.list_namespaced_config_map, "default", resource_version="1", timeout_seconds=5
        ):
            pass
    assert expired.value.status == 410
    assert "too old resource version: 1" in str(expired.value.reason)


def test_bookmarks_carry_the_current_version(core: client.CoreV1Api, cluster: BackgroundCluster) -> None:
    version = core.list_namespaced_config_map("default").metadata.resource_version
    for event in watch.Watch().stream(
        core.list_namespaced_config_map,
        "default",
        resource_version=version,
        allow_watch_bookmarks=True,
        timeout_seconds=5,
    ):
        assert event["type"] == "BOOKMARK"
        assert event["raw_object"]["metadata"]["resourceVersion"] == version
        break
