"""Server-side apply (``application/apply-patch+yaml``), the part of it a simulated cluster needs: each apply
manager owns the fields of its last applied configuration, recorded in ``metadata.managedFields`` (operation
``Apply``, ``FieldsV1``); applying merges the configuration into the live object (lists by their keys, as
strategic merge does), removes fields the manager applied before and no longer does (unless another manager owns
them), and refuses with 409 a field another manager owns with a different value, unless ``force`` takes it over.
Called by ``server`` for PATCH with the apply content type (and to create an object that does not exist yet).

Simplified, and said so in docs/simulated-clusters.md: only apply managers own fields. Writes by PUT, POST or the
other patch types record no ``Update`` entries, so they never conflict with an apply. Pure.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Final

from simulator.cluster.patching import Schema, field_schema, item_schema, strategic_merge
from simulator.cluster.store import Conflict, Invalid

FieldPath = tuple[str, ...]
# Set by the server on every object, never owned by a manager (the API server strips them the same way).
_UNOWNED_METADATA: Final = (
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "managedFields",
)


class ApplyConflict(Conflict):
    """409 naming each field another manager owns, in the API server's wording and with its causes."""

    def __init__(self, conflicts: list[tuple[str, str]]) -> None:
        self.conflicts = conflicts
        count = len(conflicts)
        managers = sorted({m for m, _ in conflicts})
        if count == 1:
            manager, field = conflicts[0]
            message = f'Apply failed with 1 conflict: conflict with "{manager}": {field}'
        else:
            lines = [f'conflicts with "{m}":\n' + "\n".join(f"- {f}" for n, f in conflicts if n == m) for m in managers]
            message = f"Apply failed with {count} conflicts: " + "\n".join(lines)
        super().__init__(message)

    def status(self) -> dict[str, Any]:
        body = super().status()
        body["details"] = {
            "causes": [
                {"reason": "FieldManagerConflict", "message": f'conflict with "{m}"', "field": f}
                for m, f in self.conflicts
            ]
        }
        return body


def server_side_apply(
    live: dict[str, Any] | None,
    config: Any,
    *,
    manager: str,
    force: bool,
    schema: Schema | None,
    api_version: str,
    now: str,
    has_status: bool,
) -> dict[str, Any]:
    """The object after ``manager`` applies ``config`` to ``live`` (None: it does not exist yet), with its
    ``managedFields``; ``live`` is not changed. Raises 422 for a missing manager, 409 ApplyConflict."""
    if not manager:
        raise Invalid(
            'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch'
        )
    if not isinstance(config, dict):
        raise Invalid("the applied configuration must be an object")
    owned_config = _ownable(config, has_status=has_status)
    wanted = fields_of(owned_config, schema)
    base = copy.deepcopy(live) if live is not None else {}
    entries: list[dict[str, Any]] = list(base.get("metadata", {}).get("managedFields") or [])
    mine = next((e for e in entries if e.get("manager") == manager and e.get("operation") == "Apply"), None)
    previous = paths_of(mine.get("fieldsV1") or {}) if mine else set()
    others = {
        id(e): paths_of(e.get("fieldsV1") or {})
        for e in entries
        if e is not mine and isinstance(e.get("fieldsV1"), dict)
    }
    conflicts: list[tuple[str, str]] = []
    for entry in entries:
        theirs = others.get(id(entry))
        if theirs is None:
            continue
        for path in sorted(wanted & theirs):
            if path[-1] == "." or path[-1].startswith("v:"):
                continue  # an element's existence or a set member: the same whoever applies it
            if _lookup(base, path) != _lookup(owned_config, path):
                conflicts.append((str(entry.get("manager", "")), _shown(path)))
    if conflicts and not force:
        raise ApplyConflict(conflicts)
    if force:
        for entry in entries:
            if id(entry) in others:
                others[id(entry)] -= wanted
    merged = strategic_merge(base, owned_config, schema)
    still_owned = set().union(*others.values()) if others else set()
    # List elements first (found by their key fields), then leaves; those of a removed element are gone already.
    for path in sorted(previous - wanted - still_owned, key=lambda p: (p[-1] != ".", p)):
        _remove(merged, path)
    for key in ("apiVersion", "kind"):
        if key in config:
            merged[key] = config[key]
    metadata = merged.setdefault("metadata", {})
    for key in ("name", "namespace"):
        if key in (config.get("metadata") or {}) and live is None:
            metadata[key] = config["metadata"][key]
    own: dict[str, Any] = {
        "manager": manager,
        "operation": "Apply",
        "apiVersion": api_version,
        "time": now,
        "fieldsType": "FieldsV1",
        "fieldsV1": fields_v1(wanted),
    }
    if mine is not None and {**mine, "time": now} == own:
        own = mine  # the same fields again: no new time, so an apply that changes nothing is no write
    kept: list[dict[str, Any]] = []
    for entry in entries:
        if entry is mine:
            kept.append(own)  # in its place: a reordered list would be a change
        elif id(entry) in others:
            fields = others[id(entry)]
            if fields:  # a manager that owns nothing any more leaves the list, as in Kubernetes
                kept.append({**entry, "fieldsV1": fields_v1(fields)})
        else:
            kept.append(entry)
    if mine is None:
        kept.append(own)
    metadata["managedFields"] = kept
    return merged


