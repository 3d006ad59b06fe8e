"""A watch through the gateway sees changes from a list's version, and survives a 410 by listing again."""

from __future__ import annotations

from edgefleet.cloud.k8s.gateway import Changed, KubernetesGateway, Listed, WatchUpdate
from simulator.cluster.resources import PODS
from simulator.cluster.server import BackgroundCluster
from simulator.cluster.store import Store
from tests.k8s.conftest import EAST


def churn(store: Store) -> None:
    made = store.create(PODS, {"metadata": {"name": "w", "labels": {"app": "w"}}, "spec": {}}, "default")
    store.update(PODS, {**made, "spec": {"nodeName": "n"}}, "default")


def test_a_watch_from_a_lists_version_sees_the_changes(gateway: KubernetesGateway, cluster: BackgroundCluster) -> None:
    version = gateway.list_pods(EAST, namespace="default").resource_version
    cluster.call(churn)
    seen: list[tuple[str, str]] = []
    for update in gateway.watch(EAST, "Pod", namespace="default", label_selector="app=w", resource_version=version):
        assert isinstance(update, Changed)
        seen.append((update.type, update.object["metadata"]["name"]))
        if update.type == "MODIFIED":
            assert update.object["spec"]["nodeName"] == "n"
            break
    assert seen == [("ADDED", "w"), ("MODIFIED", "w")]


def test_a_watch_without_a_version_lists_first(gateway: KubernetesGateway, cluster: BackgroundCluster) -> None:
    cluster.call(churn)
    updates = gateway.watch(EAST, "Pod", namespace="default")
    first = next(updates)
    assert isinstance(first, Listed)
    assert [p["metadata"]["name"] for p in first.items] == ["w"]
    updates.close()


def test_a_watch_from_a_version_the_server_forgot_lists_again_and_goes_on(
    gateway: KubernetesGateway, cluster: BackgroundCluster
) -> None:
    # The cluster keeps 5 events (tests/k8s/conftest.py): version 1 is long gone, the server answers 410.
    cluster.call(churn)
    updates = gateway.watch(EAST, "Pod", namespace="default", resource_version="1")
    relisted = next(updates)
    assert isinstance(relisted, Listed)
    assert [p["metadata"]["name"] for p in relisted.items] == ["w"]
    assert int(relisted.resource_version) > 1
    cluster.call(lambda store: store.delete(PODS, "default", "w"))
    after: WatchUpdate = next(updates)
    assert isinstance(after, Changed)
    assert (after.type, after.object["metadata"]["name"]) == ("DELETED", "w")
    updates.close()
