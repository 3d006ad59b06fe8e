"""The objects of one simulated cluster, as etcd and the API server's registry keep them: keyed by resource,
namespace and name; one resourceVersion counter for the whole cluster (a string of an int, as etcd's revision);
``metadata.uid``, ``creationTimestamp`` and ``generation`` set here; a bounded history of watch events.

Invariants the tests hold it to:
- every write that changes an object takes the next resourceVersion and appends exactly one event to the history;
  a write that changes nothing is no write (no new version, no event), as in Kubernetes;
- ``list`` then ``events_since(list's resourceVersion)`` reconstructs the current state, for any selector;
- a watch or a continue token older than the kept history is refused with 410 Expired, never silently partial;
- paging (``limit``/``continue``) serves one snapshot: the pages of one list are the list at the first page's
  resourceVersion, whatever was written in between (rebuilt from the history).

Stored objects are plain JSON-like dicts and are never mutated after they are stored: every write stores a new
dict, so readers may hold them without copying. Callers must not mutate what they get back.

Pure: no I/O, time from the injected Clock, identifiers derived from the cluster's name and the version. Not
thread-safe: the server calls it from its one event loop. Called by ``server`` and ``nodes``.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import json
import re
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

from edgefleet.clock import Clock, format_utc
from simulator.cluster.resources import Resource
from simulator.cluster.selectors import FieldSelector, LabelSelector

# Events kept for watches and continue tokens. The API server's watch cache keeps ~100 per resource by default;
# one cluster-wide history of this size lets a 2,000-node cluster refresh every node several times over before a
# watcher that fell behind must list again.
DEFAULT_HISTORY: Final = 10_000
_DNS_SUBDOMAIN: Final = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_SUBDOMAIN_RULE: Final = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start"
    " and end with an alphanumeric character (e.g. 'example.com', regex used for validation is"
    " '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
# generateName's suffix alphabet: apimachinery's, without vowels or look-alikes so no word is spelt by chance.
_SUFFIX_ALPHABET: Final = "bcdfghjklmnpqrstvwxz2456789"
_CONTINUE_EXPIRED: Final = (
    "The provided continue parameter is too old to display a consistent list result. You can start a new list"
    " without the continue parameter, or use the continue token in this response to retrieve the remainder of the"
    " results. Continuing with the provided token results in an inconsistent list - objects that were created,"
    " modified, or deleted between the time the first chunk was returned and now may show up in the list."
)

EventType = Literal["ADDED", "MODIFIED", "DELETED"]
Key = tuple[str, str]  # (namespace, name); namespace "" for cluster-scoped kinds


class Admit(Protocol):
    """The API server's defaulting and admission: the object to store for one about to be created or updated."""

    def __call__(self, resource: Resource, obj: dict[str, Any], *, creating: bool) -> dict[str, Any]: ...


