"""kubectl's generators send protobuf (``simulator/cluster/protobuf.py``): ``create deployment``, ``create service``,
``expose``, with both kubectls; and the decoder on bodies built here: zeros Go writes for every field are left
out, pointer fields keep theirs, a field the tables do not read is refused when it carries a value."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from simulator.cluster import protobuf
from simulator.cluster.protobuf import ProtobufError
from simulator.cluster.server import BackgroundCluster
from tests.cluster.conftest import Kubectl


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, value: int | bytes | str) -> bytes:
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    raw = value.encode() if isinstance(value, str) else value
    return _varint(number << 3 | 2) + _varint(len(raw)) + raw


def _body(api_version: str, kind: str, obj: bytes) -> bytes:
    return b"k8s\x00" + _field(1, _field(1, api_version) + _field(2, kind)) + _field(2, obj)


def _spec(*fields: bytes) -> dict[str, Any]:
    meta = _field(1, "web") + _field(2, "") + _field(8, b"")  # empty generateName and creationTimestamp, as Go writes
    decoded = protobuf.decode(_body("apps/v1", "Deployment", _field(1, meta) + _field(2, b"".join(fields))))
    assert decoded["metadata"] == {"name": "web"}
    spec: dict[str, Any] = decoded.get("spec", {})  # an empty spec is left out like any empty message
    return spec


def test_zeros_are_left_out_but_a_pointers_zero_stays() -> None:
    assert _spec(_field(1, 0), _field(5, 0), _field(7, 0), _field(4, b"")) == {"replicas": 0}
    assert _spec(_field(1, -1)) == {"replicas": -1}  # 10-byte two's complement
    surge = _field(2, _field(1, 1) + _field(3, "25%"))  # maxSurge: IntOrString of type string
    unavailable = _field(1, _field(1, 0) + _field(2, 2))
    assert _spec(_field(4, _field(1, "RollingUpdate") + _field(2, surge + unavailable))) == {
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 2}}
    }


def test_a_field_not_read_is_refused_when_it_carries_a_value() -> None:
    assert _spec(_field(8, 0)) == {}  # field 8 is not in DeploymentSpec: a zero is skipped
    with pytest.raises(ProtobufError, match=r"Deployment.spec field 8 \(DeploymentSpec\) is not read here"):
        _spec(_field(8, 5))
    with pytest.raises(ProtobufError, match="batch/v1/CronJob in protobuf is not read here"):
        protobuf.decode(_body("batch/v1", "CronJob", b""))
    with pytest.raises(ProtobufError, match="prefix"):
        protobuf.decode(b"{}")


def test_resources_and_env_of_a_container() -> None:
    limits = _field(1, _field(1, "nvidia.com/gpu") + _field(2, _field(1, "1")))
    container = _field(1, "app") + _field(2, "app:1") + _field(7, _field(1, "A") + _field(2, "1")) + _field(8, limits)
    pod = _field(2, _field(2, container))
    assert _spec(_field(3, pod))["template"] == {
        "spec": {
            "containers": [
                {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}],
                 "resources": {"limits": {"nvidia.com/gpu": "1"}}}
            ]
        }
    }  # fmt: skip


def test_a_body_refused_by_the_decoder_is_400(cluster: BackgroundCluster) -> None:
    answer = httpx.post(
        f"{cluster.url}/apis/apps/v1/namespaces/default/deployments",
        content=_body("apps/v1", "Deployment", _field(2, _field(8, 5))),
        headers={"content-type": protobuf.MEDIA_TYPE},
    )
    assert (answer.status_code, answer.json()["reason"]) == (400, "BadRequest")
    assert "Deployment.spec field 8 (DeploymentSpec) is not read here" in answer.json()["message"]


def test_create_deployment_create_service_and_expose(each_kubectl: Kubectl) -> None:
    kubectl = each_kubectl
    assert kubectl("create", "deployment", "web", "--image=nginx:1.27", "--replicas=3", "--port=80").stdout.strip() == (
        "deployment.apps/web created"
    )
    deployment = json.loads(kubectl("get", "deploy", "web", "-o", "json").stdout)
    assert deployment["spec"] == {
        "replicas": 3,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]},
        },
    }
    kubectl("create", "service", "nodeport", "np", "--tcp=80:http", "--node-port=30080")
    service = json.loads(kubectl("get", "svc", "np", "-o", "json").stdout)
    assert service["spec"] == {
        "type": "NodePort",
        "selector": {"app": "np"},
        "ports": [{"name": "80-http", "protocol": "TCP", "port": 80, "targetPort": "http", "nodePort": 30080}],
    }
    assert kubectl("expose", "deployment", "web", "--name=front", "--port=81", "--target-port=80").stdout.strip() == (
        "service/front exposed"
    )
    exposed = json.loads(kubectl("get", "svc", "front", "-o", "json").stdout)
    assert exposed["spec"] == {"selector": {"app": "web"}, "ports": [{"protocol": "TCP", "port": 81, "targetPort": 80}]}
    kubectl("create", "service", "externalname", "ext", "--external-name=example.com")
    kubectl("create", "service", "loadbalancer", "lb", "--tcp=443:8443")
    rows = {line.split()[0]: line.split()[1:5] for line in kubectl("get", "svc").stdout.splitlines()[1:]}
    assert rows == {
        "np": ["NodePort", "<none>", "<none>", "80:30080/TCP"],
        "front": ["ClusterIP", "<none>", "<none>", "81/TCP"],
        "ext": ["ExternalName", "<none>", "example.com", "<none>"],
        "lb": ["LoadBalancer", "<none>", "<pending>", "443/TCP"],
    }
