"""The controller's view of its clusters: ``ClusterGateway`` (operations in edgefleet's terms) and
``KubernetesGateway``, its implementation over the official client (one ``ApiClient`` per cluster).

Callers (the controller's loops, and later rollouts) get plain JSON dicts as the API serves them (``RawObject``,
camelCase keys), never the client's models, and only ``ClusterError``s (errors.py), never the client's
exceptions. Every call has a timeout (``clients.Timeouts``).

What a call does to the cluster's health: ``probe(cluster)`` asks ``/version`` and records reachable, latency
(on the injected Clock's monotonic time), server version and when; any call that fails for a reason that says
something about the cluster (unreachable, timed out, 401/403, 429, 5xx, an unusable kubeconfig) records it as the
cluster's last error. A 404 or 409 is about the request, not the cluster, and is not recorded; every failed call
is counted, temporary or permanent. ``health()`` returns the records (``health.ClusterHealth``) for
``GET /api/v1/clusters``, ``edgefleet clusters`` and ``/metrics``; the controller probes every cluster on a
schedule (``edgefleet.cloud.probing``).

Writes: ``apply`` is a server-side apply with field manager ``edgefleet`` (not forced by default: a field another
manager owns is an ``ApplyConflictError`` naming the manager and the field); ``restart`` does what ``kubectl rollout
restart`` does (a strategic merge patch of the pod template's ``kubectl.kubernetes.io/restartedAt`` annotation, at
the time given); ``set_node_taints`` replaces a node's taints by a merge patch that carries the resourceVersion
they were read at (the API server refuses it with 409 when the node changed since, so a taint another writer
added in between is never lost); ``rollout_progress`` reads a Deployment or DaemonSet and applies kubectl's rule (``rollout``).

Watches: ``watch(...)`` lists (when given no resourceVersion) and then watches from the list's version, resuming
from the last version it saw whenever the server ends a watch (``timeoutSeconds``), and listing again when the
version has left the server's history (410, as an ERROR event or an answer). What to do with each watch event is
decided by the pure ``read_watch_event``.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any, Final, Literal, Protocol

from kubernetes import client
from kubernetes.watch import watch as _watch_module

from edgefleet.clock import Clock
from edgefleet.cloud.k8s.clients import ClusterClients, Timeouts
from edgefleet.cloud.k8s.errors import (
    ClusterError,
    ExpiredError,
    TemporaryClusterError,
    status_error,
    translating,
)
from edgefleet.cloud.k8s.health import ClusterHealth
from edgefleet.cloud.k8s.rollout import RolloutStatus, daemonset_rollout, deployment_rollout
from edgefleet.ids import ClusterId

__all__ = [
    "ClusterGateway",
    "ClusterHealth",
    "KubernetesGateway",
    "ObjectList",
    "RawObject",
]

RawObject = dict[str, Any]
Kind = Literal[
    "Deployment",
    "DaemonSet",
    "StatefulSet",
    "Job",
    "Pod",
    "Node",
    "Event",
    "Namespace",
    "ConfigMap",
    "HorizontalPodAutoscaler",
]
KINDS: Final[tuple[Kind, ...]] = (
    "Deployment",
    "DaemonSet",
    "StatefulSet",
    "Job",
    "Pod",
    "Node",
    "Event",
    "Namespace",
    "ConfigMap",
    "HorizontalPodAutoscaler",
)
# What ``kubectl rollout`` restarts and follows here.
WorkloadKind = Literal["Deployment", "DaemonSet"]

# Server-side apply's owner of what edgefleet applies: the fields it set are edgefleet's in ``managedFields``.
FIELD_MANAGER: Final = "edgefleet"
# The pod template annotation ``kubectl rollout restart`` sets; a new value is a new template, so a new rollout.
RESTARTED_AT: Final = "kubectl.kubernetes.io/restartedAt"
APPLY_PATCH: Final = "application/apply-patch+yaml"
STRATEGIC_MERGE_PATCH: Final = "application/strategic-merge-patch+json"
MERGE_PATCH: Final = "application/merge-patch+json"
# The health probe asks one small thing: beyond 5 s the cluster is not usefully reachable, and a short timeout
# keeps one unreachable cluster from holding its probe thread for the read timeout of a list.
PROBE_TIMEOUT_S: Final = 5.0

# One page of a list: the API server's own default chunk size (kubectl's --chunk-size).
LIST_PAGE_SIZE: Final = 500
# The server ends a watch after this long and the gateway starts the next from the last version it saw: short
# enough that a lost connection is noticed within minutes, long enough to cost little.
WATCH_TIMEOUT_S: Final = 300.0
# The read timeout of a watch is the server's timeout plus this margin (the server ends it first).
WATCH_READ_MARGIN_S: Final = 10.0
# Statuses that say something about the request, not the cluster: kept out of the cluster's last error.
REQUEST_STATUSES: Final = frozenset({400, 404, 409, 410, 422})


@dataclass(frozen=True, slots=True)
class ObjectList:
    """A list's items and the resourceVersion to watch from."""

    items: list[RawObject]
    resource_version: str


