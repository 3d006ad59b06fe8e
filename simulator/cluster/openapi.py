"""The OpenAPI v3 documents a simulated cluster serves, as the API server publishes them: ``/openapi/v3`` (an index
of documents, each at a ``serverRelativeURL`` with a hash) and one document per group/version (``api/v1``,
``apis/apps/v1``, ``apis/coordination.k8s.io/v1``) and per discovery path (``api``, ``apis``, ``apis/<group>``,
``version``). Called by ``server``.

kubectl reads them for three things, and each needs what the real documents carry:

- deciding whether to validate on the server: the PATCH operation of a kind's path, marked with
  ``x-kubernetes-group-version-kind``, declares the ``fieldValidation`` query parameter, so kubectl 1.27+ sends
  ``fieldValidation=Strict`` and validates nothing itself (``validating`` does it here);
- client-side ``apply``'s three-way strategic merge patch: the PATCH operation accepts
  ``application/strategic-merge-patch+json`` and ``components.schemas`` carry ``x-kubernetes-patch-strategy`` /
  ``-merge-key``;
- ``kubectl explain``: descriptions and types.

The schemas are Kubernetes 1.37's definitions that ``kubernetes-validate`` ships (JSON Schema with ``$defs``),
rewritten as OpenAPI 3.0 (``#/components/schemas/...`` references, one type per schema, ``allOf`` around a
reference with a description beside it, as the API server writes them); each document carries only the schemas
its paths reach. Pure; every document is built once per process.
"""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Any, Final

from simulator.cluster.patching import REF_PREFIX, Schema, definition_name, definitions
from simulator.cluster.resources import GROUPS, RESOURCES, Resource
from simulator.cluster.scales import API_VERSION as SCALE_API_VERSION
from simulator.cluster.scales import KIND as SCALE_KIND

_COMPONENTS: Final = "#/components/schemas/"
_META: Final = "io.k8s.apimachinery.pkg.apis.meta.v1."
_TITLE: Final = {"title": "Kubernetes", "version": "v1.32.0"}
_RESPONSE_TYPES: Final = ("application/json", "application/yaml", "application/vnd.kubernetes.protobuf")
_PATCH_TYPES: Final = (
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
)


def _parameter(name: str, where: str, description: str, *, required: bool = False) -> dict[str, Any]:
    parameter: dict[str, Any] = {
        "name": name,
        "in": where,
        "description": description,
        "schema": {"type": "string", "uniqueItems": True},
    }
    if required:
        parameter["required"] = True
    return parameter


_DRY_RUN: Final = _parameter("dryRun", "query", "When present, indicates that modifications should not be persisted.")
_FIELD_MANAGER: Final = _parameter(
    "fieldManager", "query", "fieldManager is a name associated with the actor or entity that is making these changes."
)
# The parameter whose presence on a PATCH makes kubectl leave validation to the server.
_FIELD_VALIDATION: Final = _parameter(
    "fieldValidation",
    "query",
    "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing"
    " unknown or duplicate fields. Valid values are: - Ignore: This will ignore any unknown fields that are silently"
    " dropped from the object, and will ignore all but the last duplicate field that the decoder encounters. - Warn:"
    " This will send a warning via the standard warning response header for each unknown field that is dropped from"
    " the object, and for each duplicate field that is encountered. The request will still succeed if there are no"
    " other errors, and will only persist the last of any duplicate fields. This is the default. - Strict: This will"
    " fail the request with a BadRequest error if any unknown fields would be dropped from the object, or if any"
    " duplicate fields are present. The error returned from the server will contain all unknown and duplicate fields"
    " encountered.",
)
_FORCE: Final = {
    "name": "force",
    "in": "query",
    "description": 'Force is going to "force" Apply requests. It must be unset for non-apply patch requests.',
    "schema": {"type": "boolean", "uniqueItems": True},
}
_LIST_PARAMETERS: Final = [
    _parameter("continue", "query", "The continue option should be set when retrieving more results from the server."),
    _parameter("fieldSelector", "query", "A selector to restrict the list of returned objects by their fields."),
    _parameter("labelSelector", "query", "A selector to restrict the list of returned objects by their labels."),
    {"name": "limit", "in": "query", "description": "limit is a maximum number of responses to return for a list call.",
     "schema": {"type": "integer", "uniqueItems": True}},
    _parameter("resourceVersion", "query", "Sets a constraint on what resource versions a request may be served from."),
    {"name": "timeoutSeconds", "in": "query", "description": "Timeout for the list/watch call.",
     "schema": {"type": "integer", "uniqueItems": True}},
    {"name": "watch", "in": "query", "description": "Watch for changes to the described resources.",
     "schema": {"type": "boolean", "uniqueItems": True}},
]  # fmt: skip


# --- schemas ------------------------------------------------------------------------------------------------------


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _COMPONENTS + name}


