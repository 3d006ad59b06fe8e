"""PATCH bodies applied to stored objects, as the API server applies them: ``apply_patch(kind, patch_type, obj,
body)`` returns the patched object (a new dict; ``obj`` is never changed), or raises the API error the server
would answer with. Called by ``server`` for PATCH on an object, its ``status`` and its ``scale``.

- ``application/json-patch+json`` (RFC 6902) through the ``jsonpatch`` library;
- ``application/merge-patch+json`` (RFC 7386) through ``json_merge_patch``: maps merge, ``null`` deletes, lists are
  replaced whole;
- ``application/strategic-merge-patch+json``: a merge patch in which lists merge as Kubernetes' own type
  definitions say (``x-kubernetes-patch-strategy`` / ``x-kubernetes-patch-merge-key``, read from the definitions
  the ``kubernetes-validate`` package ships): ``containers``, ``env``, ``ports``, ``volumes``, ``tolerations``...
  merge by their key, ``finalizers`` as a set, other lists are replaced. Directives: ``$patch: delete`` /
  ``replace`` / ``merge`` on a map or a list element, ``$retainKeys``, ``$deleteFromPrimitiveList/<field>``;
  ``$setElementOrder/<field>`` is accepted and ignored (elements keep the original's order, new ones at the end).

Not here: server-side apply (``application/apply-patch+yaml``), which ``applying`` does (with ``strategic_merge``).

Pure: no I/O beyond reading the definitions file once.
"""

from __future__ import annotations

import copy
import functools
import json
from importlib import resources as package_files
from typing import Any, Final

import json_merge_patch  # type: ignore[import-untyped]
import jsonpatch

from simulator.cluster.store import BadRequest, Invalid, UnsupportedMediaType

JSON_PATCH: Final = "application/json-patch+json"
MERGE_PATCH: Final = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH: Final = "application/strategic-merge-patch+json"
APPLY_PATCH: Final = "application/apply-patch+yaml"
# The order the API server lists them in its 415 answer.
PATCH_TYPES: Final = (JSON_PATCH, MERGE_PATCH, APPLY_PATCH, STRATEGIC_MERGE_PATCH)
# Kubernetes 1.37's definitions: the newest kubernetes-validate ships; patch strategies have not changed since 1.2x.
_DEFINITIONS: Final = ("kubernetes-json-schema", "v1.37.0-local", "_definitions.json")
REF_PREFIX: Final = "#/$defs/"
_DIRECTIVE: Final = "$patch"
_RETAIN_KEYS: Final = "$retainKeys"
_DELETE_FROM: Final = "$deleteFromPrimitiveList/"
_SET_ORDER: Final = "$setElementOrder/"
# Group name in the definitions' ids (io.k8s.api.<group>.<version>.<Kind>) for each API group served.
_DEFINITION_GROUPS: Final = {
    "": "core",
    "apps": "apps",
    "coordination.k8s.io": "coordination",
    "autoscaling": "autoscaling",
    "policy": "policy",
    "batch": "batch",
}

Schema = dict[str, Any]


class PatchRejected(Invalid):
    """422 for a patch that is well formed but cannot be applied (a JSON patch ``test`` that fails, a path that
    is not there): the API server's message, with the reason as a cause, as ``NewGenericServerResponse`` words it."""

    def __init__(self, cause: str) -> None:
        super().__init__("the server rejected our request due to an error in our request")
        self.cause = cause

    def status(self) -> dict[str, Any]:
        body = super().status()
        body["details"] = {"causes": [{"reason": "UnexpectedServerResponse", "message": self.cause}]}
        return body


@functools.cache
def definitions() -> dict[str, Schema]:
    """Kubernetes 1.37's type definitions by name (``io.k8s.api.apps.v1.Deployment``), JSON Schema with ``$defs``
    references; read once per process."""
    # The package has no API for this file, only the file; read as data, never imported.
    path = package_files.files("kubernetes_validate").joinpath(*_DEFINITIONS)
    loaded: dict[str, Schema] = json.loads(path.read_text(encoding="utf-8"))["$defs"]
    return loaded