# --- watch events (pure) ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Listed:
    """The whole current state (a first list, or a re-list after 410): replace what you hold with ``items``."""

    items: list[RawObject]
    resource_version: str


@dataclass(frozen=True, slots=True)
class Changed:
    type: Literal["ADDED", "MODIFIED", "DELETED"]
    object: RawObject
    resource_version: str


@dataclass(frozen=True, slots=True)
class Bookmark:
    """Nothing changed, but the watch may resume from ``resource_version``."""

    resource_version: str


@dataclass(frozen=True, slots=True)
class Expired:
    """The version is gone from the server's history: list again."""

    message: str


@dataclass(frozen=True, slots=True)
class WatchFailed:
    """An ERROR event other than 410, or an event the gateway does not understand."""

    status: int | None
    reason: str
    message: str


WatchUpdate = Listed | Changed
WatchStep = Changed | Bookmark | Expired | WatchFailed


def read_watch_event(event: Mapping[str, Any]) -> WatchStep:
    """What one watch event means for the watcher (pure)."""
    kind = event.get("type")
    obj = event.get("object")
    if not isinstance(obj, dict):
        return WatchFailed(None, "", f"watch event {kind!r} carries no object")
    if kind in ("ADDED", "MODIFIED", "DELETED"):
        return Changed(kind, obj, _version_of(obj))
    if kind == "BOOKMARK":
        return Bookmark(_version_of(obj))
    if kind == "ERROR":
        code = obj.get("code")
        message = str(obj.get("message") or "the watch failed")
        if code == 410:
            return Expired(message)
        return WatchFailed(code if isinstance(code, int) else None, str(obj.get("reason") or ""), message)
    return WatchFailed(None, "", f"unknown watch event type {kind!r}")


def _version_of(obj: Mapping[str, Any]) -> str:
    metadata = obj.get("metadata")
    version = metadata.get("resourceVersion") if isinstance(metadata, dict) else None
    return str(version) if version else ""


# --- the seam ---------------------------------------------------------------------------------------------