def _convert(schema: Any, *, top: bool = False) -> Any:
    """One JSON Schema definition as OpenAPI 3.0: ``["string", "null"]`` types become ``string``, references point
    into ``components``, a reference with siblings is wrapped in ``allOf`` (3.0 ignores a ``$ref``'s siblings)."""
    if isinstance(schema, list):
        return [_convert(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type" and isinstance(value, list):
            kinds = [v for v in value if v != "null"]
            out["type"] = kinds[0] if len(kinds) == 1 else kinds
        elif key == "$ref":
            out["$ref"] = _COMPONENTS + str(value).removeprefix(REF_PREFIX)
        elif key == "properties" and isinstance(value, dict):
            out["properties"] = {name: _convert(field) for name, field in value.items()}
            if top and "x-kubernetes-group-version-kind" in schema:
                # The definitions pin apiVersion and kind with an enum; the API server's documents do not.
                for name in ("apiVersion", "kind"):
                    if name in out["properties"]:
                        out["properties"][name].pop("enum", None)
        elif key in ("items", "additionalProperties", "oneOf", "anyOf", "allOf", "not"):
            out[key] = _convert(value)
        else:
            out[key] = value
    if "$ref" in out and len(out) > 1:
        out["allOf"] = [{"$ref": out.pop("$ref")}]
    return out


def _references(schema: Any) -> set[str]:
    """Every ``$ref`` inside ``schema`` (a definition, or a document's paths), as written."""
    found: set[str] = set()
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "$ref" and isinstance(value, str):
                found.add(value)
            else:
                found |= _references(value)
    elif isinstance(schema, list):
        for item in schema:
            found |= _references(item)
    return found


def _schemas(roots: set[str]) -> dict[str, Schema]:
    """The definitions named in ``roots`` and every one they reach, converted."""
    known = definitions()
    seen: set[str] = set()
    todo = [name for name in roots if name in known]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        named = (ref.removeprefix(REF_PREFIX) for ref in _references(known[name]))
        todo.extend(ref for ref in named if ref in known and ref not in seen)
    return {name: _convert(known[name], top=True) for name in sorted(seen)}


# --- paths --------------------------------------------------------------------------------------------------------


def _content(name: str) -> dict[str, Any]:
    return {media: {"schema": _ref(name)} for media in _RESPONSE_TYPES}


def _operation(
    action: str,
    verb: str,
    description: str,
    gvk: dict[str, str],
    response: str,
    *,
    parameters: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    created: bool = False,
) -> dict[str, Any]:
    tag = ("core" if not gvk["group"] else gvk["group"].split(".")[0]) + f"_{gvk['version']}"
    responses: dict[str, Any] = {"200": {"description": "OK", "content": _content(response)}}
    if created:
        responses["201"] = {"description": "Created", "content": _content(response)}
    responses["401"] = {"description": "Unauthorized"}
    operation: dict[str, Any] = {
        "tags": [tag],
        "description": description,
        "operationId": f"{verb}{tag.title().replace('_', '')}{gvk['kind']}",
        "parameters": parameters or [],
        "responses": responses,
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
    }
    if body is not None:
        operation["requestBody"] = body
    return operation


def _body(name: str, media: tuple[str, ...] = ("*/*",)) -> dict[str, Any]:
    return {"content": {m: {"schema": _ref(name)} for m in media}, "required": True}


def _writes(kind_name: str, gvk: dict[str, str], what: str) -> dict[str, Any]:
    """PUT and PATCH of an object (or its status or scale): both declare ``fieldValidation``."""
    write_parameters = [_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION]
    kind = gvk["kind"]
    return {
        "put": _operation(
            "put", "replace", f"replace {what} of the specified {kind}", gvk, kind_name,
            parameters=write_parameters, body=_body(kind_name), created=True,
        ),
        "patch": _operation(
            "patch", "patch", f"partially update {what} of the specified {kind}", gvk, kind_name,
            parameters=[*write_parameters, _FORCE], body=_body(_META + "Patch", _PATCH_TYPES), created=True,
        ),
    }  # fmt: skip


def _resource_paths(resource: Resource) -> dict[str, Any]:
    name = definition_name(resource.api_version, resource.kind)
    assert name is not None, resource
    gvk = {"group": resource.group, "version": resource.version, "kind": resource.kind}
    root = f"/api/{resource.version}" if not resource.group else f"/apis/{resource.api_version}"
    namespace = _parameter("namespace", "path", "object name and auth scope", required=True)
    object_name = _parameter("name", "path", f"name of the {resource.kind}", required=True)
    scope = [namespace] if resource.namespaced else []
    collection = (
        f"{root}/namespaces/{{namespace}}/{resource.plural}" if resource.namespaced else f"{root}/{resource.plural}"
    )
    kind = resource.kind
    paths: dict[str, Any] = {
        collection: {
            "get": _operation(
                "list", "list", f"list or watch objects of kind {kind}", gvk, f"{name}List", parameters=_LIST_PARAMETERS
            ),
            "post": _operation(
                "post", "create", f"create a {kind}", gvk, name,
                parameters=[_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION], body=_body(name), created=True,
            ),
            "delete": _operation(
                "deletecollection", "deleteCollection", f"delete collection of {kind}", gvk, _META + "Status",
                parameters=_LIST_PARAMETERS, body=_body(_META + "DeleteOptions"),
            ),
            "parameters": scope,
        },
        f"{collection}/{{name}}": {
            "get": _operation("get", "read", f"read the specified {kind}", gvk, name),
            **_writes(name, gvk, "the"),
            "delete": _operation(
                "delete", "delete", f"delete a {kind}", gvk, _META + "Status", body=_body(_META + "DeleteOptions")
            ),
            "parameters": [object_name, *scope],
        },
    }  # fmt: skip
    if resource.namespaced:
        paths[f"{root}/{resource.plural}"] = {
            "get": _operation(
                "list", "list", f"list or watch objects of kind {kind}", gvk, f"{name}List", parameters=_LIST_PARAMETERS
            )
        }
    if resource.has_status:
        paths[f"{collection}/{{name}}/status"] = {
            "get": _operation("get", "read", f"read status of the specified {kind}", gvk, name),
            **_writes(name, gvk, "status"),
            "parameters": [object_name, *scope],
        }
    if resource.has_scale:
        scale = definition_name(SCALE_API_VERSION, SCALE_KIND)
        assert scale is not None
        scale_gvk = {"group": "autoscaling", "version": "v1", "kind": SCALE_KIND}
        paths[f"{collection}/{{name}}/scale"] = {
            "get": _operation("get", "read", f"read scale of the specified {kind}", scale_gvk, scale),
            **_writes(scale, scale_gvk, "scale"),
            "parameters": [object_name, *scope],
        }
    return paths


def _document(paths: dict[str, Any]) -> dict[str, Any]:
    named = {ref.removeprefix(_COMPONENTS) for ref in _references(paths)}
    return {
        "openapi": "3.0.0",
        "info": dict(_TITLE),
        "paths": paths,
        "components": {
            "schemas": _schemas(named),
            "securitySchemes": {
                "BearerToken": {"type": "apiKey", "description": "Bearer Token authentication", "name": "authorization",
                                "in": "header"}
            },
        },
    }  # fmt: skip


def _get(tag: str, operation_id: str, description: str, response: str) -> dict[str, Any]:
    """A path answering GET only (discovery, ``/version``)."""
    return {
        "get": {
            "tags": [tag],
            "description": description,
            "operationId": operation_id,
            "responses": {
                "200": {"description": "OK", "content": _content(response)},
                "401": {"description": "Unauthorized"},
            },
        }
    }


@functools.cache
def _documents() -> dict[str, bytes]:
    """Every document by its index key (``apis/apps/v1``), encoded once."""
    built: dict[str, dict[str, Any]] = {}
    by_group_version: dict[str, dict[str, Any]] = {}
    for resource in RESOURCES:
        key = f"api/{resource.version}" if not resource.group else f"apis/{resource.api_version}"
        by_group_version.setdefault(key, {}).update(_resource_paths(resource))
    for key, paths in by_group_version.items():
        # The API server lists a group/version's resources beside their paths, as discovery does.
        tag = key.removeprefix("apis/").removeprefix("api/").replace("/", "_").replace(".k8s.io", "")
        paths[f"/{key}/"] = _get(tag, "getAPIResources", "get available resources", _META + "APIResourceList")
        built[key] = _document(dict(sorted(paths.items())))
    built["api"] = _document(
        {"/api/": _get("core", "getCoreAPIVersions", "get available API versions", _META + "APIVersions")}
    )
    built["apis"] = _document(
        {"/apis/": _get("apis", "getAPIVersions", "get available API versions", _META + "APIGroupList")}
    )
    for group in GROUPS:
        built[f"apis/{group}"] = _document(
            {
                f"/apis/{group}/": _get(
                    group.replace(".k8s.io", ""), "getAPIGroup", "get information of a group", _META + "APIGroup"
                )
            }
        )
    built["version"] = _document(
        {"/version/": _get("version", "getCodeVersion", "get the code version", "io.k8s.apimachinery.pkg.version.Info")}
    )
    return {key: json.dumps(doc, separators=(",", ":")).encode() for key, doc in sorted(built.items())}


def document(key: str) -> bytes | None:
    """The document at ``/openapi/v3/<key>`` (``apis/apps/v1``), JSON-encoded; None for one not served."""
    return _documents().get(key)


@functools.cache
def index() -> bytes:
    """``/openapi/v3``: where each document is, with a hash of its content (clients cache by it)."""
    paths = {
        key: {"serverRelativeURL": f"/openapi/v3/{key}?hash={hashlib.sha512(body).hexdigest().upper()}"}
        for key, body in _documents().items()
    }
    return json.dumps({"paths": paths}, separators=(",", ":")).encode()