class StoreError(Exception):
    """An API error; ``status()`` is the ``Status`` object the server answers with."""

    code = 500
    reason = "InternalError"

    def __init__(self, message: str, *, name: str = "", kind: str = "", group: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.name = name
        self.kind = kind
        self.group = group

    def status(self) -> dict[str, Any]:
        details: dict[str, Any] = {}
        if self.name:
            details["name"] = self.name
        if self.group:
            details["group"] = self.group
        if self.kind:
            details["kind"] = self.kind
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if details:
            body["details"] = details
        return body


class BadRequest(StoreError):
    code, reason = 400, "BadRequest"


class NotFound(StoreError):
    code, reason = 404, "NotFound"


class MethodNotAllowed(StoreError):
    code, reason = 405, "MethodNotAllowed"


class UnsupportedMediaType(StoreError):
    code, reason = 415, "UnsupportedMediaType"


class AlreadyExists(StoreError):
    code, reason = 409, "AlreadyExists"


class Conflict(StoreError):
    code, reason = 409, "Conflict"


class Expired(StoreError):
    """410: a watch or continue token older than the kept history (the API server's reason is Expired)."""

    code, reason = 410, "Expired"


class Invalid(StoreError):
    code, reason = 422, "Invalid"


def not_found(resource: Resource, name: str) -> NotFound:
    return NotFound(
        f'{resource.group_resource} "{name}" not found', name=name, kind=resource.plural, group=resource.group
    )


@dataclass(frozen=True, slots=True)
class Event:
    type: EventType
    resource: str
    key: Key
    object: dict[str, Any]
    # What the object was before this event (None for ADDED): a watch with a selector needs both sides.
    previous: dict[str, Any] | None
    resource_version: int


@dataclass(frozen=True, slots=True)
class ListResult:
    items: list[dict[str, Any]]
    resource_version: int
    continue_token: str = ""
    remaining: int | None = None


@dataclass(frozen=True, slots=True)
class Filter:
    """Which objects of a resource a list or watch sees."""

    namespace: str | None = None
    labels: LabelSelector = field(default_factory=LabelSelector)
    fields: FieldSelector = field(default_factory=FieldSelector)

    def matches(self, key: Key, obj: dict[str, Any]) -> bool:
        if self.namespace is not None and key[0] != self.namespace:
            return False
        return self.labels.matches(obj["metadata"].get("labels")) and self.fields.matches(obj)


def _version(obj: dict[str, Any]) -> int:
    return int(obj["metadata"]["resourceVersion"])


class Store:
    def __init__(
        self, clock: Clock, *, cluster: str = "cluster", history: int = DEFAULT_HISTORY, admit: Admit | None = None
    ) -> None:
        self._clock = clock
        self._admit = admit
        self._cluster = cluster
        self._objects: dict[str, dict[Key, dict[str, Any]]] = {}
        self._resource_version = 0
        self._history: deque[Event] = deque()
        self._history_size = history
        # The newest version no longer in the history: a watch from an older one would miss events.
        self._floor = 0
        self._listeners: list[Callable[[Event], None]] = []

    @property
    def resource_version(self) -> int:
        return self._resource_version

    def now(self) -> float:
        """The store's clock: what it stamps ``creationTimestamp`` with (seeding dates what came before by it)."""
        return self._clock.now()

    def add_listener(self, listener: Callable[[Event], None]) -> None:
        """Called after every write, with its event (the server wakes its watchers)."""
        self._listeners.append(listener)

    # --- reads -----------------------------------------------------------------------------------------------

    def get(self, resource: Resource, namespace: str, name: str) -> dict[str, Any]:
        found = self._objects.get(resource.key, {}).get((namespace, name))
        if found is None:
            raise not_found(resource, name)
        return found

    def count(self, resource: Resource) -> int:
        return len(self._objects.get(resource.key, {}))

    def list_objects(
        self, resource: Resource, where: Filter = Filter(), *, limit: int = 0, continue_token: str = ""
    ) -> ListResult:
        """Objects in key order (namespace, then name), as etcd returns them. With ``limit``, one page and a token
        for the next; a token serves the snapshot its first page saw."""
        if continue_token:
            version, after = self._decode_continue(continue_token)
            objects = self._snapshot(resource, version)
        else:
            version, after = self._resource_version, None
            objects = self._objects.get(resource.key, {})
        keys = sorted(objects)
        if after is not None:
            keys = [k for k in keys if k > after]
        items: list[dict[str, Any]] = []
        last: Key | None = None
        for index, key in enumerate(keys):
            obj = objects[key]
            if not where.matches(key, obj):
                continue
            if limit and len(items) == limit:
                remaining = sum(1 for k in keys[index:] if where.matches(k, objects[k]))
                assert last is not None
                return ListResult(items, version, self._encode_continue(version, last), remaining)
            items.append(obj)
            last = key
        return ListResult(items, version)

    def events_since(self, resource: Resource, version: int, where: Filter = Filter()) -> list[Event]:
        """The events a watch from ``version`` sees next, as the watch cache sends them: an object that stops
        matching the filter is DELETED for this watcher, one that starts matching is ADDED."""
        if version < self._floor:
            raise Expired(f"too old resource version: {version} ({self._floor})")
        seen: list[Event] = []
        for event in reversed(self._history):
            if event.resource_version <= version:
                break
            if event.resource != resource.key:
                continue
            if event.type == "DELETED":
                now, before = False, where.matches(event.key, event.object)
            else:
                now = where.matches(event.key, event.object)
                before = event.previous is not None and where.matches(event.key, event.previous)
            if now and before:
                seen.append(event)
            elif now:
                seen.append(Event("ADDED", event.resource, event.key, event.object, None, event.resource_version))
            elif before:
                gone = event.object if event.type == "DELETED" else _with_version(event.previous, event)
                seen.append(Event("DELETED", event.resource, event.key, gone, None, event.resource_version))
        seen.reverse()
        return seen

    # --- writes ----------------------------------------------------------------------------------------------

    def create(
        self, resource: Resource, obj: dict[str, Any], namespace: str = "", *, dry_run: bool = False
    ) -> dict[str, Any]:
        """Store a new object. ``dry_run`` (``?dryRun=All``): validated and admitted all the same, answered as it
        would be stored but without a resourceVersion (the API server's dry run gives none), and nothing is kept:
        no event, no version bump."""
        new = copy.deepcopy(obj)
        metadata = new.setdefault("metadata", {})
        if not isinstance(metadata, dict):
            raise BadRequest("metadata must be an object")
        _check_labels(resource, metadata)
        version = self._resource_version + 1
        # Given before admission, as the API server fills the system fields before validating: a Job's generated
        # selector names its own uid.
        metadata["uid"] = self._uid(version)
        if self._admit is not None:
            new = self._admit(resource, new, creating=True)
            metadata = new["metadata"]
        if not metadata.get("name") and metadata.get("generateName"):
            metadata["name"] = self._generated_name(str(metadata["generateName"]), version)
        name = metadata.get("name")
        if not name:
            raise Invalid(
                f'{resource.group_kind} "" is invalid: metadata.name: Required value: name or generateName is required',
                kind=resource.kind,
                group=resource.group,
            )
        _check_name(resource, str(name))
        namespace = namespace if resource.namespaced else ""
        key = (namespace, str(name))
        objects = self._objects.setdefault(resource.key, {})
        if key in objects:
            raise AlreadyExists(
                f'{resource.group_resource} "{name}" already exists',
                name=str(name),
                kind=resource.plural,
                group=resource.group,
            )
        new["apiVersion"], new["kind"] = resource.api_version, resource.kind
        if namespace:
            metadata["namespace"] = namespace
        else:
            metadata.pop("namespace", None)
        metadata["uid"] = self._uid(version)
        metadata["creationTimestamp"] = format_utc(self._clock.now())
        metadata.pop("deletionTimestamp", None)
        if resource.tracks_generation:
            metadata["generation"] = 1
        if dry_run:
            return new
        metadata["resourceVersion"] = str(version)
        self._commit("ADDED", resource, key, new, None)
        return new

    def update(
        self,
        resource: Resource,
        obj: dict[str, Any],
        namespace: str = "",
        *,
        subresource: str = "",
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Replace an object (PUT). A stale ``metadata.resourceVersion`` is a 409 Conflict; none at all is an
        unconditional update, as the API server allows for these kinds. ``subresource="status"`` changes only
        the status; a plain update of a kind with a status subresource keeps the stored status. ``dry_run``: the
        object as it would be stored, at its current resourceVersion and generation, and nothing kept."""
        metadata = obj.get("metadata")
        if not isinstance(metadata, dict) or not metadata.get("name"):
            raise BadRequest("the object to update has no metadata.name")
        name = str(metadata["name"])
        namespace = namespace if resource.namespaced else ""
        key = (namespace, name)
        old = self._objects.get(resource.key, {}).get(key)
        if old is None:
            raise not_found(resource, name)
        wanted = metadata.get("resourceVersion")
        if wanted and str(wanted) != old["metadata"]["resourceVersion"]:
            raise Conflict(
                f'Operation cannot be fulfilled on {resource.group_resource} "{name}": the object has been'
                " modified; please apply your changes to the latest version and try again",
                name=name,
                kind=resource.plural,
                group=resource.group,
            )
        if subresource == "status":
            new = copy.deepcopy(old)
            if "status" in obj:
                new["status"] = copy.deepcopy(obj["status"])
            else:
                new.pop("status", None)
        else:
            _check_labels(resource, metadata)
            new = copy.deepcopy(obj)
            if resource.has_status:
                if "status" in old:
                    new["status"] = old["status"]
                else:
                    new.pop("status", None)
            new_metadata = new["metadata"]
            # What the server owns stays as it was.
            for owned in ("uid", "creationTimestamp", "generation", "namespace", "deletionTimestamp"):
                if owned in old["metadata"]:
                    new_metadata[owned] = old["metadata"][owned]
                else:
                    new_metadata.pop(owned, None)
            new["apiVersion"], new["kind"] = resource.api_version, resource.kind
            if self._admit is not None:
                new = self._admit(resource, new, creating=False)
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        if new == old:
            return old
        if dry_run:
            return new
        if resource.tracks_generation and new.get("spec") != old.get("spec"):
            new["metadata"]["generation"] = int(old["metadata"].get("generation", 0)) + 1
        new["metadata"]["resourceVersion"] = str(self._resource_version + 1)
        self._commit("MODIFIED", resource, key, new, old)
        return new

    def delete(self, resource: Resource, namespace: str, name: str, *, dry_run: bool = False) -> dict[str, Any]:
        """Remove an object at once (no finalizers or grace periods yet); returns it as it was last stored, with
        the deletion's resourceVersion. Deleting a namespace deletes everything in it. ``dry_run``: the object as
        stored, and nothing removed."""
        namespace = namespace if resource.namespaced else ""
        key = (namespace, name)
        old = self._objects.get(resource.key, {}).get(key)
        if old is None:
            raise not_found(resource, name)
        if dry_run:
            return old
        if resource.plural == "namespaces" and resource.group == "":
            for other, objects in list(self._objects.items()):
                for inside in [k for k in objects if k[0] == name]:
                    self._remove(other, inside)
        return self._remove(resource.key, key)

    def _remove(self, resource_key: str, key: Key) -> dict[str, Any]:
        old = self._objects[resource_key][key]
        gone = {**old, "metadata": {**old["metadata"], "resourceVersion": str(self._resource_version + 1)}}
        self._resource_version += 1
        del self._objects[resource_key][key]
        self._record(Event("DELETED", resource_key, key, gone, old, self._resource_version))
        return gone

    def _commit(
        self, kind: EventType, resource: Resource, key: Key, new: dict[str, Any], old: dict[str, Any] | None
    ) -> None:
        self._resource_version += 1
        assert _version(new) == self._resource_version
        self._objects.setdefault(resource.key, {})[key] = new
        self._record(Event(kind, resource.key, key, new, old, self._resource_version))

    def _record(self, event: Event) -> None:
        self._history.append(event)
        while len(self._history) > self._history_size:
            self._floor = self._history.popleft().resource_version
        for listener in self._listeners:
            listener(event)

    # --- snapshots and continue tokens -----------------------------------------------------------------------

    def _snapshot(self, resource: Resource, version: int) -> dict[Key, dict[str, Any]]:
        """The resource's objects as they were at ``version``, undoing the kept history since."""
        if version < self._floor:
            raise Expired(_CONTINUE_EXPIRED)
        objects = dict(self._objects.get(resource.key, {}))
        for event in reversed(self._history):
            if event.resource_version <= version:
                break
            if event.resource != resource.key:
                continue
            if event.type == "ADDED":
                objects.pop(event.key, None)
            else:
                assert event.previous is not None
                objects[event.key] = event.previous
        return objects

    def _encode_continue(self, version: int, last: Key) -> str:
        raw = json.dumps({"v": "meta.k8s.io/v1", "rv": version, "start": [last[0], last[1]]}, separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    def _decode_continue(self, token: str) -> tuple[int, Key]:
        try:
            raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            version, (namespace, name) = int(raw["rv"]), raw["start"]
            if raw.get("v") != "meta.k8s.io/v1" or not isinstance(namespace, str) or not isinstance(name, str):
                raise ValueError(raw)
        except (ValueError, TypeError, KeyError, binascii.Error) as exc:
            raise BadRequest(f"continue key is not valid: {exc.__class__.__name__}") from None
        if version > self._resource_version or version <= 0:
            raise BadRequest("continue key is not valid: its resource version was never served")
        return version, (namespace, name)

    # --- identifiers -----------------------------------------------------------------------------------------

    def _uid(self, version: int) -> str:
        digest = hashlib.sha256(f"{self._cluster}/{version}".encode()).digest()[:16]
        return str(uuid.UUID(bytes=digest, version=4))

    def _generated_name(self, prefix: str, version: int) -> str:
        digest = hashlib.sha256(f"{self._cluster}/{prefix}/{version}".encode()).digest()
        return prefix + "".join(_SUFFIX_ALPHABET[b % len(_SUFFIX_ALPHABET)] for b in digest[:5])


def _with_version(previous: dict[str, Any] | None, event: Event) -> dict[str, Any]:
    assert previous is not None
    return {**previous, "metadata": {**previous["metadata"], "resourceVersion": str(event.resource_version)}}


def _check_name(resource: Resource, name: str) -> None:
    if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        raise Invalid(
            f'{resource.group_kind} "{name}" is invalid: metadata.name: Invalid value: "{name}": {_SUBDOMAIN_RULE}',
            name=name,
            kind=resource.kind,
            group=resource.group,
        )


def _check_labels(resource: Resource, metadata: dict[str, Any]) -> None:
    for part in ("labels", "annotations"):
        values = metadata.get(part)
        if values is None:
            continue
        if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
            raise BadRequest(
                f'{resource.kind} in version "{resource.version}" cannot be handled as a {resource.kind}:'
                f" metadata.{part} must map strings to strings"
            )


def keys_of(items: Iterable[dict[str, Any]]) -> list[Key]:
    """(namespace, name) of each object, for tests and the server's logs."""
    return [(i["metadata"].get("namespace", ""), i["metadata"]["name"]) for i in items]
