"""Just enough of Kubernetes' protobuf encoding to read what kubectl's generators send: kubectl creates ConfigMaps,
Secrets, Namespaces, Deployments, Jobs and Services (``kubectl create configmap|secret|namespace|deployment|job``,
``kubectl create service``, ``kubectl expose``) in ``application/vnd.kubernetes.protobuf`` and does not fall back to JSON. Called by
``server`` for a body of that type; answers are JSON, which kubectl accepts.

A body is the ``k8s\\x00`` prefix and a ``runtime.Unknown`` envelope (type meta, then the object's bytes). The
object is read by one decoder driven by ``MESSAGES``: for each message, its field numbers (from
k8s.io/api's ``generated.proto``) with their JSON names and types. Go's protobuf writes every non-pointer field,
set or not, so zero values (``""``, ``0``, ``false``, empty messages) are left out as JSON's ``omitempty`` leaves
them, except in pointer fields (``replicas``). A field the tables do not name is skipped when empty and refused
when it carries a value, so nothing a client sent is lost without a word. A status is skipped (clients do not set it
on create). Pure.
"""

from __future__ import annotations

import base64
from typing import Any, Final, NamedTuple

MEDIA_TYPE: Final = "application/vnd.kubernetes.protobuf"
_MAGIC: Final = b"k8s\x00"

Value = int | bytes


class ProtobufError(ValueError):
    """A body that is not Kubernetes protobuf of a kind read here."""


class F(NamedTuple):
    """One field of a message: its JSON name, how it is encoded, and the message it holds (for messages)."""

    name: str
    # str, int, bool, msg, strs, msgs, map (string -> string), bytes_map (-> base64), qty_map, intstr; skip: read
    # and left out (a status: clients do not set it on create)
    kind: str
    message: str = ""
    pointer: bool = False  # written only when set: a zero value stays


