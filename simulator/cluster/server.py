"""The HTTP API of one simulated cluster, in the Kubernetes API server's paths and shapes, over a ``Store``:

- discovery in plain JSON: ``/version``, ``/api``, ``/apis``, ``/apis/<group>``, ``/api/v1``, ``/apis/<group>/<version>``
- for every kind of ``resources.RESOURCES``, cluster-scoped or namespaced paths: list (``labelSelector``,
  ``fieldSelector``, ``limit``/``continue``), watch (``?watch=true``: newline-delimited WatchEvents from a
  ``resourceVersion``, ``allowWatchBookmarks``, ``timeoutSeconds``, 410 Expired as an ERROR event), get, create,
  update (PUT), patch (JSON, merge and strategic merge: ``patching``; server-side apply: ``applying``), delete and deletecollection; the ``status``
  subresource (get, update, patch) and the ``scale`` subresource of deployments and replicasets (``scales``)
- ``/openapi/v3`` and its per-group documents (``openapi``); bodies decoded as the API server decodes them, with
  ``fieldValidation`` (``validating``), JSON or, for the kinds kubectl's generators send so, protobuf (``protobuf``)
- ``Accept: application/json;as=Table;g=meta.k8s.io;v=v1``: ``kubectl get``'s tables (``tables.table``)
- errors as ``Status`` objects with the API server's reasons, codes and wording

Writes honour ``dryRun=All`` (kubectl's ``--dry-run=server``): validated, admitted and answered as if stored, and
nothing kept (``Store``'s ``dry_run``). Server-side apply (``applying``) tracks apply managers only. Not served yet:
``/openapi/v2`` (404; neither kubectl nor
the official client asks for it while v3 is there), aggregated discovery (kubectl falls back to the plain documents
above).

Every route is ``async def`` and the store is only touched on the server's event loop, so it needs no lock; other
threads go through ``BackgroundCluster.call``. ``serve_cluster`` runs inside a caller's loop (the simulator's);
``start_cluster_in_background`` runs one in a thread of its own (tests, demos).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import AsyncIterator, Callable
from typing import Any, Final, TypeVar

import msgspec
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from edgefleet.clock import Clock, SystemClock, format_utc
from simulator.cluster import admission, applying, openapi, patching, protobuf, scales, validating
from simulator.cluster.controlling import WorkloadControllers, run_controllers
from simulator.cluster.nodes import ClusterBox, seed_cluster
from simulator.cluster.pods import PodFate, PodTiming
from simulator.cluster.protobuf import ProtobufError
from simulator.cluster.resources import (
    BY_GROUP_VERSION,
    GROUPS,
    NAMESPACES,
    Resource,
    api_group,
    api_group_list,
    api_resource_list,
    api_versions,
)
from simulator.cluster.selectors import SelectorError, parse_fields, parse_labels
from simulator.cluster.store import (
    DEFAULT_HISTORY,
    BadRequest,
    Event,
    Expired,
    Filter,
    Invalid,
    MethodNotAllowed,
    NotFound,
    Store,
    StoreError,
    UnsupportedMediaType,
)
from simulator.cluster.tables import IncludeObject, table
from simulator.cluster.troubles import ApiTrouble, Failure, failure_for
from simulator.listening import serving
from simulator.threads import LoopThread

log = logging.getLogger(__name__)

T = TypeVar("T")

KUBERNETES_VERSION: Final = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-edgefleet-sim",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2025-01-01T00:00:00Z",
    "goVersion": "go1.23.4",
    "compiler": "gc",
    "platform": "linux/amd64",
}
# The API server closes a watch after a random 30-60 min (--min-request-timeout 1800 s); a fixed 30 min here.
DEFAULT_WATCH_TIMEOUT_S: Final = 1800.0
# The API server sends a bookmark about once a minute to watchers that ask for them.
DEFAULT_BOOKMARK_INTERVAL_S: Final = 60.0
# kubectl and client-go page at 500; a page of 2,000 nodes is still fast, more is refused as the server would cap.
MAX_LIMIT: Final = 10_000
_NOT_FOUND: Final = "the server could not find the requested resource"
# The annotation of the bookmark that ends a streaming list's initial events.
INITIAL_EVENTS_END: Final = "k8s.io/initial-events-end"
_JSON: Final = "application/json"
_encoder = msgspec.json.Encoder()


def _answer(body: dict[str, Any], status: int = 200) -> Response:
    return Response(_encoder.encode(body), status_code=status, media_type=_JSON)


def _seconds(value: str | None) -> float | None:
    """A request's ``timeoutSeconds`` (``30``) or ``timeout`` (Go's duration, ``30s``, ``1m0s``), or None."""
    if not value:
        return None
    with contextlib.suppress(ValueError):
        return float(value)
    total, number = 0.0, ""
    for char in value:
        if char.isdigit() or char == ".":
            number += char
        elif char in "hms" and number:
            total += float(number) * {"h": 3600.0, "m": 60.0, "s": 1.0}[char]
            number = ""
        else:
            return None
    return total if not number else None


def _dry_run(values: list[str]) -> bool:
    """``?dryRun=All`` (the only value the API server knows; kubectl --dry-run=server sends it), else a 400."""
    for value in values:
        if value != "All":
            raise BadRequest(f'dryRun: Unsupported value: "{value}": supported values: "All"')
    return bool(values)


async def _delete_options_dry_run(request: Request) -> list[str]:
    """A DELETE's ``DeleteOptions`` body may carry ``dryRun`` too (kubectl delete --dry-run=server sends it there)."""
    # Only JSON bodies are read (kubectl's and the Python client's); a protobuf one (client-go's drain) is left as
    # the deletion's own business.
    if request.method != "DELETE" or "json" not in _content_type(request):
        return []
    raw = await request.body()
    try:
        options = json.loads(raw) if raw.strip() else {}
    except ValueError:
        raise BadRequest("the DeleteOptions body is not JSON") from None
    values = options.get("dryRun") if isinstance(options, dict) else None
    if values is None:
        return []
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise BadRequest("DeleteOptions.dryRun must be a list of strings")
    return values