def _ownable(config: dict[str, Any], *, has_status: bool) -> dict[str, Any]:
    """The part of an applied configuration a manager can own."""
    owned = {k: v for k, v in config.items() if k not in ("apiVersion", "kind") and not (has_status and k == "status")}
    metadata = owned.get("metadata")
    if isinstance(metadata, dict):
        owned["metadata"] = {k: v for k, v in metadata.items() if k not in _UNOWNED_METADATA}
        if not owned["metadata"]:
            del owned["metadata"]
    return owned


# --- field sets -----------------------------------------------------------------------------------------------


def _list_keys(schema: Schema | None) -> tuple[str, list[str]]:
    """How a list is owned: ("map", keys) by element keys, ("set", []) by value, ("atomic", []) whole."""
    if schema is None:
        return "atomic", []
    keys = schema.get("x-kubernetes-list-map-keys")
    merge_key = schema.get("x-kubernetes-patch-merge-key")
    if isinstance(keys, list) and keys:
        return "map", [str(k) for k in keys]
    if merge_key:
        return "map", [str(merge_key)]
    if schema.get("x-kubernetes-list-type") == "set" or "merge" in str(schema.get("x-kubernetes-patch-strategy", "")):
        return "set", []
    return "atomic", []


def _element_key(item: dict[str, Any], keys: list[str]) -> str:
    return "k:" + json.dumps({k: item.get(k) for k in keys}, separators=(",", ":"))


def fields_of(value: dict[str, Any], schema: Schema | None, prefix: FieldPath = ()) -> set[FieldPath]:
    """The leaf fields a configuration sets, as FieldsV1 paths (``f:spec``, ``k:{"name":"app"}``, ``v:"x"``)."""
    out: set[FieldPath] = set()
    for key, sub in value.items():
        path = (*prefix, f"f:{key}")
        sub_schema = field_schema(schema, key)
        if isinstance(sub, dict) and sub:
            out |= fields_of(sub, sub_schema, path)
        elif isinstance(sub, list):
            kind, keys = _list_keys(sub_schema)
            if kind == "map" and all(isinstance(i, dict) for i in sub):
                for item in sub:
                    element = (*path, _element_key(item, keys))
                    out.add((*element, "."))
                    out |= fields_of(item, item_schema(sub_schema), element)
            elif kind == "set":
                out |= {(*path, "v:" + json.dumps(item, separators=(",", ":"))) for item in sub}
            else:
                out.add(path)
        else:
            out.add(path)
    return out


def fields_v1(paths: set[FieldPath]) -> dict[str, Any]:
    """Paths as the nested ``fieldsV1`` object of a managedFields entry."""
    tree: dict[str, Any] = {}
    for path in sorted(paths):
        node = tree
        for part in path:
            node = node.setdefault(part, {})
    return tree


def paths_of(tree: dict[str, Any], prefix: FieldPath = ()) -> set[FieldPath]:
    out: set[FieldPath] = set()
    for key, sub in tree.items():
        path = (*prefix, key)
        if isinstance(sub, dict) and sub:
            out |= paths_of(sub, path)
        else:
            out.add(path)
    return out


_MISSING: Final = object()


def _step(node: Any, part: str) -> Any:
    if part.startswith("f:") and isinstance(node, dict):
        return node.get(part[2:], _MISSING)
    if part.startswith("k:") and isinstance(node, list):
        wanted = json.loads(part[2:])
        return next(
            (i for i in node if isinstance(i, dict) and all(i.get(k) == v for k, v in wanted.items())), _MISSING
        )
    if part.startswith("v:") and isinstance(node, list):
        value = json.loads(part[2:])
        return value if value in node else _MISSING
    if part == ".":
        return node
    return _MISSING


def _lookup(obj: Any, path: FieldPath) -> Any:
    node = obj
    for part in path:
        node = _step(node, part)
        if node is _MISSING:
            return _MISSING
    return node


def _remove(obj: dict[str, Any], path: FieldPath) -> None:
    """Remove the field (or list element) ``path`` names; nothing if it is not there."""
    if path[-1] == ".":
        path = path[:-1]
    parent = _lookup(obj, path[:-1])
    last = path[-1]
    if isinstance(parent, dict) and last.startswith("f:"):
        parent.pop(last[2:], None)
    elif isinstance(parent, list):
        target = _step(parent, last)
        if target is not _MISSING:
            parent.remove(target)


def _shown(path: FieldPath) -> str:
    """A path as the API server names it in a conflict: ``.spec.containers[name="app"].image``."""
    text = ""
    for part in path:
        if part.startswith("f:"):
            text += "." + part[2:]
        elif part.startswith("k:"):
            keys = json.loads(part[2:])
            text += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in keys.items()) + "]"
        elif part.startswith("v:"):
            text += f"[={part[2:]}]"
    return text