def definition_name(api_version: str, kind: str) -> str | None:
    """The name of ``kind``'s definition in ``api_version`` (``io.k8s.api.apps.v1.Deployment``), or None for a
    group not served."""
    group, _, version = api_version.rpartition("/")
    short = _DEFINITION_GROUPS.get(group)
    return None if short is None else f"io.k8s.api.{short}.{version}.{kind}"


def definition_of(api_version: str, kind: str) -> Schema | None:
    """Kubernetes' type definition of ``kind`` in ``api_version`` (``apps/v1``, ``Deployment``), or None."""
    name = definition_name(api_version, kind)
    return None if name is None else definitions().get(name)


def apply_patch(patch_type: str, obj: dict[str, Any], body: bytes, *, schema: Schema | None) -> dict[str, Any]:
    """``obj`` with the patch ``body`` of ``patch_type`` applied; ``schema`` (``definition_of``) drives strategic
    merge. Raises 415 for a type not served (and for apply, which ``server`` sends to ``applying``), 400 for a body that is not a patch, 422 for one that cannot apply."""
    if patch_type not in PATCH_TYPES or patch_type == APPLY_PATCH:  # apply is ``applying``'s, not a patch
        raise UnsupportedMediaType(
            "the body of the request was in an unknown format - accepted media types include: " + ", ".join(PATCH_TYPES)
        )
    try:
        patch = json.loads(body)
    except ValueError as exc:
        raise BadRequest(f"error decoding patch: {exc}") from None
    if patch_type == JSON_PATCH:
        return _json_patch(obj, patch)
    if not isinstance(patch, dict):
        raise BadRequest(f"the patch must be a JSON object, not {type(patch).__name__}")
    if patch_type == MERGE_PATCH:
        merged: dict[str, Any] = json_merge_patch.merge(copy.deepcopy(obj), copy.deepcopy(patch))
        return merged
    return strategic_merge(obj, patch, schema)


def _json_patch(obj: dict[str, Any], patch: Any) -> dict[str, Any]:
    if not isinstance(patch, list) or not all(isinstance(op, dict) for op in patch):
        raise BadRequest("json: cannot unmarshal the patch into a list of operations: it must be a JSON array")
    try:
        operations = jsonpatch.JsonPatch(patch)
        patched = operations.apply(obj)  # copies obj first: in_place is False by default
    except jsonpatch.InvalidJsonPatch as exc:
        raise BadRequest(str(exc)) from None
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
        raise PatchRejected(str(exc)) from None
    if not isinstance(patched, dict):
        raise PatchRejected("the patched document is not an object")
    return patched


# --- strategic merge ----------------------------------------------------------------------------------------------


def strategic_merge(obj: dict[str, Any], patch: dict[str, Any], schema: Schema | None) -> dict[str, Any]:
    """A strategic merge patch applied as apimachinery's ``StrategicMergePatch`` does, for the lists the schema
    marks; without a schema (or for fields it does not know) it is a merge patch."""
    merged = _merge_map(copy.deepcopy(obj), patch, schema)
    if merged is None:
        raise BadRequest("a strategic merge patch may not delete the whole object ($patch: delete at the top)")
    return merged


def resolve(schema: Schema | None) -> Schema | None:
    """``schema`` with its ``$ref`` followed (to the definition it names)."""
    while schema is not None and "$ref" in schema:
        schema = definitions().get(str(schema["$ref"]).removeprefix(REF_PREFIX))
    return schema


def field_schema(schema: Schema | None, name: str) -> Schema | None:
    schema = resolve(schema)
    if schema is None:
        return None
    properties = schema.get("properties") or {}
    if name in properties:
        found: Schema = properties[name]
        return found
    extra = schema.get("additionalProperties")
    return extra if isinstance(extra, dict) else None


def item_schema(schema: Schema | None) -> Schema | None:
    schema = resolve(schema)
    items = schema.get("items") if schema is not None else None
    return items if isinstance(items, dict) else None


