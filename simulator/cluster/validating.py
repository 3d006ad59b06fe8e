"""What the API server's decoder does with a body before it stores it, driven by Kubernetes 1.37's type definitions
(the ``kubernetes-validate`` package's, through ``patching.definitions``). Called by ``server`` for creates,
updates, patches and server-side apply.

- A value of the wrong type is refused whatever the client asked (the Go decoder cannot hold it), in the decoder's
  words: ``json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32``.
- A field the kind does not have is dropped, and the request's ``fieldValidation`` says what else happens:
  ``Strict`` refuses the body (``strict decoding error: unknown field "spec.foo"``, every such field named),
  ``Warn`` (the API server's default) answers with one ``Warning`` header per field, ``Ignore`` says nothing.
  kubectl 1.27+ sends ``Strict`` (or ``Ignore`` with ``--validate=false``) once the OpenAPI document (``openapi``)
  declares the parameter, and then validates nothing itself.
- Server-side apply reads the configuration through the schema as structured-merge-diff does: an unknown field is
  an error whatever ``fieldValidation`` says, ``.spec.foo: field not declared in schema``, with list elements
  named by their keys (``containers[name="web"]``).

A JSON object holding a key twice keeps the last, as Go's decoder does, and counts as a problem like an unknown
field (``duplicate field "spec.replicas"``); YAML never gets here with one (kubectl refuses it first). Not checked
(as not by the decoder either): formats (dates, quantities), enums, required fields. Pure.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final, Literal

from simulator.cluster.patching import REF_PREFIX, Schema, definitions
from simulator.cluster.store import StoreError

FieldValidation = Literal["Ignore", "Warn", "Strict"]
FIELD_VALIDATIONS: Final = ("Ignore", "Warn", "Strict")
# The API server's default when a request does not say.
DEFAULT_FIELD_VALIDATION: Final[FieldValidation] = "Warn"

_JSON_KINDS: Final = {bool: "bool", int: "number", float: "number", str: "string", list: "array", dict: "object"}
# structured-merge-diff's names, for apply: what a value is, and what a schema type expects.
_SMD_KINDS: Final = {bool: "boolean", int: "numeric", float: "numeric", str: "string", list: "list", dict: "map"}
_SMD_EXPECTED: Final = {
    "boolean": "boolean",
    "integer": "numeric (int or float)",
    "number": "numeric (int or float)",
    "string": "string",
    "array": "list",
    "object": "map",
}


class WrongType(ValueError):
    """A value the kind's Go type cannot hold; ``str()`` is the decoder's message."""


@dataclass(slots=True)
class Decoded:
    """A body as the API server would store it: unknown fields dropped, and where each of them was; keys a JSON
    object held twice (the last one kept)."""

    obj: dict[str, Any]
    unknown: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)


class _Object(dict[str, Any]):
    """A JSON object as ``parse`` read it, with the keys it held more than once."""

    duplicates: tuple[str, ...] = ()


def _object(pairs: list[tuple[str, Any]]) -> _Object:
    read = _Object(pairs)
    if len(read) < len(pairs):
        counts = Counter(key for key, _ in pairs)
        read.duplicates = tuple(key for key in read if counts[key] > 1)
    return read


def parse(raw: bytes) -> Any:
    """A JSON body, keeping the last of duplicate keys as Go does, and noting them for ``decode``; raises
    ValueError."""
    return json.loads(raw, object_pairs_hook=_object)


def _definition(schema: Schema) -> tuple[str | None, Schema]:
    """The definition a schema names (its name and body), or the schema itself when it names none."""
    ref = schema.get("$ref")
    if isinstance(ref, str):
        name = ref.removeprefix(REF_PREFIX)
        return name, definitions().get(name, {})
    return None, schema


def _types(schema: Schema) -> set[str]:
    declared = schema.get("type")
    if isinstance(declared, str):
        return {declared}
    if isinstance(declared, list):
        return {t for t in declared if t != "null"}
    found: set[str] = set()
    for option in schema.get("oneOf", ()):
        found |= _types(option)
    return found


_INT_RANGES: Final = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}


def _fits(value: Any, types: set[str], fmt: str | None = None) -> bool:
    if not types:
        return True
    if isinstance(value, bool):
        return "boolean" in types
    if isinstance(value, int | float) and "integer" in types and "number" not in types:
        low, high = _INT_RANGES.get(fmt or "int64", _INT_RANGES["int64"])
        return float(value).is_integer() and low <= value <= high
    if isinstance(value, int | float):
        return "number" in types
    if isinstance(value, str):
        return "string" in types
    if isinstance(value, list):
        return "array" in types
    if isinstance(value, dict):
        return "object" in types
    return False


def _go_json_kind(value: Any, types: set[str]) -> str:
    """How Go's decoder names the JSON value it could not store: a number with its literal when it was meant for
    an integer (out of range, or not whole), without when the field is no number at all."""
    if isinstance(value, int | float) and not isinstance(value, bool) and "integer" in types:
        return f"number {value}"
    return _JSON_KINDS.get(type(value), "value")


def _go_type(schema: Schema) -> str:
    """How Go names the type ``schema`` decodes into (``int32``, ``[]v1.Container``, ``map[string]string``)."""
    name, body = _definition(schema)
    if name is not None and "properties" in body:
        parts = name.split(".")
        return f"{parts[-2]}.{parts[-1]}"
    if name is not None and "oneOf" in body:
        return {"IntOrString": "intstr.IntOrString", "Quantity": "resource.Quantity"}.get(name.split(".")[-1], "string")
    types = _types(body)
    if "array" in types:
        return "[]" + _go_type(body.get("items") or {})
    if "object" in types:
        values = body.get("additionalProperties")
        return "map[string]" + _go_type(values) if isinstance(values, dict) else "map[string]interface {}"
    if "integer" in types:
        return str(body.get("format") or "int64")
    if "number" in types:
        return "float64"
    return {"boolean": "bool", "string": "string"}.get(next(iter(types), "string"), "string")


class _Walk:
    """One pass over a body: drops unknown fields, collects their paths, raises on the first wrong type."""

    def __init__(self, *, keyed: bool) -> None:
        # keyed: paths as structured-merge-diff writes them (``.spec.containers[name="web"].foo``), for apply.
        self.keyed = keyed
        self.unknown: list[str] = []
        self.duplicates: list[str] = []

    def value(self, value: Any, schema: Schema, path: str, go_path: str, struct: str) -> Any:
        name, body = _definition(schema)
        if value is None:
            return None
        types = _types(body)
        if not _fits(value, types, body.get("format")):
            raise self._wrong(value, schema, body, path, go_path, struct)
        if isinstance(value, float) and types == {"integer"}:
            return int(value)  # stored as the Go integer it decodes into
        if isinstance(value, dict) and isinstance(body.get("properties"), dict):
            return self.fields(value, body["properties"], path, go_path, name or struct)
        if isinstance(value, dict) and isinstance(body.get("additionalProperties"), dict):
            item = body["additionalProperties"]
            return {
                k: self.value(v, item, f"{path}.{k}" if self.keyed else path, go_path, struct) for k, v in value.items()
            }
        if isinstance(value, list) and isinstance(body.get("items"), dict):
            item = body["items"]
            return [
                self.value(v, item, f"{path}{self._element(v, i, body)}", go_path, struct) for i, v in enumerate(value)
            ]
        return value

    def fields(self, value: dict[str, Any], known: dict[str, Schema], path: str, go_path: str, struct: str) -> Any:
        kept: dict[str, Any] = {}
        for key in getattr(value, "duplicates", ()):
            self.duplicates.append(f"{path}.{key}" if path or self.keyed else key)
        for key, item in value.items():
            where = f"{path}.{key}" if path or self.keyed else key
            if key not in known:
                self.unknown.append(where)
                continue
            kept[key] = self.value(item, known[key], where, f"{go_path}.{key}" if go_path else key, struct)
        return kept

    def _element(self, element: Any, index: int, body: Schema) -> str:
        keys = body.get("x-kubernetes-list-map-keys")
        if self.keyed and isinstance(element, dict) and isinstance(keys, list):
            shown = ",".join(f"{k}={json.dumps(element.get(k))}" for k in keys if k in element)
            return f"[{shown}]"
        return f"[{index}]"

    def _wrong(self, value: Any, schema: Schema, body: Schema, path: str, go_path: str, struct: str) -> WrongType:
        if self.keyed:
            expected = " or ".join(sorted({_SMD_EXPECTED[t] for t in _types(body)}))
            return WrongType(f"{path}: expected {expected}, got {_SMD_KINDS.get(type(value), 'value')}")
        short = struct.rsplit(".", maxsplit=1)[-1]
        return WrongType(
            f"json: cannot unmarshal {_go_json_kind(value, _types(body))} into Go struct field"
            f" {short}.{go_path} of type {_go_type(schema)}"
        )  # fmt: skip


def decode(obj: dict[str, Any], schema: Schema, *, kind: str) -> Decoded:
    """``obj`` read into ``kind`` (whose definition is ``schema``) as the API server's JSON decoder reads it; raises
    ``WrongType`` for a value of the wrong type."""
    walk = _Walk(keyed=False)
    kept = walk.fields(obj, schema.get("properties") or {}, "", "", kind)
    return Decoded(kept, walk.unknown, walk.duplicates)


def undeclared_in_apply(config: dict[str, Any], schema: Schema) -> list[str]:
    """What structured-merge-diff refuses in an applied configuration: fields not in the schema and values of the
    wrong type, each as ``.spec.foo: field not declared in schema``."""
    walk = _Walk(keyed=True)
    errors: list[str] = []
    try:
        walk.fields(config, schema.get("properties") or {}, "", "", "")
    except WrongType as exc:
        errors.append(str(exc))
    return [f"{path}: field not declared in schema" for path in walk.unknown] + errors


def _problems(unknown: Sequence[str], duplicates: Sequence[str]) -> list[str]:
    return [f'unknown field "{path}"' for path in unknown] + [f'duplicate field "{path}"' for path in duplicates]


def strict_message(unknown: Sequence[str], duplicates: Sequence[str] = ()) -> str:
    """The strict decoder's error for these unknown and duplicate fields."""
    return "strict decoding error: " + ", ".join(_problems(unknown, duplicates))


