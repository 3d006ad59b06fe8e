"""The three patch types applied to objects as the API server applies them (``simulator.cluster.patching``):
RFC 6902 JSON patch, RFC 7386 merge patch, and strategic merge patch with Kubernetes' own list strategies; and
the ``scale`` subresource's Scale (``simulator.cluster.scales``)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from simulator.cluster.patching import (
    APPLY_PATCH,
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
    PatchRejected,
    apply_patch,
    definition_of,
)
from simulator.cluster.scales import scale_of, scaled
from simulator.cluster.store import BadRequest, Invalid, StoreError, UnsupportedMediaType

POD_SPEC: dict[str, Any] = {
    "containers": [
        {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
        {"name": "sidecar", "image": "proxy:1", "ports": [{"containerPort": 80, "name": "http"}]},
    ],
    "tolerations": [{"key": "gpu", "operator": "Exists"}],
    "volumes": [{"name": "data", "emptyDir": {}}],
    "nodeSelector": {"kubernetes.io/hostname": "edge-01"},
}
DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {
        "name": "web",
        "namespace": "default",
        "labels": {"app": "web", "tier": "front"},
        "finalizers": ["a/keep"],
        "resourceVersion": "7",
    },
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": POD_SPEC},
    },
    "status": {"replicas": 2},
}
SCHEMA = definition_of("apps/v1", "Deployment")


def _patched(patch_type: str, patch: Any, obj: dict[str, Any] = DEPLOYMENT) -> dict[str, Any]:
    before = json.dumps(obj, sort_keys=True)
    result = apply_patch(patch_type, obj, json.dumps(patch).encode(), schema=SCHEMA)
    assert json.dumps(obj, sort_keys=True) == before, "the stored object must never be changed in place"
    return result


def _pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = obj["spec"]["template"]["spec"]
    return spec


# --- JSON patch (RFC 6902) ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("patch", "path", "expected"),
    [
        ([{"op": "replace", "path": "/spec/replicas", "value": 5}], ("spec", "replicas"), 5),
        ([{"op": "add", "path": "/metadata/labels/new", "value": "x"}], ("metadata", "labels", "new"), "x"),
        ([{"op": "remove", "path": "/metadata/labels/tier"}], ("metadata", "labels"), {"app": "web"}),
        (
            [
                {"op": "test", "path": "/spec/replicas", "value": 2},
                {"op": "replace", "path": "/spec/replicas", "value": 3},
            ],
            ("spec", "replicas"),
            3,
        ),
        (
            [{"op": "add", "path": "/spec/template/spec/containers/-", "value": {"name": "c", "image": "c"}}],
            ("spec", "template", "spec", "containers", 2, "name"),
            "c",
        ),
        (
            [{"op": "copy", "from": "/metadata/labels/app", "path": "/metadata/labels/copy"}],
            ("metadata", "labels", "copy"),
            "web",
        ),
        (
            [{"op": "move", "from": "/metadata/labels/tier", "path": "/metadata/labels/layer"}],
            ("metadata", "labels"),
            {"app": "web", "layer": "front"},
        ),
        ([], ("spec", "replicas"), 2),
    ],
)
def test_json_patch_applies_operations_in_order(patch: Any, path: tuple[Any, ...], expected: Any) -> None:
    found: Any = _patched(JSON_PATCH, patch)
    for step in path:
        found = found[step]
    assert found == expected


@pytest.mark.parametrize(
    ("body", "error", "words"),
    [
        (b"{not json", BadRequest, "error decoding patch"),
        (b'{"op": "add"}', BadRequest, "JSON array"),
        (b'[{"op": "frobnicate", "path": "/a"}]', BadRequest, "frobnicate"),
        (b'[{"op": "test", "path": "/spec/replicas", "value": 9}]', PatchRejected, "rejected our request"),
        (b'[{"op": "remove", "path": "/spec/nothing"}]', PatchRejected, "rejected our request"),
        (b'[{"op": "replace", "path": "/no/such/path", "value": 1}]', PatchRejected, "rejected our request"),
    ],
)
def test_a_bad_json_patch_is_refused(body: bytes, error: type[StoreError], words: str) -> None:
    with pytest.raises(error) as raised:
        apply_patch(JSON_PATCH, DEPLOYMENT, body, schema=SCHEMA)
    assert words in raised.value.message
    assert raised.value.code == (422 if error is PatchRejected else 400)


def test_a_refused_json_patch_says_why_in_its_causes() -> None:
    with pytest.raises(PatchRejected) as raised:
        apply_patch(JSON_PATCH, DEPLOYMENT, b'[{"op": "test", "path": "/spec/replicas", "value": 9}]', schema=None)
    status = raised.value.status()
    assert (status["code"], status["reason"]) == (422, "Invalid")
    assert status["details"]["causes"][0]["message"]


# --- merge patch (RFC 7386) ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("patch", "check"),
    [
        (
            {"metadata": {"labels": {"new": "x"}}},
            lambda o: o["metadata"]["labels"] == {"app": "web", "tier": "front", "new": "x"},
        ),
        ({"metadata": {"labels": {"tier": None}}}, lambda o: o["metadata"]["labels"] == {"app": "web"}),
        ({"spec": {"replicas": 4}}, lambda o: o["spec"]["replicas"] == 4 and o["spec"]["selector"]),
        # Lists are replaced whole, even those strategic merge would merge by key.
        (
            {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "app:2"}]}}}},
            lambda o: _pod_spec(o)["containers"] == [{"name": "app", "image": "app:2"}],
        ),
        ({"status": None}, lambda o: "status" not in o),
        ({"spec": {"new": {"a": None, "b": 1}}}, lambda o: o["spec"]["new"] == {"b": 1}),
        ({}, lambda o: o == DEPLOYMENT),
    ],
)
def test_merge_patch_merges_maps_deletes_nulls_and_replaces_lists(patch: dict[str, Any], check: Any) -> None:
    assert check(_patched(MERGE_PATCH, patch))


@pytest.mark.parametrize("body", [b"[1, 2]", b'"text"', b"nope"])
def test_a_merge_patch_that_is_no_object_is_refused(body: bytes) -> None:
    with pytest.raises(BadRequest):
        apply_patch(MERGE_PATCH, DEPLOYMENT, body, schema=SCHEMA)


# --- strategic merge patch ----------------------------------------------------------------------------------------


def _containers(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in _pod_spec(obj)["containers"]}


@pytest.mark.parametrize(
    ("patch", "check"),
    [
        # containers merge by name: one changed, the other kept, in their order.
        (
            {"containers": [{"name": "app", "image": "app:2"}]},
            lambda s: (
                [(c["name"], c["image"]) for c in s["containers"]] == [("app", "app:2"), ("sidecar", "proxy:1")]
                and len(s["containers"][0]["env"]) == 2
            ),
        ),
        # A new container is appended.
        (
            {"containers": [{"name": "new", "image": "n:1"}]},
            lambda s: [c["name"] for c in s["containers"]] == ["app", "sidecar", "new"],
        ),
        # env merges by name inside a container merged by name.
        (
            {"containers": [{"name": "app", "env": [{"name": "B", "value": "20"}, {"name": "C", "value": "3"}]}]},
            lambda s: (
                s["containers"][0]["env"]
                == [{"name": "A", "value": "1"}, {"name": "B", "value": "20"}, {"name": "C", "value": "3"}]
            ),
        ),
        # $patch: delete removes one element by its key.
        (
            {"containers": [{"name": "sidecar", "$patch": "delete"}]},
            lambda s: [c["name"] for c in s["containers"]] == ["app"],
        ),
        # $patch: replace on a list replaces it whole.
        (
            {"containers": [{"name": "only", "image": "o:1"}, {"$patch": "replace"}]},
            lambda s: s["containers"] == [{"name": "only", "image": "o:1"}],
        ),
        # ports merge by containerPort.
        (
            {"containers": [{"name": "sidecar", "ports": [{"containerPort": 443, "name": "https"}]}]},
            lambda s: [p["containerPort"] for p in s["containers"][1]["ports"]] == [80, 443],
        ),
        # volumes merge by name; $retainKeys drops the old volume source.
        (
            {"volumes": [{"name": "data", "hostPath": {"path": "/d"}, "$retainKeys": ["name", "hostPath"]}]},
            lambda s: s["volumes"] == [{"name": "data", "hostPath": {"path": "/d"}}],
        ),
        # tolerations have no merge key in Kubernetes' definitions: replaced.
        (
            {"tolerations": [{"key": "other", "operator": "Exists"}]},
            lambda s: s["tolerations"] == [{"key": "other", "operator": "Exists"}],
        ),
        # A map field merges; null deletes a key.
        (
            {"nodeSelector": {"kubernetes.io/hostname": None, "zone": "a"}},
            lambda s: s["nodeSelector"] == {"zone": "a"},
        ),
        # $patch: replace on a map replaces it.
        ({"nodeSelector": {"zone": "b", "$patch": "replace"}}, lambda s: s["nodeSelector"] == {"zone": "b"}),
        # $patch: delete on a map deletes it.
        ({"nodeSelector": {"$patch": "delete"}}, lambda s: "nodeSelector" not in s),
        # $setElementOrder is accepted (and does not reach the object).
        (
            {
                "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "app"}],
                "containers": [{"name": "app", "image": "a:3"}],
            },
            lambda s: "$setElementOrder/containers" not in s and s["containers"][0]["image"] == "a:3",
        ),
    ],
)
def test_strategic_merge_follows_kubernetes_list_strategies(patch: dict[str, Any], check: Any) -> None:
    wrapped = {"spec": {"template": {"spec": patch}}}
    assert check(_pod_spec(_patched(STRATEGIC_MERGE_PATCH, wrapped)))


def test_strategic_merge_of_metadata_merges_finalizers_and_can_delete_from_them() -> None:
    added = _patched(STRATEGIC_MERGE_PATCH, {"metadata": {"finalizers": ["b/also", "a/keep"]}})
    assert added["metadata"]["finalizers"] == ["a/keep", "b/also"]
    removed = _patched(STRATEGIC_MERGE_PATCH, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a/keep"]}})
    assert removed["metadata"]["finalizers"] == []


def test_strategic_merge_of_a_node_cordons_and_uncordons() -> None:
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"}, "spec": {"podCIDR": "10.0.0.0/24"}}
    schema = definition_of("v1", "Node")
    assert schema is not None
    cordoned = apply_patch(STRATEGIC_MERGE_PATCH, node, b'{"spec":{"unschedulable":true}}', schema=schema)
    assert cordoned["spec"] == {"podCIDR": "10.0.0.0/24", "unschedulable": True}
    again = apply_patch(STRATEGIC_MERGE_PATCH, cordoned, b'{"spec":{"unschedulable":null}}', schema=schema)
    assert again == node


@pytest.mark.parametrize(
    ("patch", "words"),
    [
        ({"spec": {"template": {"spec": {"containers": [{"image": "no-name"}]}}}}, "merge key: name"),
        ({"spec": {"template": {"spec": {"containers": ["text"]}}}}, "takes objects"),
        ({"spec": {"$patch": "explode"}}, "unknown patch type"),
        ({"$patch": "delete"}, "may not delete the whole object"),
        ({"spec": {"$retainKeys": "replicas"}}, "$retainKeys"),
    ],
)
def test_a_bad_strategic_merge_patch_is_refused(patch: dict[str, Any], words: str) -> None:
    with pytest.raises(BadRequest) as raised:
        _patched(STRATEGIC_MERGE_PATCH, patch)
    assert words in raised.value.message


def test_every_served_kind_has_kubernetes_definition() -> None:
    from simulator.cluster.resources import RESOURCES

    assert [r.kind for r in RESOURCES if definition_of(r.api_version, r.kind) is None] == []
    assert definition_of("example.com/v1", "Widget") is None


# --- patch types ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("patch_type", ["application/json", "text/plain", ""])
def test_an_unknown_patch_type_is_415(patch_type: str) -> None:
    with pytest.raises(UnsupportedMediaType) as raised:
        apply_patch(patch_type, DEPLOYMENT, b"{}", schema=SCHEMA)
    assert raised.value.message.startswith("the body of the request was in an unknown format")
    assert STRATEGIC_MERGE_PATCH in raised.value.message


def test_server_side_apply_is_no_patch_to_apply_here() -> None:
    # The server hands apply to ``applying``; were it to reach the patcher, it must not be taken for a merge.
    with pytest.raises(UnsupportedMediaType):
        apply_patch(APPLY_PATCH, DEPLOYMENT, b"{}", schema=SCHEMA)


# --- scale ------------------------------------------------------------------------------------------------------


def test_a_deployment_reads_as_a_scale() -> None:
    deployment = {
        **DEPLOYMENT,
        "spec": {
            **DEPLOYMENT["spec"],
            "selector": {
                "matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "edge"]}],
            },
        },
    }
    assert scale_of(deployment) == {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {"name": "web", "namespace": "default", "resourceVersion": "7"},
        "spec": {"replicas": 2},
        "status": {"replicas": 2, "selector": "app=web,tier in (edge,front)"},
    }
    bare = {"metadata": {"name": "x"}}
    assert scale_of(bare)["spec"] == {"replicas": 1}
    assert scale_of(bare)["status"] == {"replicas": 0}


def test_a_scale_sets_replicas_and_carries_its_version() -> None:
    new = scaled(DEPLOYMENT, {"spec": {"replicas": 5}, "metadata": {"name": "web", "resourceVersion": "3"}})
    assert (new["spec"]["replicas"], new["metadata"]["resourceVersion"]) == (5, "3")
    assert new["spec"]["template"] == DEPLOYMENT["spec"]["template"]
    unconditional = scaled(DEPLOYMENT, {"spec": {"replicas": 0}})
    assert "resourceVersion" not in unconditional["metadata"]
    assert DEPLOYMENT["spec"]["replicas"] == 2


@pytest.mark.parametrize(
    ("scale", "error", "words"),
    [
        ({"spec": {"replicas": -1}}, Invalid, 'Scale.autoscaling "web" is invalid: spec.replicas: Invalid value: -1'),
        ({"spec": {"replicas": "3"}}, Invalid, "spec.replicas"),
        ({"spec": {"replicas": True}}, Invalid, "spec.replicas"),
        ({"metadata": {"name": "other"}, "spec": {"replicas": 1}}, BadRequest, "does not match the name"),
        ({"kind": "Deployment", "spec": {"replicas": 1}}, BadRequest, "autoscaling/v1 Scale"),
        ([1], BadRequest, "Scale object"),
    ],
)
def test_a_bad_scale_is_refused(scale: Any, error: type[StoreError], words: str) -> None:
    with pytest.raises(error) as raised:
        scaled(DEPLOYMENT, scale)
    assert words in raised.value.message