class ClusterGateway(Protocol):
    def nodes(
        self, cluster: ClusterId, *, label_selector: str | None = None, field_selector: str | None = None
    ) -> ObjectList:
        """The cluster's nodes; a site's are ``label_selector=site.node_selector``."""
        ...

    def list_objects(
        self,
        cluster: ClusterId,
        kind: Kind,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> ObjectList:
        """Every object of ``kind`` that matches (``namespace`` None: all namespaces), all pages."""
        ...

    def get(self, cluster: ClusterId, kind: Kind, name: str, *, namespace: str | None = None) -> RawObject: ...

    def delete(self, cluster: ClusterId, kind: Kind, name: str, *, namespace: str | None = None) -> bool:
        """Delete the object; False when it was not there (deleting twice is no error)."""
        ...

    def apply(self, cluster: ClusterId, obj: Mapping[str, Any], *, force: bool = False) -> RawObject:
        """Server-side apply ``obj`` (a whole manifest: apiVersion, kind, metadata.name and namespace) with field
        manager ``edgefleet``; the object as it is now. Without ``force`` a field another manager owns is an
        ``ApplyConflictError``."""
        ...

    def restart(self, cluster: ClusterId, kind: WorkloadKind, namespace: str, name: str, *, at: float) -> RawObject:
        """Restart every pod of the workload as ``kubectl rollout restart`` does, stamped ``at`` (epoch seconds)."""
        ...

    def rollout_progress(self, cluster: ClusterId, kind: WorkloadKind, namespace: str, name: str) -> RolloutStatus:
        """Whether the workload has rolled out, by kubectl's rule."""
        ...

    def set_node_taints(
        self, cluster: ClusterId, name: str, taints: list[RawObject], *, resource_version: str
    ) -> RawObject:
        """Make ``taints`` the node's whole list, if the node is still at ``resource_version`` (the version the
        list was computed from); a node changed since is a 409, a ``TemporaryClusterError``: read it again."""
        ...

    def watch(
        self,
        cluster: ClusterId,
        kind: Kind,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resource_version: str | None = None,
    ) -> Iterator[WatchUpdate]: ...

    def probe(self, cluster: ClusterId) -> ClusterHealth: ...

    def health(self) -> list[ClusterHealth]: ...

    def close(self) -> None: ...


# --- the kubernetes-client side ---------------------------------------------------------------------------

ApiCall = Callable[..., Any]
# The client's line splitter of a streamed answer (untyped there).
_iter_resp_lines: Callable[[Any], Iterator[str]] = _watch_module.iter_resp_lines


@dataclass(frozen=True, slots=True)
class _Resource:
    """The client's calls for one kind. ``namespaced`` calls take the namespace after the name."""

    plural: str
    namespaced: bool
    list_in: Callable[[client.ApiClient], ApiCall]  # namespaced: (namespace); cluster-scoped: ()
    list_all: Callable[[client.ApiClient], ApiCall]
    read: Callable[[client.ApiClient], ApiCall]
    remove: Callable[[client.ApiClient], ApiCall]
    patch: Callable[[client.ApiClient], ApiCall]


_RESOURCES: Final[dict[Kind, _Resource]] = {
    "Deployment": _Resource(
        "deployments",
        True,
        lambda c: client.AppsV1Api(c).list_namespaced_deployment,
        lambda c: client.AppsV1Api(c).list_deployment_for_all_namespaces,
        lambda c: client.AppsV1Api(c).read_namespaced_deployment,
        lambda c: client.AppsV1Api(c).delete_namespaced_deployment,
        lambda c: client.AppsV1Api(c).patch_namespaced_deployment,
    ),
    "DaemonSet": _Resource(
        "daemonsets",
        True,
        lambda c: client.AppsV1Api(c).list_namespaced_daemon_set,
        lambda c: client.AppsV1Api(c).list_daemon_set_for_all_namespaces,
        lambda c: client.AppsV1Api(c).read_namespaced_daemon_set,
        lambda c: client.AppsV1Api(c).delete_namespaced_daemon_set,
        lambda c: client.AppsV1Api(c).patch_namespaced_daemon_set,
    ),
    # Workloads edgefleet does not deploy but audits at central sites (``auditing``): their pod templates too.
    "StatefulSet": _Resource(
        "statefulsets",
        True,
        lambda c: client.AppsV1Api(c).list_namespaced_stateful_set,
        lambda c: client.AppsV1Api(c).list_stateful_set_for_all_namespaces,
        lambda c: client.AppsV1Api(c).read_namespaced_stateful_set,
        lambda c: client.AppsV1Api(c).delete_namespaced_stateful_set,
        lambda c: client.AppsV1Api(c).patch_namespaced_stateful_set,
    ),
    "Job": _Resource(
        "jobs",
        True,
        lambda c: client.BatchV1Api(c).list_namespaced_job,
        lambda c: client.BatchV1Api(c).list_job_for_all_namespaces,
        lambda c: client.BatchV1Api(c).read_namespaced_job,
        lambda c: client.BatchV1Api(c).delete_namespaced_job,
        lambda c: client.BatchV1Api(c).patch_namespaced_job,
    ),
    "Pod": _Resource(
        "pods",
        True,
        lambda c: client.CoreV1Api(c).list_namespaced_pod,
        lambda c: client.CoreV1Api(c).list_pod_for_all_namespaces,
        lambda c: client.CoreV1Api(c).read_namespaced_pod,
        lambda c: client.CoreV1Api(c).delete_namespaced_pod,
        lambda c: client.CoreV1Api(c).patch_namespaced_pod,
    ),
    "Event": _Resource(
        "events",
        True,
        lambda c: client.CoreV1Api(c).list_namespaced_event,
        lambda c: client.CoreV1Api(c).list_event_for_all_namespaces,
        lambda c: client.CoreV1Api(c).read_namespaced_event,
        lambda c: client.CoreV1Api(c).delete_namespaced_event,
        lambda c: client.CoreV1Api(c).patch_namespaced_event,
    ),
    # What a release's rendering applies beside its workloads (``rollouts.rendering``): the apps' namespace and
    # each workload's config.
    "Namespace": _Resource(
        "namespaces",
        False,
        lambda c: client.CoreV1Api(c).list_namespace,
        lambda c: client.CoreV1Api(c).list_namespace,
        lambda c: client.CoreV1Api(c).read_namespace,
        lambda c: client.CoreV1Api(c).delete_namespace,
        lambda c: client.CoreV1Api(c).patch_namespace,
    ),
    "ConfigMap": _Resource(
        "configmaps",
        True,
        lambda c: client.CoreV1Api(c).list_namespaced_config_map,
        lambda c: client.CoreV1Api(c).list_config_map_for_all_namespaces,
        lambda c: client.CoreV1Api(c).read_namespaced_config_map,
        lambda c: client.CoreV1Api(c).delete_namespaced_config_map,
        lambda c: client.CoreV1Api(c).patch_namespaced_config_map,
    ),
    # A release's autoscaler at a central site (``rollouts.policy``), autoscaling/v2.
    "HorizontalPodAutoscaler": _Resource(
        "horizontalpodautoscalers",
        True,
        lambda c: client.AutoscalingV2Api(c).list_namespaced_horizontal_pod_autoscaler,
        lambda c: client.AutoscalingV2Api(c).list_horizontal_pod_autoscaler_for_all_namespaces,
        lambda c: client.AutoscalingV2Api(c).read_namespaced_horizontal_pod_autoscaler,
        lambda c: client.AutoscalingV2Api(c).delete_namespaced_horizontal_pod_autoscaler,
        lambda c: client.AutoscalingV2Api(c).patch_namespaced_horizontal_pod_autoscaler,
    ),
    "Node": _Resource(
        "nodes",
        False,
        lambda c: client.CoreV1Api(c).list_node,
        lambda c: client.CoreV1Api(c).list_node,
        lambda c: client.CoreV1Api(c).read_node,
        lambda c: client.CoreV1Api(c).delete_node,
        lambda c: client.CoreV1Api(c).patch_node,
    ),
}


class KubernetesGateway:
    """``ClusterGateway`` over the official client. Thread-safe."""

    def __init__(
        self,
        clients: ClusterClients,
        *,
        clock: Clock,
        timeouts: Timeouts | None = None,
        watch_timeout_s: float = WATCH_TIMEOUT_S,
        probe_timeout_s: float = PROBE_TIMEOUT_S,
    ) -> None:
        self._clients = clients
        self._clock = clock
        self._timeouts = timeouts or Timeouts()
        self._watch_timeout_s = watch_timeout_s
        self._probe_timeout = (min(self._timeouts.connect_s, probe_timeout_s), probe_timeout_s)
        self._lock = threading.Lock()
        self._health = {c: ClusterHealth(c, clients.context(c)) for c in clients.clusters}

    def close(self) -> None:
        """Close every cluster's client (the controller's shutdown)."""
        self._clients.close()

    # -- reads -------------------------------------------------------------------------------------------

    def nodes(
        self, cluster: ClusterId, *, label_selector: str | None = None, field_selector: str | None = None
    ) -> ObjectList:
        return self.list_objects(cluster, "Node", label_selector=label_selector, field_selector=field_selector)

    def list_deployments(self, cluster: ClusterId, **selectors: str | None) -> ObjectList:
        return self.list_objects(cluster, "Deployment", **selectors)

    def list_daemonsets(self, cluster: ClusterId, **selectors: str | None) -> ObjectList:
        return self.list_objects(cluster, "DaemonSet", **selectors)

    def list_pods(self, cluster: ClusterId, **selectors: str | None) -> ObjectList:
        return self.list_objects(cluster, "Pod", **selectors)

    def list_events(self, cluster: ClusterId, **selectors: str | None) -> ObjectList:
        return self.list_objects(cluster, "Event", **selectors)

    def get_deployment(self, cluster: ClusterId, namespace: str, name: str) -> RawObject:
        return self.get(cluster, "Deployment", name, namespace=namespace)

    def get_daemonset(self, cluster: ClusterId, namespace: str, name: str) -> RawObject:
        return self.get(cluster, "DaemonSet", name, namespace=namespace)

    def list_objects(
        self,
        cluster: ClusterId,
        kind: Kind,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> ObjectList:
        resource = _RESOURCES[kind]
        doing = f"list {resource.plural}{_where(resource, namespace)}{_selected(label_selector, field_selector)}"
        items: list[RawObject] = []
        version = ""
        token: str | None = None
        while True:
            page = self._call(
                cluster,
                doing,
                partial(
                    self._list_page,
                    resource=resource,
                    namespace=namespace,
                    label_selector=label_selector,
                    field_selector=field_selector,
                    token=token,
                ),
            )
            metadata = page.get("metadata") or {}
            items.extend(page.get("items") or [])
            # The first page's version is the snapshot's: every page serves it.
            version = version or str(metadata.get("resourceVersion") or "")
            token = metadata.get("continue") or None
            if token is None:
                return ObjectList(items, version)

    def get(self, cluster: ClusterId, kind: Kind, name: str, *, namespace: str | None = None) -> RawObject:
        resource = _RESOURCES[kind]
        return self._call(
            cluster,
            f"read {resource.plural} {name}{_where(resource, namespace)}",
            lambda api: resource.read(api)(
                *_name_args(resource, name, namespace),
                _preload_content=False,
                _request_timeout=self._timeouts.request(),
            ),
        )

    # -- writes ------------------------------------------------------------------------------------------

    def delete(self, cluster: ClusterId, kind: Kind, name: str, *, namespace: str | None = None) -> bool:
        resource = _RESOURCES[kind]
        try:
            self._call(
                cluster,
                f"delete {resource.plural} {name}{_where(resource, namespace)}",
                lambda api: resource.remove(api)(
                    *_name_args(resource, name, namespace),
                    _preload_content=False,
                    _request_timeout=self._timeouts.request(),
                ),
            )
        except ClusterError as error:
            if getattr(error, "status", None) == 404:
                return False
            raise
        return True

    def apply(self, cluster: ClusterId, obj: Mapping[str, Any], *, force: bool = False) -> RawObject:
        kind, namespace, name = _identity(obj)
        resource = _RESOURCES[kind]
        return self._call(
            cluster,
            f"apply {resource.plural} {name}{_where(resource, namespace)}",
            lambda api: resource.patch(api)(
                *_name_args(resource, name, namespace),
                dict(obj),
                field_manager=FIELD_MANAGER,
                force=force,
                _content_type=APPLY_PATCH,
                _preload_content=False,
                _request_timeout=self._timeouts.request(),
            ),
        )

    def restart(self, cluster: ClusterId, kind: WorkloadKind, namespace: str, name: str, *, at: float) -> RawObject:
        resource = _RESOURCES[kind]
        # kubectl's own patch: only the annotation, merged into the template by the strategic merge rules.
        body = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: rfc3339(at)}}}}}
        return self._call(
            cluster,
            f"restart {resource.plural} {name}{_where(resource, namespace)}",
            lambda api: resource.patch(api)(
                *_name_args(resource, name, namespace),
                body,
                _content_type=STRATEGIC_MERGE_PATCH,
                _preload_content=False,
                _request_timeout=self._timeouts.request(),
            ),
        )

    def set_node_taints(
        self, cluster: ClusterId, name: str, taints: list[RawObject], *, resource_version: str
    ) -> RawObject:
        resource = _RESOURCES["Node"]
        # Node.spec.taints has no patch strategy: every patch type replaces the list whole (as ``kubectl taint``'s
        # does), so the version precondition is what keeps a concurrent writer's taint. ``null`` removes the field.
        body = {"metadata": {"resourceVersion": resource_version}, "spec": {"taints": taints or None}}
        return self._call(
            cluster,
            f"set the taints of node {name}",
            lambda api: resource.patch(api)(
                name,
                body,
                _content_type=MERGE_PATCH,
                _preload_content=False,
                _request_timeout=self._timeouts.request(),
            ),
        )

    def rollout_progress(self, cluster: ClusterId, kind: WorkloadKind, namespace: str, name: str) -> RolloutStatus:
        workload = self.get(cluster, kind, name, namespace=namespace)
        return deployment_rollout(workload) if kind == "Deployment" else daemonset_rollout(workload)

    # -- watches -----------------------------------------------------------------------------------------

    def watch(
        self,
        cluster: ClusterId,
        kind: Kind,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resource_version: str | None = None,
    ) -> Iterator[WatchUpdate]:
        """Changes from ``resource_version`` (None: a ``Listed`` of the current state first), for as long as the
        caller iterates. A ClusterError other than 410 ends the iteration; the caller may start again from the
        last version it saw."""
        resource = _RESOURCES[kind]
        doing = f"watch {resource.plural}{_where(resource, namespace)}{_selected(label_selector, field_selector)}"
        version = resource_version
        while True:
            if not version:
                listed = self.list_objects(
                    cluster, kind, namespace=namespace, label_selector=label_selector, field_selector=field_selector
                )
                version = listed.resource_version
                yield Listed(listed.items, version)
            try:
                for step in self._watch_once(
                    cluster, doing, resource, namespace, label_selector, field_selector, version
                ):
                    if isinstance(step, Changed):
                        version = step.resource_version or version
                        yield step
                    elif isinstance(step, Bookmark):
                        version = step.resource_version or version
                    elif isinstance(step, Expired):
                        raise ExpiredError(cluster, doing, step.message, status=410)
                    else:
                        raise status_error(cluster, doing, step.status, step.reason, step.message)
            except ExpiredError:
                version = None  # list again: what happened since is lost, the list has it

    def _watch_once(
        self,
        cluster: ClusterId,
        doing: str,
        resource: _Resource,
        namespace: str | None,
        label_selector: str | None,
        field_selector: str | None,
        version: str,
    ) -> Iterator[WatchStep]:
        """One watch request, until the server ends it."""
        api = self._api(cluster, doing)
        try:
            with translating(cluster, doing):
                response = self._open_watch(resource, api, namespace, label_selector, field_selector, version)
        except ClusterError as error:
            self._record(cluster, error)
            raise

        lines = _iter_resp_lines(response)
        try:
            while True:
                try:
                    with translating(cluster, doing):
                        line = next(lines, None)
                except ClusterError as error:
                    self._record(cluster, error)
                    raise
                if line is None:
                    return  # the server ended the watch (timeoutSeconds): the caller resumes
                try:
                    event = json.loads(line)
                except ValueError:
                    yield WatchFailed(500, "", f"the watch sent a line that is not JSON: {line[:200]!r}")
                    return
                yield read_watch_event(event if isinstance(event, dict) else {})
        finally:
            # Closed, not returned to the pool: a caller that stops early leaves the stream unread.
            response.close()

    def _list_page(
        self,
        api: client.ApiClient,
        *,
        resource: _Resource,
        namespace: str | None,
        label_selector: str | None,
        field_selector: str | None,
        token: str | None,
    ) -> Any:
        return self._lister(resource, api, namespace)(
            label_selector=label_selector or None,
            field_selector=field_selector or None,
            limit=LIST_PAGE_SIZE,
            _continue=token,
            _preload_content=False,
            _request_timeout=self._timeouts.request(),
        )

    def _open_watch(
        self,
        resource: _Resource,
        api: client.ApiClient,
        namespace: str | None,
        label_selector: str | None,
        field_selector: str | None,
        version: str,
    ) -> Any:
        return self._lister(resource, api, namespace)(
            label_selector=label_selector or None,
            field_selector=field_selector or None,
            resource_version=version,
            allow_watch_bookmarks=True,
            watch=True,
            timeout_seconds=max(1, int(self._watch_timeout_s)),
            _preload_content=False,
            _request_timeout=self._timeouts.request(read_s=self._watch_timeout_s + WATCH_READ_MARGIN_S),
        )

    # -- health ------------------------------------------------------------------------------------------

    def probe(self, cluster: ClusterId) -> ClusterHealth:
        """Ask the cluster's ``/version``; record and return what the controller now knows of the cluster."""
        started = self._clock.monotonic()
        try:
            answer = self._call(
                cluster,
                "read the server version",
                lambda api: client.VersionApi(api).get_code(
                    _preload_content=False, _request_timeout=self._probe_timeout
                ),
            )
        except ClusterError:
            with self._lock:
                known = replace(self._known(cluster), reachable=False, latency_s=None, checked_at=self._clock.now())
                self._health[cluster] = known
            return known
        latency = self._clock.monotonic() - started
        now = self._clock.now()
        with self._lock:
            known = replace(
                self._known(cluster),
                reachable=True,
                latency_s=latency,
                version=str(answer.get("gitVersion") or "") or None,
                checked_at=now,
                last_success_at=now,
            )
            self._health[cluster] = known
        return known

    def health(self) -> list[ClusterHealth]:
        with self._lock:
            return [self._health[c] for c in sorted(self._health)]

    # -- plumbing ----------------------------------------------------------------------------------------

    def _api(self, cluster: ClusterId, doing: str) -> client.ApiClient:
        try:
            return self._clients.api_client(cluster)
        except ClusterError as error:
            self._record(cluster, error)
            raise

    def _call(self, cluster: ClusterId, doing: str, call: Callable[[client.ApiClient], Any]) -> RawObject:
        """Run one request that answers JSON (``_preload_content=False``) and return the answer's body."""
        api = self._api(cluster, doing)
        try:
            with translating(cluster, doing):
                response = call(api)
                body = json.loads(response.data)
        except ClusterError as error:
            self._record(cluster, error)
            raise
        if not isinstance(body, dict):
            raise status_error(cluster, doing, 500, "", "the API server answered something that is not an object")
        return body

    @staticmethod
    def _lister(resource: _Resource, api: client.ApiClient, namespace: str | None) -> ApiCall:
        if not resource.namespaced:
            return resource.list_in(api)
        if namespace is None:
            return resource.list_all(api)
        return lambda **kwargs: resource.list_in(api)(namespace, **kwargs)

    def _known(self, cluster: ClusterId) -> ClusterHealth:
        known = self._health.get(cluster)
        return known if known is not None else ClusterHealth(cluster, "")

    def _record(self, cluster: ClusterId, error: ClusterError) -> None:
        """Count the failed call; keep it as the cluster's last error when it says something about the cluster."""
        status = getattr(error, "status", None)
        with self._lock:
            known = self._known(cluster)
            if isinstance(error, TemporaryClusterError):
                known = replace(known, temporary_errors=known.temporary_errors + 1)
            else:
                known = replace(known, permanent_errors=known.permanent_errors + 1)
            if status not in REQUEST_STATUSES:
                known = replace(known, last_error=str(error), last_error_at=self._clock.now())
            self._health[cluster] = known