_META: Final = F("metadata", "msg", "ObjectMeta")
_STATUS: Final = F("status", "skip")
# Field numbers as k8s.io/api and k8s.io/apimachinery's generated.proto give them (stable across releases).
MESSAGES: Final[dict[str, dict[int, F]]] = {
    "ObjectMeta": {
        1: F("name", "str"), 2: F("generateName", "str"), 3: F("namespace", "str"), 6: F("resourceVersion", "str"),
        11: F("labels", "map"), 12: F("annotations", "map"), 14: F("finalizers", "strs"),
    },
    "LabelSelector": {1: F("matchLabels", "map"), 2: F("matchExpressions", "msgs", "LabelSelectorRequirement")},
    "LabelSelectorRequirement": {1: F("key", "str"), 2: F("operator", "str"), 3: F("values", "strs")},
    # core/v1
    "ConfigMap": {
        1: _META, 2: F("data", "map"), 3: F("binaryData", "bytes_map"), 4: F("immutable", "bool", pointer=True),
    },
    # stringData (4) is folded into data, as the API server does.
    "Secret": {
        1: _META, 2: F("data", "bytes_map"), 3: F("type", "str"), 4: F("data", "bytes_map"),
        5: F("immutable", "bool", pointer=True),
    },
    "Namespace": {1: _META, 2: F("spec", "msg", "NamespaceSpec"), 3: _STATUS},
    "NamespaceSpec": {1: F("finalizers", "strs")},
    "Service": {1: _META, 2: F("spec", "msg", "ServiceSpec"), 3: _STATUS},
    "ServiceSpec": {
        1: F("ports", "msgs", "ServicePort"), 2: F("selector", "map"), 3: F("clusterIP", "str"),
        4: F("type", "str"), 5: F("externalIPs", "strs"), 7: F("sessionAffinity", "str"),
        8: F("loadBalancerIP", "str"), 9: F("loadBalancerSourceRanges", "strs"), 10: F("externalName", "str"),
        11: F("externalTrafficPolicy", "str"), 12: F("healthCheckNodePort", "int"),
        13: F("publishNotReadyAddresses", "bool"), 17: F("ipFamilyPolicy", "str", pointer=True),
        18: F("clusterIPs", "strs"), 19: F("ipFamilies", "strs"),
        20: F("allocateLoadBalancerNodePorts", "bool", pointer=True), 21: F("loadBalancerClass", "str", pointer=True),
        22: F("internalTrafficPolicy", "str", pointer=True),
    },
    "ServicePort": {
        1: F("name", "str"), 2: F("protocol", "str"), 3: F("port", "int"), 4: F("targetPort", "intstr"),
        5: F("nodePort", "int"), 6: F("appProtocol", "str", pointer=True),
    },
    "PodTemplateSpec": {1: _META, 2: F("spec", "msg", "PodSpec")},
    "PodSpec": {
        2: F("containers", "msgs", "Container"), 3: F("restartPolicy", "str"),
        4: F("terminationGracePeriodSeconds", "int", pointer=True), 6: F("dnsPolicy", "str"),
        7: F("nodeSelector", "map"), 8: F("serviceAccountName", "str"), 10: F("nodeName", "str"),
        11: F("hostNetwork", "bool"), 19: F("schedulerName", "str"), 20: F("initContainers", "msgs", "Container"),
        22: F("tolerations", "msgs", "Toleration"), 24: F("priorityClassName", "str"),
    },
    "Container": {
        1: F("name", "str"), 2: F("image", "str"), 3: F("command", "strs"), 4: F("args", "strs"),
        5: F("workingDir", "str"), 6: F("ports", "msgs", "ContainerPort"), 7: F("env", "msgs", "EnvVar"),
        8: F("resources", "msg", "ResourceRequirements"), 13: F("terminationMessagePath", "str"),
        14: F("imagePullPolicy", "str"), 16: F("stdin", "bool"), 17: F("stdinOnce", "bool"), 18: F("tty", "bool"),
        20: F("terminationMessagePolicy", "str"),
    },
    "ContainerPort": {
        1: F("name", "str"), 2: F("hostPort", "int"), 3: F("containerPort", "int"), 4: F("protocol", "str"),
        5: F("hostIP", "str"),
    },
    "EnvVar": {1: F("name", "str"), 2: F("value", "str")},
    "ResourceRequirements": {1: F("limits", "qty_map"), 2: F("requests", "qty_map")},
    "Toleration": {
        1: F("key", "str"), 2: F("operator", "str"), 3: F("value", "str"), 4: F("effect", "str"),
        5: F("tolerationSeconds", "int", pointer=True),
    },
    # apps/v1
    "Deployment": {1: _META, 2: F("spec", "msg", "DeploymentSpec"), 3: _STATUS},
    "DeploymentSpec": {
        1: F("replicas", "int", pointer=True), 2: F("selector", "msg", "LabelSelector"),
        3: F("template", "msg", "PodTemplateSpec"), 4: F("strategy", "msg", "DeploymentStrategy"),
        5: F("minReadySeconds", "int"), 6: F("revisionHistoryLimit", "int", pointer=True),
        7: F("paused", "bool"), 9: F("progressDeadlineSeconds", "int", pointer=True),
    },
    "DeploymentStrategy": {1: F("type", "str"), 2: F("rollingUpdate", "msg", "RollingUpdateDeployment")},
    "RollingUpdateDeployment": {1: F("maxUnavailable", "intstr"), 2: F("maxSurge", "intstr")},
    # batch/v1
    "Job": {1: _META, 2: F("spec", "msg", "JobSpec"), 3: _STATUS},
    "JobSpec": {
        1: F("parallelism", "int", pointer=True), 2: F("completions", "int", pointer=True),
        3: F("activeDeadlineSeconds", "int", pointer=True), 4: F("selector", "msg", "LabelSelector"),
        5: F("manualSelector", "bool", pointer=True), 6: F("template", "msg", "PodTemplateSpec"),
        7: F("backoffLimit", "int", pointer=True), 8: F("ttlSecondsAfterFinished", "int", pointer=True),
        9: F("completionMode", "str", pointer=True), 10: F("suspend", "bool", pointer=True),
        14: F("podReplacementPolicy", "str", pointer=True),
    },
}  # fmt: skip
# What each served kind is read as: (apiVersion, kind) -> its message.
KINDS: Final = {
    ("v1", "ConfigMap"): "ConfigMap",
    ("v1", "Secret"): "Secret",
    ("v1", "Namespace"): "Namespace",
    ("v1", "Service"): "Service",
    ("apps/v1", "Deployment"): "Deployment",
    ("batch/v1", "Job"): "Job",
}