def _strategy(schema: Schema | None) -> tuple[set[str], str | None]:
    if schema is None:
        return set(), None
    strategies = str(schema.get("x-kubernetes-patch-strategy", ""))
    return {s for s in strategies.split(",") if s}, schema.get("x-kubernetes-patch-merge-key")


def _merge_map(original: dict[str, Any], patch: dict[str, Any], schema: Schema | None) -> dict[str, Any] | None:
    """Merge ``patch`` into ``original`` (which this owns); None when the patch deletes the map."""
    directive = patch.get(_DIRECTIVE)
    if directive == "delete":
        return None
    if directive == "replace":
        replaced: dict[str, Any] = _clean({k: v for k, v in patch.items() if k != _DIRECTIVE})
        return replaced
    if directive not in (None, "merge"):
        raise BadRequest(f"unknown patch type: {directive!r} (the $patch directive takes replace, delete or merge)")
    retain = patch.get(_RETAIN_KEYS)
    if retain is not None:
        if not isinstance(retain, list) or not all(isinstance(k, str) for k in retain):
            raise BadRequest(f"invalid $retainKeys: {retain!r}: it must be a list of field names")
        original = {k: v for k, v in original.items() if k in retain}
    for key, value in patch.items():
        if key in (_DIRECTIVE, _RETAIN_KEYS) or key.startswith(_SET_ORDER):
            continue
        if key.startswith(_DELETE_FROM):
            field = key.removeprefix(_DELETE_FROM)
            if not isinstance(value, list):
                raise BadRequest(f"invalid {key}: it must be a list of the values to delete")
            if isinstance(original.get(field), list):
                original[field] = [v for v in original[field] if v not in value]
            continue
        if value is None:
            original.pop(key, None)
            continue
        sub_schema = field_schema(schema, key)
        current = original.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            merged = _merge_map(current, value, sub_schema)
            if merged is None:
                original.pop(key, None)
            else:
                original[key] = merged
        elif isinstance(value, dict):
            merged = _merge_map({}, value, sub_schema)
            if merged is None:
                original.pop(key, None)
            else:
                original[key] = merged
        elif isinstance(value, list):
            original[key] = _merge_list(current if isinstance(current, list) else [], value, sub_schema, key)
        else:
            original[key] = value
    return original


def _merge_list(original: list[Any], patch: list[Any], schema: Schema | None, name: str) -> list[Any]:
    strategies, merge_key = _strategy(schema)
    if any(isinstance(item, dict) and item.get(_DIRECTIVE) == "replace" for item in patch):
        return [_clean(item) for item in patch if not (isinstance(item, dict) and _DIRECTIVE in item)]
    if "merge" not in strategies:
        return [_clean(item) for item in patch]
    if merge_key is None:
        # A set of primitives (finalizers): the original's, then what the patch adds.
        return original + [item for item in patch if item not in original]
    element_schema = item_schema(schema)
    merged = list(original)
    for item in patch:
        if not isinstance(item, dict):
            raise BadRequest(f"{name}: a list merged by {merge_key!r} takes objects, not {item!r}")
        if merge_key not in item:
            raise BadRequest(f"{name}: map: {item} does not contain declared merge key: {merge_key}")
        at = next(
            (i for i, old in enumerate(merged) if isinstance(old, dict) and old.get(merge_key) == item[merge_key]), None
        )
        if item.get(_DIRECTIVE) == "delete":
            if at is not None:
                del merged[at]
            continue
        if at is None:
            added = _merge_map({}, item, element_schema)
            if added is not None:
                merged.append(added)
            continue
        updated = _merge_map(copy.deepcopy(merged[at]), item, element_schema)
        if updated is None:
            del merged[at]
        else:
            merged[at] = updated
    return merged


def _clean(value: Any) -> Any:
    """A patch's value without its directives or nulls, as stored when nothing was there to merge into."""
    if isinstance(value, dict):
        return {
            k: _clean(v)
            for k, v in value.items()
            if v is not None and k not in (_DIRECTIVE, _RETAIN_KEYS) and not k.startswith((_SET_ORDER, _DELETE_FROM))
        }
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value
