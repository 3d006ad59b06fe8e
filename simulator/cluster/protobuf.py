"""Just enough of Kubernetes' protobuf encoding to read what kubectl's generators send: kubectl 1.32 creates
ConfigMaps, Secrets and Namespaces (``kubectl create configmap|secret|namespace``) in
``application/vnd.kubernetes.protobuf`` and does not fall back to JSON. Only the fields those commands set are
read (k8s.io/api/core/v1/generated.proto); any other kind in protobuf is answered 415 by the server. Pure.
"""

from __future__ import annotations

import base64
from typing import Any, Final

MEDIA_TYPE: Final = "application/vnd.kubernetes.protobuf"
_MAGIC: Final = b"k8s\x00"


class ProtobufError(ValueError):
    """A body that is not Kubernetes protobuf of a kind read here."""


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


def _fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) pairs: ints for varints, bytes for length-delimited fields."""
    out: list[tuple[int, int | bytes]] = []
    i = 0
    while i < len(data):
        tag, i = _varint(data, i)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, i = _varint(data, i)
            out.append((number, value))
        elif wire == 2:
            size, i = _varint(data, i)
            out.append((number, data[i : i + size]))
            i += size
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
    return out


def _text(value: int | bytes) -> str:
    if not isinstance(value, bytes):
        raise ProtobufError("expected a string")
    return value.decode()


def _entry(value: int | bytes) -> tuple[str, bytes]:
    if not isinstance(value, bytes):
        raise ProtobufError("expected a map entry")
    key, raw = "", b""
    for number, part in _fields(value):
        if number == 1:
            key = _text(part)
        elif number == 2 and isinstance(part, bytes):
            raw = part
    return key, raw


def _metadata(data: bytes) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    names = {1: "name", 2: "generateName", 3: "namespace", 6: "resourceVersion"}
    for number, value in _fields(data):
        if number in names:
            if text := _text(value):  # proto3 writes empty strings; JSON leaves them out
                meta[names[number]] = text
        elif number in (11, 12):
            key, raw = _entry(value)
            meta.setdefault("labels" if number == 11 else "annotations", {})[key] = raw.decode()
        elif number == 14:
            meta.setdefault("finalizers", []).append(_text(value))
    return meta


def _object(kind: str, data: bytes) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for number, value in _fields(data):
        if number == 1 and isinstance(value, bytes):
            obj["metadata"] = _metadata(value)
        elif kind == "ConfigMap" and number in (2, 3):
            key, raw = _entry(value)
            if number == 2:
                obj.setdefault("data", {})[key] = raw.decode()
            else:
                obj.setdefault("binaryData", {})[key] = base64.b64encode(raw).decode()
        elif kind == "Secret" and number in (2, 4):
            key, raw = _entry(value)
            # stringData is folded into data, as the API server does.
            obj.setdefault("data", {})[key] = base64.b64encode(raw).decode()
        elif kind == "Secret" and number == 3:
            obj["type"] = _text(value)
        elif kind in ("ConfigMap", "Secret") and number in (4, 5) and isinstance(value, int):
            obj["immutable"] = bool(value)
        elif kind == "Namespace" and number == 2 and isinstance(value, bytes):
            obj["spec"] = {"finalizers": [_text(v) for n, v in _fields(value) if n == 1]}
    return obj


KINDS: Final = ("ConfigMap", "Secret", "Namespace")


def decode(body: bytes) -> dict[str, Any]:
    """A protobuf body as the JSON object it stands for; raises ProtobufError."""
    if not body.startswith(_MAGIC):
        raise ProtobufError("the body does not start with Kubernetes' protobuf prefix")
    api_version = kind = ""
    raw = b""
    for number, value in _fields(body[len(_MAGIC) :]):
        if number == 1 and isinstance(value, bytes):
            for part_number, part in _fields(value):
                if part_number == 1:
                    api_version = _text(part)
                elif part_number == 2:
                    kind = _text(part)
        elif number == 2 and isinstance(value, bytes):
            raw = value
    if kind not in KINDS or api_version != "v1":
        raise ProtobufError(f"{api_version}/{kind} in protobuf is not read here; send it as JSON")
    return {"apiVersion": api_version, "kind": kind, **_object(kind, raw)}
