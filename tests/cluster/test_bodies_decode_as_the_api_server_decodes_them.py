"""``simulator/cluster/validating.py`` on its own: unknown fields found (with their paths) and dropped, wrong types
refused in the Go decoder's words, apply's undeclared fields in structured-merge-diff's; and over HTTP, the
``fieldValidation`` directives and the official client's creates and applies (which send none: ``Warn``)."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from kubernetes import client, config, dynamic, utils

from edgefleet.clock import FakeClock
from simulator.cluster import validating
from simulator.cluster.nodes import ClusterBox, seed_cluster
from simulator.cluster.patching import definition_of, definitions
from simulator.cluster.resources import RESOURCES
from simulator.cluster.server import BackgroundCluster
from simulator.cluster.store import Filter, Store

DEPLOYMENT = definition_of("apps/v1", "Deployment") or {}
SERVICE = definition_of("v1", "Service") or {}
WEB: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "labels": {"app": "web"}, "creationTimestamp": None},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "web"}},
        "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {
                "containers": [
                    {
                        "name": "web",
                        "image": "nginx:1.27",
                        "ports": [{"containerPort": 80, "protocol": "TCP"}],
                        "resources": {"limits": {"cpu": "500m", "memory": 1e9, "nvidia.com/gpu": 1}},
                    }
                ],
                "tolerations": [{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}],
            },
        },
    },
    "status": {},
}


def _with(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(WEB)
    target: Any = changed
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return changed


def test_a_good_deployment_decodes_to_itself() -> None:
    decoded = validating.decode(copy.deepcopy(WEB), DEPLOYMENT, kind="Deployment")
    assert (decoded.obj, decoded.unknown) == (WEB, [])


@pytest.mark.parametrize(
    ("path", "unknown"),
    [
        (("spec", "foo"), "spec.foo"),
        (("foo",), "foo"),
        (("metadata", "lables"), "metadata.lables"),
        (("spec", "template", "spec", "containers", 0, "imagePullPolcy"), "spec.template.spec.containers[0].imagePullPolcy"),
        (("spec", "template", "spec", "containers", 0, "ports", 0, "port"), "spec.template.spec.containers[0].ports[0].port"),
    ],
)  # fmt: skip
def test_unknown_fields_are_named_and_dropped(path: tuple[Any, ...], unknown: str) -> None:
    decoded = validating.decode(_with(path, "x"), DEPLOYMENT, kind="Deployment")
    assert (decoded.obj, decoded.unknown) == (WEB, [unknown])
    assert validating.strict_message(decoded.unknown) == f'strict decoding error: unknown field "{unknown}"'


@pytest.mark.parametrize(
    ("path", "value", "words"),
    [
        (("spec", "replicas"), "two", "cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32"),
        (("spec",), [], "cannot unmarshal array into Go struct field Deployment.spec of type v1.DeploymentSpec"),
        (("metadata", "labels"), {"a": 1}, "cannot unmarshal number into Go struct field ObjectMeta.metadata.labels of type string"),
        (("spec", "template", "spec", "containers"), {}, "Go struct field PodSpec.spec.template.spec.containers of type []v1.Container"),
        (("spec", "paused"), "yes", "cannot unmarshal string into Go struct field DeploymentSpec.spec.paused of type bool"),
        (("spec", "strategy", "rollingUpdate", "maxSurge"), True, "of type intstr.IntOrString"),
    ],
)  # fmt: skip
def test_wrong_types_are_refused_in_the_decoders_words(path: tuple[Any, ...], value: Any, words: str) -> None:
    with pytest.raises(validating.WrongType) as refused:
        validating.decode(_with(path, value), DEPLOYMENT, kind="Deployment")
    assert str(refused.value).startswith("json: cannot unmarshal ")
    assert words in str(refused.value)


@pytest.mark.parametrize(
    ("value", "printed"),
    [
        ({"spec": {"replicas": 2, "paused": True}}, "map[spec:map[paused:true replicas:2]]"),
        ([1e6, 123456, 0.0001, 1e-05, -2.5, None, "a b"], "[1e+06 123456 0.0001 1e-05 -2.5 <nil> a b]"),
        ({}, "map[]"),
    ],
)
def test_a_refused_strategic_patch_is_shown_as_go_prints_it(value: Any, printed: str) -> None:
    assert validating.go_printed(value) == printed


@pytest.mark.parametrize(("replicas", "literal"), [(1.5, "1.5"), (2**31, "2147483648")])
def test_an_integer_out_of_reach_is_refused_with_its_literal(replicas: float, literal: str) -> None:
    with pytest.raises(validating.WrongType, match=f"cannot unmarshal number {literal} into Go struct field"):
        validating.decode(_with(("spec", "replicas"), replicas), DEPLOYMENT, kind="Deployment")
    whole = validating.decode(_with(("spec", "replicas"), 3.0), DEPLOYMENT, kind="Deployment")
    assert type(whole.obj["spec"]["replicas"]) is int


def test_apply_names_list_elements_by_their_keys() -> None:
    config_ = _with(("spec", "template", "spec", "containers", 0, "imagePullPolcy"), "Always")
    config_["spec"]["foo"] = 1
    assert sorted(validating.undeclared_in_apply(config_, DEPLOYMENT)) == [
        ".spec.foo: field not declared in schema",
        '.spec.template.spec.containers[name="web"].imagePullPolcy: field not declared in schema',
    ]
    assert validating.undeclared_in_apply(_with(("spec", "replicas"), "two"), DEPLOYMENT) == [
        ".spec.replicas: expected numeric (int or float), got string"
    ]
    error = validating.undeclared_fields(["a", "b"], namespace="default", name="web", api_version="v1", kind="Service")
    assert error.status()["code"] == 500
    assert "reason" not in error.status()
    assert error.message == "failed to create typed patch object (default/web; /v1, Kind=Service): errors:\n  a\n  b"


_NAMES = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=3, max_size=12)


@given(extra=st.dictionaries(_NAMES, st.integers() | st.text(max_size=5), min_size=1, max_size=4))
def test_whatever_unknown_fields_a_service_carries_decoding_drops_exactly_them(extra: dict[str, Any]) -> None:
    service: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]},
    }
    known = set(definitions()["io.k8s.api.core.v1.ServiceSpec"]["properties"])
    extra = {k: v for k, v in extra.items() if k not in known}
    noisy = copy.deepcopy(service)
    noisy["spec"].update(extra)
    decoded = validating.decode(noisy, SERVICE, kind="Service")
    assert decoded.obj == service
    assert sorted(decoded.unknown) == sorted(f"spec.{k}" for k in extra)


def test_field_validation_directives_over_http(cluster: BackgroundCluster) -> None:
    url = f"{cluster.url}/api/v1/namespaces/default/configmaps"
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}, "extra": 1}
    with httpx.Client() as http:
        strict = http.post(url, params={"fieldValidation": "Strict"}, json=body)
        assert (strict.status_code, strict.json()["message"]) == (
            400,
            'ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: unknown field "extra"',
        )
        bad = http.post(url, params={"fieldValidation": "Loose"}, json=body)
        assert (bad.status_code, bad.json()["reason"]) == (400, "BadRequest")
        warned = http.post(url, json=body)  # no directive: Warn
        assert warned.status_code == 201
        assert warned.headers.get_list("warning") == ['299 - "unknown field \\"extra\\""']
        assert "extra" not in warned.json()
        ignored = http.put(f"{url}/a", params={"fieldValidation": "Ignore"}, json={**body, "data": {"k": "w"}})
        assert (ignored.status_code, ignored.headers.get("warning")) == (200, None)
        patched = http.patch(
            f"{url}/a",
            params={"fieldValidation": "Strict"},
            content=b'{"other": 2}',
            headers={"content-type": "application/merge-patch+json"},
        )
        # A patch is refused as an invalid "patch" field holding the patched object (422), as the API server does.
        assert (patched.status_code, patched.json()["reason"]) == (422, "Invalid")
        assert patched.json()["message"].startswith(' "" is invalid: patch: Invalid value: "{')
        assert patched.json()["message"].endswith('": strict decoding error: unknown field "other"')
        assert patched.json()["details"]["causes"][0]["field"] == "patch"
        # A key twice in one JSON object: the last wins, and it is a problem like an unknown field.
        twice = b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"b"},"data":{"k":"1"},"data":{"k":"2"}}'
        json_body = {"content-type": "application/json"}
        refused = http.post(url, params={"fieldValidation": "Strict"}, content=twice, headers=json_body)
        assert refused.json()["message"] == (
            'ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: duplicate field "data"'
        )
        kept = http.post(url, content=twice, headers=json_body)
        assert (kept.json()["data"], kept.headers.get_list("warning")) == (
            {"k": "2"},
            ['299 - "duplicate field \\"data\\""'],
        )
        missing = http.get(f"{cluster.url}/apis/apps/v1/namespaces/default/deployments/nope")
        assert missing.json()["message"] == 'deployments.apps "nope" not found'
        assert missing.json()["details"] == {"name": "nope", "group": "apps", "kind": "deployments"}


def test_the_official_clients_yaml_helpers_and_dynamic_client(
    kubeconfig: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The dynamic client caches discovery in the temporary folder, by host and port: keep it in this test's.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    api = config.new_client_from_config(config_file=str(kubeconfig))
    manifest = tmp_path / "web.yaml"
    manifest.write_text(yaml.safe_dump(WEB))
    created = utils.create_from_yaml(api, str(manifest), apply=True)  # server-side apply, dynamic client
    assert created[0][0].metadata.name == "web"
    again = utils.create_from_yaml(api, str(manifest), apply=True)
    assert again[0][0].metadata.resourceVersion == created[0][0].metadata.resourceVersion
    plain = tmp_path / "cm.yaml"
    plain.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}))
    utils.create_from_yaml(api, str(plain))  # the typed client's create
    deployments = dynamic.DynamicClient(api).resources.get(api_version="apps/v1", kind="Deployment")
    listed = deployments.get(namespace="default")
    assert [d.metadata.name for d in listed.items] == ["web"]
    assert client.CoreV1Api(api).read_namespaced_config_map("c", "default").metadata.name == "c"


def test_what_the_simulator_seeds_has_no_field_kubernetes_lacks(boxes: list[ClusterBox]) -> None:
    # A guard on our own objects: a seeded node or lease with a stray field would be refused by the first Strict
    # patch kubectl sends (label, cordon), as the API server would refuse it.
    clock = FakeClock()
    store = Store(clock, cluster="guard")
    seed_cluster(store, boxes, now=clock.now())
    seen = 0
    for resource in RESOURCES:
        schema = definition_of(resource.api_version, resource.kind)
        assert schema is not None, resource.kind
        for obj in store.list_objects(resource, Filter()).items:
            assert validating.decode(copy.deepcopy(obj), schema, kind=resource.kind).unknown == [], obj
            seen += 1
    assert seen >= 2 * len(boxes)  # every node and its lease