def warnings(unknown: Sequence[str], duplicates: Sequence[str] = ()) -> list[str]:
    """The ``Warning`` headers of ``Warn``: one per unknown or duplicate field, in the API server's form."""
    return ['299 - "' + problem.replace('"', '\\"') + '"' for problem in _problems(unknown, duplicates)]


def field_validation(asked: str | None) -> FieldValidation:
    """The request's ``fieldValidation`` (None: the default); raises ValueError with the API server's words."""
    if not asked:
        return DEFAULT_FIELD_VALIDATION
    if asked not in FIELD_VALIDATIONS:
        raise ValueError(f"fieldValidation must be one of Ignore, Warn or Strict, not {asked!r}")
    return asked  # type: ignore[return-value]


class UndeclaredFields(StoreError):
    """Server-side apply of a configuration with fields the kind does not declare: the API server answers 500
    without a reason (kubernetes/kubernetes#122480), and so does this one."""

    code, reason = 500, ""

    def status(self) -> dict[str, Any]:
        body = super().status()
        del body["reason"]
        return body


def undeclared_fields(errors: list[str], *, namespace: str, name: str, api_version: str, kind: str) -> UndeclaredFields:
    """The error for ``undeclared_in_apply``'s findings, worded as structured-merge-diff words it."""
    group, _, version = api_version.rpartition("/")
    listed = errors[0] if len(errors) == 1 else "\n  ".join(["errors:", *errors])
    return UndeclaredFields(
        f"failed to create typed patch object ({namespace}/{name}; {group}/{version}, Kind={kind}): {listed}"
    )