def _where(resource: _Resource, namespace: str | None) -> str:
    if not resource.namespaced:
        return ""
    return f" in namespace {namespace}" if namespace else " in all namespaces"


def _selected(label_selector: str | None, field_selector: str | None) -> str:
    parts = [
        f"labels {label_selector!r}" if label_selector else "",
        f"fields {field_selector!r}" if field_selector else "",
    ]
    chosen = " and ".join(p for p in parts if p)
    return f" by {chosen}" if chosen else ""


def rfc3339(at: float) -> str:
    """``at`` (epoch seconds) as RFC 3339 in UTC, to the second, as kubectl stamps ``restartedAt``."""
    # Whole seconds first: fromtimestamp rounds to the microsecond, which would carry 0.9999999 into the next second.
    return datetime.fromtimestamp(math.floor(at), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _identity(obj: Mapping[str, Any]) -> tuple[Kind, str | None, str]:
    """(kind, namespace, name) of a manifest to apply; a ValueError says what is missing."""
    kind = next((k for k in KINDS if k == obj.get("kind")), None)
    if kind is None:
        raise ValueError(f"cannot apply kind {obj.get('kind')!r}: the gateway applies {', '.join(KINDS)}")
    if not obj.get("apiVersion"):
        raise ValueError(f"the {kind} to apply has no apiVersion; set it (apps/v1 for workloads)")
    metadata = obj.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    if not isinstance(name, str) or not name:
        raise ValueError(f"the {kind} to apply has no metadata.name; name it")
    namespace = metadata.get("namespace") if isinstance(metadata, Mapping) else None
    if _RESOURCES[kind].namespaced and (not isinstance(namespace, str) or not namespace):
        raise ValueError(f"the {kind} {name!r} to apply has no metadata.namespace; {kind}s live in a namespace")
    return kind, namespace if isinstance(namespace, str) else None, name


def _name_args(resource: _Resource, name: str, namespace: str | None) -> tuple[str, ...]:
    if not resource.namespaced:
        return (name,)
    if not namespace:
        raise ValueError(f"{resource.plural} live in a namespace: name one to reach {name!r}")
    return (name, namespace)