def _truthy(value: str | None) -> bool:
    return value in ("true", "1", "True")


def _table_version(accept: str) -> str | None:
    """The Table version asked for in ``Accept`` (``meta.k8s.io/v1`` or ``v1beta1``), or None for plain JSON."""
    for media in accept.split(","):
        parts = [p.strip() for p in media.split(";")]
        params = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
        if params.get("as") == "Table" and params.get("g") == "meta.k8s.io" and params.get("v") in ("v1", "v1beta1"):
            return f"meta.k8s.io/{params['v']}"
        if parts[0] in (_JSON, "application/*", "*/*") and "as" not in params:
            return None
    return None


def _content_type(request: Request) -> str:
    """The media type of the body, without parameters (``; charset=utf-8``)."""
    return request.headers.get("content-type", "").split(";")[0].strip()


class ClusterApi:
    """The routes of one cluster; ``app`` is the ASGI application."""

    def __init__(
        self,
        name: str,
        store: Store,
        clock: Clock,
        *,
        bookmark_interval_s: float = DEFAULT_BOOKMARK_INTERVAL_S,
        watch_timeout_s: float = DEFAULT_WATCH_TIMEOUT_S,
        trouble: Callable[[], ApiTrouble | None] = lambda: None,
        rng: random.Random | None = None,
    ) -> None:
        self.name = name
        # The simulator's api-errors fault, read at every resource request (``troubles.failure_for``).
        self.trouble = trouble
        self._rng = rng or random.Random(name)
        self.store = store
        self.clock = clock
        self.bookmark_interval_s = bookmark_interval_s
        self.watch_timeout_s = watch_timeout_s
        self._wake = asyncio.Event()
        self._closing = False
        store.add_listener(self._on_event)
        methods = ["GET", "POST", "PUT", "DELETE", "PATCH"]
        self.app = Starlette(routes=[Route("/{path:path}", self._handle, methods=methods)])

    def _on_event(self, _event: Event) -> None:
        self._wake_watchers()

    def _wake_watchers(self) -> None:
        # Watchers hold the Event they saw before reading the store; a new one is set up for the next wait.
        wake, self._wake = self._wake, asyncio.Event()
        wake.set()

    def close_watches(self) -> None:
        """End every open watch (the server is stopping); must run on the server's loop."""
        self._closing = True
        self._wake_watchers()

    def open_watches(self) -> None:
        """Serve watches again (the server starts again after an api-down fault)."""
        self._closing = False

    async def _fail(self, failure: Failure) -> Response:
        if failure.hold_s > 0:
            # A request the API server could not finish: nothing until its timeout (or until the server stops).
            loop = asyncio.get_running_loop()
            deadline = loop.time() + failure.hold_s
            while not self._closing and (left := deadline - loop.time()) > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=left)
        return Response(
            _encoder.encode(failure.status), status_code=failure.code, media_type=_JSON, headers=failure.headers
        )

    async def _handle(self, request: Request) -> Response:
        try:
            response = await self._route(request)
            for warning in getattr(request.state, "warnings", ()):
                response.headers.append("Warning", warning)
            return response
        except StoreError as exc:
            return _answer(exc.status(), exc.code)
        except SelectorError as exc:
            error = BadRequest(str(exc))
            return _answer(error.status(), error.code)

    async def _route(self, request: Request) -> Response:
        parts = [p for p in request.url.path.split("/") if p]
        method = request.method
        if parts[:1] in (["api"], ["apis"]) and len(parts) <= (2 if parts[0] == "api" else 3):
            if method != "GET":
                raise MethodNotAllowed("the server does not allow this method on the requested resource")
            return _answer(self._discovery(parts, request))
        if parts == ["version"]:
            return _answer(KUBERNETES_VERSION)
        if parts[:2] == ["openapi", "v3"]:
            return self._openapi(parts[2:], method)
        if parts[:2] == ["api", "v1"]:
            return await self._resource_request(request, "v1", parts[2:])
        if len(parts) > 3 and parts[0] == "apis":
            return await self._resource_request(request, f"{parts[1]}/{parts[2]}", parts[3:])
        raise NotFound(_NOT_FOUND)

    def _openapi(self, parts: list[str], method: str) -> Response:
        """``/openapi/v3`` and its documents (``openapi``); the ``hash`` query is the client's cache key only."""
        if method != "GET":
            raise MethodNotAllowed("the server does not allow this method on the requested resource")
        body = openapi.index() if not parts else openapi.document("/".join(parts))
        if body is None:
            raise NotFound(_NOT_FOUND)
        return Response(body, media_type=_JSON)

    def _discovery(self, parts: list[str], request: Request) -> dict[str, Any]:
        if parts == ["api"]:
            return api_versions(f"{request.url.hostname}:{request.url.port}")
        if parts == ["apis"]:
            return api_group_list()
        if len(parts) == 2 and parts[0] == "apis" and parts[1] in GROUPS:
            return api_group(parts[1])
        listed = api_resource_list("/".join(parts[1:]))
        if listed is None:
            raise NotFound(_NOT_FOUND)
        return listed

    async def _resource_request(self, request: Request, group_version: str, rest: list[str]) -> Response:
        served = BY_GROUP_VERSION.get(group_version)
        if served is None or not rest:
            raise NotFound(_NOT_FOUND)
        namespace: str | None = None
        if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] in served and served[rest[2]].namespaced:
            namespace, rest = rest[1], rest[2:]
        resource = served.get(rest[0])
        if resource is None or len(rest) > 3 or (resource.namespaced and namespace is None and len(rest) > 1):
            raise NotFound(_NOT_FOUND)
        name = rest[1] if len(rest) > 1 else None
        subresource = rest[2] if len(rest) > 2 else ""
        if subresource and not (
            (subresource == "status" and resource.has_status) or (subresource == "scale" and resource.has_scale)
        ):
            raise NotFound(_NOT_FOUND)
        failure = failure_for(
            self.trouble(),
            method=request.method,
            resource=f"{resource.plural}.{resource.group}" if resource.group else resource.plural,
            name=name,
            timeout_s=_seconds(request.query_params.get("timeoutSeconds") or request.query_params.get("timeout")),
            rng=self._rng,
        )
        if failure is not None:
            return await self._fail(failure)
        query = request.query_params
        dry_run = _dry_run(query.getlist("dryRun") + (await _delete_options_dry_run(request)))
        if subresource == "scale":
            return await self._scale_request(request, resource, namespace or "", str(name), dry_run=dry_run)
        method = request.method
        if method == "GET" and name is None:
            if _truthy(query.get("watch")):
                return self._watch(request, resource, namespace)
            return self._list(request, resource, namespace)
        if method == "GET" and name is not None:
            found = self.store.get(resource, namespace or "", name)
            return self._object_answer(request, resource, found)
        if method == "POST" and name is None and (namespace is not None or not resource.namespaced):
            body = self._decoded(request, resource, await self._body(request, resource, namespace))
            self._check_namespace_exists(namespace)
            created = self.store.create(resource, body, namespace or "", dry_run=dry_run)
            return self._object_answer(request, resource, created, 201)
        if method == "PUT" and name is not None:
            body = self._decoded(request, resource, await self._body(request, resource, namespace))
            if body.get("metadata", {}).get("name") != name:
                raise BadRequest(
                    f"the name of the object ({body.get('metadata', {}).get('name')}) does not match the name on"
                    f" the URL ({name})"
                )
            updated = self.store.update(resource, body, namespace or "", subresource=subresource, dry_run=dry_run)
            return self._object_answer(request, resource, updated)
        if method == "PATCH" and name is not None:
            force = query.get("force")
            if _content_type(request) == patching.APPLY_PATCH and not subresource:
                return await self._apply(request, resource, namespace, name, force=_truthy(force), dry_run=dry_run)
            if force is not None:
                raise Invalid(
                    'PatchOptions.meta.k8s.io "" is invalid: force: Forbidden: may not be specified for non-apply patch'
                )
            current = self.store.get(resource, namespace or "", name)
            raw = await request.body()
            patch_type = _content_type(request)
            schema = patching.definition_of(resource.api_version, resource.kind)
            patched = patching.apply_patch(patch_type, current, raw, schema=schema)
            self._check_patched(resource, current, patched)
            # What the API server shows of a patch it refuses: the patch as a Go map, or the patched object.
            shown = (
                validating.go_printed(json.loads(raw))
                if patch_type == patching.STRATEGIC_MERGE_PATCH
                else json.dumps(patched, separators=(",", ":"))
            )
            patched = self._decoded(request, resource, patched, shown_patch=shown)
            updated = self.store.update(resource, patched, namespace or "", subresource=subresource, dry_run=dry_run)
            return self._object_answer(request, resource, updated)
        if method == "DELETE" and name is not None and not subresource:
            gone = self.store.delete(resource, namespace or "", name, dry_run=dry_run)
            return _answer(
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "details": {
                        "name": name,
                        "group": resource.group,
                        "kind": resource.plural,
                        "uid": gone["metadata"]["uid"],
                    },
                }
            )
        if method == "DELETE" and name is None:
            where = self._filter(request, resource, namespace)
            doomed = self.store.list_objects(resource, where).items
            deleted = [
                self.store.delete(resource, o["metadata"].get("namespace", ""), o["metadata"]["name"], dry_run=dry_run)
                for o in doomed
            ]
            return _answer(self._list_body(resource, deleted, {"resourceVersion": str(self.store.resource_version)}))
        raise MethodNotAllowed("the server does not allow this method on the requested resource")

    # --- reading ---------------------------------------------------------------------------------------------

    def _filter(self, request: Request, resource: Resource, namespace: str | None) -> Filter:
        query = request.query_params
        return Filter(
            namespace=namespace,
            labels=parse_labels(query.get("labelSelector", "")),
            fields=parse_fields(query.get("fieldSelector", ""), resource.fields()),
        )

    def _list_body(self, resource: Resource, items: list[dict[str, Any]], metadata: dict[str, Any]) -> dict[str, Any]:
        return {
            "kind": f"{resource.kind}List",
            "apiVersion": resource.api_version,
            "metadata": metadata,
            "items": items,
        }

    def _list(self, request: Request, resource: Resource, namespace: str | None) -> Response:
        query = request.query_params
        try:
            limit = int(query.get("limit") or 0)
        except ValueError:
            raise BadRequest(f"limit must be a whole number, not {query.get('limit')!r}") from None
        if limit < 0 or limit > MAX_LIMIT:
            limit = 0 if limit < 0 else MAX_LIMIT
        where = self._filter(request, resource, namespace)
        result = self.store.list_objects(resource, where, limit=limit, continue_token=query.get("continue", ""))
        metadata: dict[str, Any] = {"resourceVersion": str(result.resource_version)}
        if result.continue_token:
            metadata["continue"] = result.continue_token
            metadata["remainingItemCount"] = result.remaining
        version = _table_version(request.headers.get("accept", ""))
        if version is not None:
            return _answer(
                table(
                    resource,
                    result.items,
                    now=self.clock.now(),
                    api_version=version,
                    include=self._include(request),
                    list_metadata=metadata,
                )
            )
        return _answer(self._list_body(resource, result.items, metadata))

    def _include(self, request: Request) -> IncludeObject:
        include = request.query_params.get("includeObject", "Metadata")
        if include not in ("None", "Metadata", "Object"):
            raise BadRequest(f"includeObject must be None, Metadata or Object, not {include!r}")
        return include  # type: ignore[return-value]

    def _object_answer(self, request: Request, resource: Resource, obj: dict[str, Any], status: int = 200) -> Response:
        version = _table_version(request.headers.get("accept", ""))
        if version is None:
            return _answer(obj, status)
        body = table(
            resource,
            [obj],
            now=self.clock.now(),
            api_version=version,
            include=self._include(request),
            list_metadata={"resourceVersion": obj["metadata"]["resourceVersion"]},
        )
        return _answer(body, status)

    # --- writing ---------------------------------------------------------------------------------------------

    def _check_patched(self, resource: Resource, current: dict[str, Any], patched: dict[str, Any]) -> None:
        """What a patch may not change, as the API server checks after applying it."""
        metadata = patched.get("metadata")
        if not isinstance(metadata, dict):
            raise BadRequest("metadata must be an object")
        name, was = metadata.get("name"), current["metadata"]["name"]
        if name != was:
            raise BadRequest(f"the name of the object ({name}) does not match the name on the URL ({was})")
        if metadata.get("namespace", "") != current["metadata"].get("namespace", ""):
            raise BadRequest("the namespace of the provided object does not match the namespace sent on the request")
        for part, expected in (("apiVersion", resource.api_version), ("kind", resource.kind)):
            if patched.get(part) != expected:
                raise BadRequest(f"the {part} of the patched object ({patched.get(part)}) must stay {expected}")

    async def _apply(
        self, request: Request, resource: Resource, namespace: str | None, name: str, *, force: bool, dry_run: bool
    ) -> Response:
        """Server-side apply: merge the configuration with field ownership (``applying``); creates a missing object."""
        try:
            # Through JSON: YAML's other key types and timestamps become the strings the API server would see.
            config = json.loads(json.dumps(yaml.safe_load(await request.body()), default=str))
        except yaml.YAMLError as exc:
            raise BadRequest(f"error decoding YAML: {exc}") from None
        if not isinstance(config, dict):
            raise BadRequest(f"the applied configuration must be a {resource.kind} object")
        for part, expected in (("apiVersion", resource.api_version), ("kind", resource.kind)):
            if config.get(part) != expected:
                raise BadRequest(f"the applied configuration's {part} ({config.get(part)}) must be {expected}")
        metadata = config.get("metadata") or {}
        if not isinstance(metadata, dict) or metadata.get("name") != name:
            given = metadata.get("name") if isinstance(metadata, dict) else None
            raise BadRequest(f"the name of the object ({given}) does not match the name on the URL ({name})")
        if namespace is not None and metadata.get("namespace", namespace) != namespace:
            raise BadRequest("the namespace of the provided object does not match the namespace sent on the request")
        schema = patching.definition_of(resource.api_version, resource.kind)
        if schema is not None and (undeclared := validating.undeclared_in_apply(config, schema)):
            raise validating.undeclared_fields(
                undeclared, namespace=namespace or "", name=name, api_version=resource.api_version, kind=resource.kind
            )
        try:
            live: dict[str, Any] | None = self.store.get(resource, namespace or "", name)
        except NotFound:
            live = None
        applied = applying.server_side_apply(
            live,
            config,
            manager=request.query_params.get("fieldManager", ""),
            force=force,
            schema=schema,
            api_version=resource.api_version,
            now=format_utc(self.clock.now()),
            has_status=resource.has_status,
        )
        if live is None:
            self._check_namespace_exists(namespace)
            created = self.store.create(resource, applied, namespace or "", dry_run=dry_run)
            return self._object_answer(request, resource, created, 201)
        # The live version is the precondition: the apply was computed from it.
        applied["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
        updated = self.store.update(resource, applied, namespace or "", dry_run=dry_run)
        return self._object_answer(request, resource, updated)

    async def _scale_request(
        self, request: Request, resource: Resource, namespace: str, name: str, *, dry_run: bool
    ) -> Response:
        """GET, PUT or PATCH ``.../<name>/scale``: the object as an autoscaling/v1 Scale; writes set its replicas."""
        current = self.store.get(resource, namespace, name)
        if request.method == "GET":
            return _answer(scales.scale_of(current))
        if request.method == "PUT":
            try:
                body = json.loads(await request.body())
            except ValueError as exc:
                raise BadRequest(f"the body of the request was not valid JSON: {exc}") from None
        elif request.method == "PATCH":
            scale = scales.scale_of(current)
            body = patching.apply_patch(
                _content_type(request),
                scale,
                await request.body(),
                schema=patching.definition_of(scales.API_VERSION, scales.KIND),
            )
        else:
            raise MethodNotAllowed("the server does not allow this method on the requested resource")
        updated = self.store.update(resource, scales.scaled(current, body), namespace, dry_run=dry_run)
        return _answer(scales.scale_of(updated))

    async def _body(self, request: Request, resource: Resource, namespace: str | None) -> dict[str, Any]:
        content_type = request.headers.get("content-type", _JSON).split(";")[0].strip()
        raw = await request.body()
        if content_type == protobuf.MEDIA_TYPE and (resource.api_version, resource.kind) in protobuf.KINDS:
            try:
                body = protobuf.decode(raw)
            except ProtobufError as exc:
                raise BadRequest(f"the body of the request could not be decoded: {exc}") from None
        elif content_type not in (_JSON, ""):
            raise UnsupportedMediaType(
                f"the body of the request was in an unknown format - accepted media types include: {_JSON}"
            )
        else:
            try:
                body = validating.parse(raw)
            except ValueError as exc:
                raise BadRequest(f"the body of the request was not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise BadRequest(f"the body of the request must be a {resource.kind} object")
        if body.get("apiVersion", resource.api_version) != resource.api_version:
            raise BadRequest(
                f"the API version in the data ({body.get('apiVersion')}) does not match the expected API version"
                f" ({resource.api_version})"
            )
        if body.get("kind", resource.kind) != resource.kind:
            raise BadRequest(
                f"the kind in the data ({body.get('kind')}) does not match the expected kind ({resource.kind})"
            )
        metadata = body.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise BadRequest("metadata must be an object")
        if resource.kind == "Secret" and not body.get("type"):
            body["type"] = "Opaque"  # the API server's default
        given = metadata.get("namespace")
        if namespace is not None and given and given != namespace:
            raise BadRequest("the namespace of the provided object does not match the namespace sent on the request")
        return body

    def _decoded(
        self, request: Request, resource: Resource, body: dict[str, Any], *, shown_patch: str | None = None
    ) -> dict[str, Any]:
        """``body`` as the API server decodes it (``validating``): a wrong type is refused; unknown fields are
        dropped, and refused (``fieldValidation=Strict``) or warned about (``Warn``, the default). A create or
        update is refused 400, naming the kind; a patch (``shown_patch``: what the error shows of it) 422."""
        schema = patching.definition_of(resource.api_version, resource.kind)
        if schema is None:
            return body
        try:
            directive = validating.field_validation(request.query_params.get("fieldValidation"))
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        prefix = f'{resource.kind} in version "{resource.version}" cannot be handled as a {resource.kind}: '

        def refused(detail: str) -> StoreError:
            return BadRequest(prefix + detail) if shown_patch is None else validating.PatchInvalid(shown_patch, detail)

        try:
            decoded = validating.decode(body, schema, kind=resource.kind)
        except validating.WrongType as exc:
            raise refused(str(exc)) from None
        found = (decoded.unknown, decoded.duplicates)
        if any(found) and directive == "Strict":
            raise refused(validating.strict_message(*found))
        if any(found) and directive == "Warn":
            request.state.warnings = [*getattr(request.state, "warnings", ()), *validating.warnings(*found)]
        return decoded.obj

    def _check_namespace_exists(self, namespace: str | None) -> None:
        if namespace is None:
            return
        try:
            self.store.get(NAMESPACES, "", namespace)
        except NotFound:
            raise NotFound(f'namespaces "{namespace}" not found', name=namespace, kind="namespaces") from None

    # --- watching --------------------------------------------------------------------------------------------

    def _watch(self, request: Request, resource: Resource, namespace: str | None) -> Response:
        query = request.query_params
        where = self._filter(request, resource, namespace)
        try:
            timeout_s = float(query["timeoutSeconds"]) if query.get("timeoutSeconds") else self.watch_timeout_s
        except ValueError:
            raise BadRequest(f"timeoutSeconds must be a number, not {query.get('timeoutSeconds')!r}") from None
        bookmarks = _truthy(query.get("allowWatchBookmarks"))
        table_version = _table_version(request.headers.get("accept", ""))
        include = self._include(request)
        asked = query.get("resourceVersion", "")
        initial: list[dict[str, Any]] = []
        # A streaming list (client-go's WatchList, kubectl 1.35+ for rollout status and wait): the current state as
        # ADDED events, then a bookmark annotated as the end of the initial events, then the changes.
        streaming_list = _truthy(query.get("sendInitialEvents"))
        if streaming_list:
            if query.get("resourceVersionMatch") != "NotOlderThan":
                raise Invalid(
                    "resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to "
                    "NotOlderThan"
                )
            if not bookmarks:
                raise Invalid("allowWatchBookmarks: Required value: sendInitialEvents requires bookmarks")
        if asked in ("", "0") or streaming_list:
            # No version, or "any": the current state first, as ADDED events, then what follows.
            initial = self.store.list_objects(resource, where).items
            start = self.store.resource_version
        else:
            try:
                start = int(asked)
            except ValueError:
                raise BadRequest(f'resourceVersion: Invalid value: "{asked}": must be a whole number') from None

        def line(kind: str, obj: dict[str, Any]) -> bytes:
            if table_version is not None and kind in ("ADDED", "MODIFIED", "DELETED"):
                obj = table(resource, [obj], now=self.clock.now(), api_version=table_version, include=include)
            return _encoder.encode({"type": kind, "object": obj}) + b"\n"

        async def stream() -> AsyncIterator[bytes]:
            for obj in initial:
                yield line("ADDED", obj)
            if streaming_list:
                end = self._bookmark(resource, start)
                end["metadata"]["annotations"] = {INITIAL_EVENTS_END: "true"}
                yield line("BOOKMARK", end)
            version = start
            deadline = self.clock.monotonic() + timeout_s
            next_bookmark = self.clock.monotonic() + self.bookmark_interval_s
            while not self._closing:
                wake = self._wake
                try:
                    events = self.store.events_since(resource, version, where)
                except Expired as exc:
                    yield _encoder.encode({"type": "ERROR", "object": exc.status()}) + b"\n"
                    return
                latest = self.store.resource_version
                for event in events:
                    yield line(event.type, event.object)
                version = max(version, latest)
                now = self.clock.monotonic()
                if bookmarks and now >= next_bookmark:
                    yield line("BOOKMARK", self._bookmark(resource, version))
                    next_bookmark = now + self.bookmark_interval_s
                if now >= deadline:
                    return
                until = min(deadline, next_bookmark) if bookmarks else deadline
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), max(0.0, until - now))

        return StreamingResponse(stream(), media_type=_JSON)

    def _bookmark(self, resource: Resource, version: int) -> dict[str, Any]:
        return {
            "kind": resource.kind,
            "apiVersion": resource.api_version,
            "metadata": {"resourceVersion": str(version)},
        }


