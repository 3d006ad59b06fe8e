"""The cluster store keeps the API server's promises: one resourceVersion counter, 409 on stale writes, 410 for
history it no longer has, paging that serves one snapshot, and list + watch from the list's version that adds up
to the current state whatever was written."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgefleet.clock import FakeClock
from simulator.cluster.resources import CONFIG_MAPS, DEPLOYMENTS, NODES
from simulator.cluster.selectors import parse_labels
from simulator.cluster.store import AlreadyExists, Conflict, Expired, Filter, Invalid, NotFound, Store, keys_of


def cm(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}}


def test_every_write_takes_the_next_version_and_sets_server_fields() -> None:
    store = Store(FakeClock())
    a = store.create(CONFIG_MAPS, cm("a"), "default")
    b = store.create(CONFIG_MAPS, cm("b"), "default")
    assert (a["metadata"]["resourceVersion"], b["metadata"]["resourceVersion"]) == ("1", "2")
    assert a["metadata"]["uid"] != b["metadata"]["uid"]
    assert a["metadata"]["creationTimestamp"].endswith("Z")
    assert a["kind"] == "ConfigMap"
    assert a["metadata"]["namespace"] == "default"
    changed = store.update(CONFIG_MAPS, {**a, "data": {"k": "w"}}, "default")
    assert changed["metadata"]["resourceVersion"] == "3"
    assert changed["metadata"]["uid"] == a["metadata"]["uid"]


def test_a_stale_update_is_a_conflict_and_changes_nothing() -> None:
    store = Store(FakeClock())
    first = store.create(CONFIG_MAPS, cm("a"), "default")
    store.update(CONFIG_MAPS, {**first, "data": {"k": "w"}}, "default")
    with pytest.raises(
        Conflict, match=r'Operation cannot be fulfilled on configmaps "a": the object has been modified'
    ):
        store.update(CONFIG_MAPS, {**first, "data": {"k": "x"}}, "default")
    assert store.get(CONFIG_MAPS, "default", "a")["data"] == {"k": "w"}
    assert Conflict("x").status()["code"] == 409


def test_create_twice_get_missing_and_bad_names_answer_like_the_api_server() -> None:
    store = Store(FakeClock())
    store.create(CONFIG_MAPS, cm("a"), "default")
    with pytest.raises(AlreadyExists, match=r'^configmaps "a" already exists$'):
        store.create(CONFIG_MAPS, cm("a"), "default")
    with pytest.raises(NotFound, match=r'^configmaps "b" not found$'):
        store.get(CONFIG_MAPS, "default", "b")
    with pytest.raises(Invalid, match=r'ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value'):
        store.create(CONFIG_MAPS, cm("Bad_Name"), "default")
    made = store.create(CONFIG_MAPS, {"metadata": {"generateName": "job-"}}, "default")
    assert made["metadata"]["name"].startswith("job-")
    assert len(made["metadata"]["name"]) == 9


def test_an_update_that_changes_nothing_is_no_write() -> None:
    store = Store(FakeClock())
    a = store.create(CONFIG_MAPS, cm("a"), "default")
    assert store.update(CONFIG_MAPS, a, "default") is a
    assert store.resource_version == 1


def test_generation_counts_spec_changes_and_status_has_its_own_subresource() -> None:
    store = Store(FakeClock())
    d = store.create(DEPLOYMENTS, {"metadata": {"name": "web"}, "spec": {"replicas": 1}}, "default")
    assert d["metadata"]["generation"] == 1
    d = store.update(DEPLOYMENTS, {**d, "status": {"readyReplicas": 9}}, "default")
    assert "status" not in d
    assert d["metadata"]["generation"] == 1
    d = store.update(DEPLOYMENTS, {**d, "status": {"readyReplicas": 1}}, "default", subresource="status")
    assert d["status"] == {"readyReplicas": 1}
    assert d["metadata"]["generation"] == 1
    d = store.update(DEPLOYMENTS, {**d, "spec": {"replicas": 3}}, "default")
    assert d["metadata"]["generation"] == 2
    assert d["status"] == {"readyReplicas": 1}


def test_a_watch_older_than_the_history_is_gone_with_the_servers_message() -> None:
    store = Store(FakeClock(), history=3)
    for i in range(5):
        store.create(CONFIG_MAPS, cm(f"c{i}"), "default")
    assert [e.resource_version for e in store.events_since(CONFIG_MAPS, 2)] == [3, 4, 5]
    with pytest.raises(Expired, match=r"^too old resource version: 1 \(2\)$") as caught:
        store.events_since(CONFIG_MAPS, 1)
    assert caught.value.status()["code"] == 410
    assert caught.value.status()["reason"] == "Expired"


def test_pages_serve_the_first_pages_snapshot() -> None:
    store = Store(FakeClock())
    for i in range(5):
        store.create(CONFIG_MAPS, cm(f"c{i}"), "default")
    first = store.list_objects(CONFIG_MAPS, limit=2)
    assert keys_of(first.items) == [("default", "c0"), ("default", "c1")]
    assert first.remaining == 3
    store.delete(CONFIG_MAPS, "default", "c3")
    store.create(CONFIG_MAPS, cm("c9"), "default")
    store.update(CONFIG_MAPS, {**store.get(CONFIG_MAPS, "default", "c2"), "data": {}}, "default")
    second = store.list_objects(CONFIG_MAPS, limit=2, continue_token=first.continue_token)
    third = store.list_objects(CONFIG_MAPS, limit=2, continue_token=second.continue_token)
    assert keys_of(second.items + third.items) == [("default", "c2"), ("default", "c3"), ("default", "c4")]
    assert second.items[0]["data"] == {"k": "v"}
    assert not third.continue_token
    assert second.resource_version == first.resource_version


def test_a_continue_token_older_than_the_history_is_expired() -> None:
    store = Store(FakeClock(), history=2)
    for i in range(3):
        store.create(CONFIG_MAPS, cm(f"c{i}"), "default")
    token = store.list_objects(CONFIG_MAPS, limit=1).continue_token
    for i in range(3):
        store.create(CONFIG_MAPS, cm(f"d{i}"), "default")
    with pytest.raises(Expired, match="too old to display a consistent list result"):
        store.list_objects(CONFIG_MAPS, limit=1, continue_token=token)


def test_deleting_a_namespace_deletes_what_is_in_it() -> None:
    store = Store(FakeClock())
    from simulator.cluster.resources import NAMESPACES

    store.create(NAMESPACES, {"metadata": {"name": "team"}})
    store.create(CONFIG_MAPS, cm("a"), "team")
    store.create(CONFIG_MAPS, cm("a"), "default")
    store.delete(NAMESPACES, "", "team")
    assert keys_of(store.list_objects(CONFIG_MAPS).items) == [("default", "a")]


# --- list + watch adds up to the current state ------------------------------------------------------------------

NAMES = st.sampled_from(["a", "b", "c", "d"])
SPACES = st.sampled_from(["default", "team"])
COLOURS = st.sampled_from(["red", "blue"])
STEP = st.tuples(st.sampled_from(["create", "update", "delete"]), SPACES, NAMES, COLOURS)
SELECTORS = st.sampled_from(["", "colour=red", "colour!=red", "colour in (blue)", "!colour"])


def _apply(store: Store, step: tuple[str, str, str, str]) -> None:
    action, namespace, name, colour = step
    labels = {"colour": colour} if colour == "red" or name != "d" else {}
    try:
        if action == "create":
            store.create(CONFIG_MAPS, {"metadata": {"name": name, "labels": labels}}, namespace)
        elif action == "update":
            old = store.get(CONFIG_MAPS, namespace, name)
            store.update(CONFIG_MAPS, {**old, "metadata": {**old["metadata"], "labels": labels}}, namespace)
        else:
            store.delete(CONFIG_MAPS, namespace, name)
    except (NotFound, AlreadyExists):
        pass


@settings(max_examples=200, deadline=None)
@given(
    before=st.lists(STEP, max_size=15),
    after=st.lists(STEP, max_size=25),
    selector=SELECTORS,
    namespace=st.sampled_from([None, "default"]),
)
def test_list_then_watch_from_its_version_reconstructs_the_current_state(
    before: list[tuple[str, str, str, str]],
    after: list[tuple[str, str, str, str]],
    selector: str,
    namespace: str | None,
) -> None:
    store = Store(FakeClock())
    store.create(NODES, {"metadata": {"name": "n"}})  # another resource's events are not this watch's
    for step in before:
        _apply(store, step)
    where = Filter(namespace=namespace, labels=parse_labels(selector))
    listed = store.list_objects(CONFIG_MAPS, where)
    seen = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in listed.items}
    for step in after:
        _apply(store, step)
    for event in store.events_since(CONFIG_MAPS, listed.resource_version, where):
        key = (event.object["metadata"]["namespace"], event.object["metadata"]["name"])
        if event.type == "ADDED":
            assert key not in seen
            seen[key] = event.object
        elif event.type == "MODIFIED":
            assert key in seen
            seen[key] = event.object
        else:
            assert key in seen
            del seen[key]
    current = store.list_objects(CONFIG_MAPS, where).items
    assert seen == {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in current}