def _varint(data: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        if i >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[i]
        i += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, i
        shift += 7


def _fields(data: bytes) -> list[tuple[int, Value]]:
    """(field number, value) pairs: ints for varints, bytes for length-delimited fields."""
    out: list[tuple[int, Value]] = []
    i = 0
    while i < len(data):
        tag, i = _varint(data, i)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, i = _varint(data, i)
            out.append((number, value))
        elif wire == 2:
            size, i = _varint(data, i)
            if i + size > len(data):
                raise ProtobufError("truncated field")
            out.append((number, data[i : i + size]))
            i += size
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
    return out


def _bytes(value: Value, what: str) -> bytes:
    if not isinstance(value, bytes):
        raise ProtobufError(f"{what}: expected a length-delimited field")
    return value


def _int(value: Value, what: str) -> int:
    if not isinstance(value, int):
        raise ProtobufError(f"{what}: expected a varint")
    return value - (1 << 64) if value >= 1 << 63 else value  # negative int32/int64 are 10-byte two's complement


def _entry(value: Value, what: str) -> tuple[str, bytes]:
    """A map entry: key (1) and value (2)."""
    key, raw = "", b""
    for number, part in _fields(_bytes(value, what)):
        if number == 1:
            key = _bytes(part, what).decode()
        elif number == 2:
            raw = _bytes(part, what)
    return key, raw


def _int_or_string(data: bytes, what: str) -> int | str:
    kind, number, text = 0, 0, ""
    for field, value in _fields(data):
        if field == 1:
            kind = _int(value, what)
        elif field == 2:
            number = _int(value, what)
        elif field == 3:
            text = _bytes(value, what).decode()
    return text if kind == 1 else number


def _value(spec: F, value: Value, what: str) -> Any:
    """One field's value as JSON (for repeated and map kinds: one element or entry)."""
    if spec.kind in ("str", "strs"):
        return _bytes(value, what).decode()
    if spec.kind == "int":
        return _int(value, what)
    if spec.kind == "bool":
        return bool(_int(value, what))
    if spec.kind in ("msg", "msgs"):
        return _message(spec.message, _bytes(value, what), what)
    if spec.kind == "intstr":
        return _int_or_string(_bytes(value, what), what)
    key, raw = _entry(value, what)
    if spec.kind == "map":
        return key, raw.decode()
    if spec.kind == "bytes_map":
        return key, base64.b64encode(raw).decode()
    if spec.kind == "qty_map":
        quantity = next((_bytes(v, what).decode() for n, v in _fields(raw) if n == 1), "")
        return key, quantity
    raise ProtobufError(f"{what}: unknown field kind {spec.kind}")  # a table mistake, not a client's


def _empty(value: Any) -> bool:
    return value in ("", 0, {}, [])  # False == 0


def _message(name: str, data: bytes, where: str) -> dict[str, Any]:
    table = MESSAGES[name]
    out: dict[str, Any] = {}
    for number, value in _fields(data):
        what = f"{where}.{table[number].name}" if number in table else f"{where} field {number}"
        spec = table.get(number)
        if spec is None:
            if value in (0, b""):
                continue  # a zero a Go client writes for every field it has
            raise ProtobufError(f"{what} ({name}) is not read here; send the object as JSON")
        if spec.kind == "skip":
            continue
        decoded = _value(spec, value, what)
        if spec.kind in ("strs", "msgs"):
            out.setdefault(spec.name, []).append(decoded)
        elif spec.kind.endswith("map"):
            out.setdefault(spec.name, {})[decoded[0]] = decoded[1]
        elif spec.pointer or not _empty(decoded):
            out[spec.name] = decoded
    return out


def decode(body: bytes) -> dict[str, Any]:
    """A protobuf body as the JSON object it stands for; raises ProtobufError."""
    if not body.startswith(_MAGIC):
        raise ProtobufError("the body does not start with Kubernetes' protobuf prefix")
    api_version = kind = ""
    raw = b""
    for number, value in _fields(body[len(_MAGIC) :]):
        if number == 1:
            for part_number, part in _fields(_bytes(value, "typeMeta")):
                if part_number == 1:
                    api_version = _bytes(part, "apiVersion").decode()
                elif part_number == 2:
                    kind = _bytes(part, "kind").decode()
        elif number == 2:
            raw = _bytes(value, "raw")
    message = KINDS.get((api_version, kind))
    if message is None:
        raise ProtobufError(f"{api_version}/{kind} in protobuf is not read here; send it as JSON")
    return {"apiVersion": api_version, "kind": kind, **_message(message, raw, kind)}