# --- serving ---------------------------------------------------------------------------------------------------


async def serve_cluster(
    api: ClusterApi,
    *,
    stop: asyncio.Event,
    host: str = "127.0.0.1",
    port: int = 0,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Serve ``api`` on ``host:port`` (0: a free port) until ``stop`` is set; ``ready(url)`` once listening."""
    async with serving(api.app, host=host, port=port, name=f"cluster-{api.name}") as url:
        api.open_watches()
        try:
            log.info("Started simulated cluster", extra={"cluster": api.name, "url": url})
            if ready is not None:
                ready(url)
            await stop.wait()
        finally:
            api.close_watches()


class BackgroundCluster(LoopThread):
    """One simulated cluster served from a thread of its own, with its own event loop; ``stop()`` ends it.
    With ``workloads``, its controllers run on that loop too."""

    def __init__(self, api: ClusterApi, *, workloads: WorkloadControllers | None = None) -> None:
        super().__init__(thread_name=f"cluster-{api.name}", what=f"the simulated cluster {api.name!r}")
        self.api = api
        self.workloads = workloads

    async def serve(self, stop: asyncio.Event) -> None:
        running = asyncio.create_task(run_controllers([self.workloads])) if self.workloads is not None else None
        try:
            await serve_cluster(self.api, stop=stop, ready=self.served_at)
        finally:
            if running is not None:
                running.cancel()
                await asyncio.gather(running, return_exceptions=True)

    def start(self, *, timeout_s: float = 30.0) -> BackgroundCluster:
        self.start_serving(timeout_s)
        return self

    def call(self, function: Callable[[Store], T]) -> T:
        """Run ``function(store)`` on the server's loop (writes wake the watchers there) and return its result."""
        return self.run_on_loop(lambda: function(self.api.store), timeout_s=30)

    def stop(self, *, timeout_s: float = 15.0) -> None:
        self.stop_thread(timeout_s)


def start_cluster_in_background(
    name: str,
    boxes: list[ClusterBox],
    *,
    clock: Clock | None = None,
    history: int = DEFAULT_HISTORY,
    controllers: bool = False,
    pod_timing: PodTiming | None = None,
    pod_fate: PodFate | None = None,
    **options: Any,
) -> BackgroundCluster:
    """A cluster named ``name`` with a node per box, serving on a free port of 127.0.0.1 from its own thread;
    with ``controllers``, its workload controllers (``controlling``) run beside it, pods timed by ``pod_timing``, and
    the API server's defaults and admission (``admission``) fill in what is stored (without, objects are stored as
    sent)."""
    clock = clock or SystemClock()
    store = Store(clock, cluster=name, history=history, admit=admission.admit if controllers else None)
    seed_cluster(store, boxes, now=clock.now())
    workloads = WorkloadControllers(store, clock, timing=pod_timing, fate=pod_fate) if controllers else None
    return BackgroundCluster(ClusterApi(name, store, clock, **options), workloads=workloads).start()