class PatchInvalid(StoreError):
    """422 for a patched object the decoder refuses (an unknown field under ``Strict``, a wrong type): the API
    server words it as an invalid ``patch`` field whose value is the patch (strategic merge, as Go prints a map)
    or the patched object (JSON and merge patches); kubectl shows ``The request is invalid: patch: ...``."""

    code, reason = 422, "Invalid"

    def __init__(self, shown: str, detail: str) -> None:
        body = f"Invalid value: {json.dumps(shown, ensure_ascii=False)}: {detail}"
        super().__init__(f' "" is invalid: patch: {body}')
        self.cause = {"reason": "FieldValueInvalid", "message": body, "field": "patch"}

    def status(self) -> dict[str, Any]:
        answer = super().status()
        answer["details"] = {"causes": [self.cause]}
        return answer


def go_printed(value: Any) -> str:
    """``value`` (decoded JSON) as Go's ``%+v`` prints the ``map[string]interface{}`` it decodes into:
    ``map[spec:map[replicas:2]]``, keys sorted, numbers as float64."""
    if isinstance(value, dict):
        return "map[" + " ".join(f"{key}:{go_printed(value[key])}" for key in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(go_printed(item) for item in value) + "]"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _go_float(float(value))
    return str(value)


def _go_float(number: float) -> str:
    """Go's shortest ``%v`` of a float64: fixed from 1e-4 up to 1e6, ``1e+06`` beyond."""
    if number == 0:
        return "0"
    sign, digits, exponent = Decimal(repr(number)).normalize().as_tuple()
    assert isinstance(exponent, int)
    power = len(digits) - 1 + exponent
    if -4 <= power < 6:
        return format(Decimal(repr(number)).normalize(), "f")
    mantissa = str(digits[0]) + ("." + "".join(map(str, digits[1:])) if len(digits) > 1 else "")
    return f"{'-' if sign else ''}{mantissa}e{'+' if power >= 0 else '-'}{abs(power):02d}"
