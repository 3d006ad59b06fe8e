"""The kinds a simulated cluster serves and the discovery documents that describe them (``/api``, ``/apis``,
``/api/v1``, ``/apis/<group>/<version>``), in the shapes kubectl and client libraries read. Pure data; the store
keys objects by ``Resource`` and the server routes by it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

# What each resource answers to (server-side apply, a kind of patch, is not served yet: docs/simulated-clusters.md).
VERBS: Final = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
SUBRESOURCE_VERBS: Final = ("get", "patch", "update")
# The fields every kind can be selected by (the API server's own default).
COMMON_FIELDS: Final = ("metadata.name", "metadata.namespace")


@dataclass(frozen=True, slots=True)
class Resource:
    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    # Kinds with a status subresource keep their status on a plain update and their spec on a status update.
    has_status: bool = False
    # Kinds whose metadata.generation counts spec changes (the apps kinds; controllers report observedGeneration).
    tracks_generation: bool = False
    # Field selectors accepted beside metadata.name and metadata.namespace.
    field_labels: tuple[str, ...] = ()
    # Kinds with a scale subresource (autoscaling/v1 Scale of spec.replicas): kubectl scale, autoscalers.
    has_scale: bool = False
    # Discovery categories: ``kubectl get all`` lists the kinds in "all".
    categories: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> str:
        """``v1/nodes``, ``apps/v1/deployments``: the store's name for the resource."""
        return f"{self.api_version}/{self.plural}"

    @property
    def group_resource(self) -> str:
        """``deployments.apps``, ``pods``: how the API server names the resource in its messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def group_kind(self) -> str:
        """``Deployment.apps``, ``Pod``: how the API server names the kind in its Invalid messages."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    def fields(self) -> tuple[str, ...]:
        return COMMON_FIELDS + self.field_labels


NAMESPACES: Final = Resource("", "v1", "namespaces", "namespace", "Namespace", False, ("ns",), has_status=True)
NODES: Final = Resource(
    "", "v1", "nodes", "node", "Node", False, ("no",), has_status=True, field_labels=("spec.unschedulable",)
)
PODS: Final = Resource(
    "",
    "v1",
    "pods",
    "pod",
    "Pod",
    True,
    ("po",),
    has_status=True,
    field_labels=("spec.nodeName", "status.phase"),
    categories=("all",),
)
CONFIG_MAPS: Final = Resource("", "v1", "configmaps", "configmap", "ConfigMap", True, ("cm",))
SECRETS: Final = Resource("", "v1", "secrets", "secret", "Secret", True, field_labels=("type",))
SERVICES: Final = Resource(
    "", "v1", "services", "service", "Service", True, ("svc",), has_status=True, categories=("all",)
)
EVENTS: Final = Resource(
    "",
    "v1",
    "events",
    "event",
    "Event",
    True,
    ("ev",),
    # The API server's event field selectors (kubectl describe asks for involvedObject.uid).
    field_labels=(
        "involvedObject.kind",
        "involvedObject.name",
        "involvedObject.namespace",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "type",
    ),
)
DEPLOYMENTS: Final = Resource(
    "apps",
    "v1",
    "deployments",
    "deployment",
    "Deployment",
    True,
    ("deploy",),
    True,
    True,
    has_scale=True,
    categories=("all",),
)
DAEMON_SETS: Final = Resource(
    "apps", "v1", "daemonsets", "daemonset", "DaemonSet", True, ("ds",), True, True, categories=("all",)
)
REPLICA_SETS: Final = Resource(
    "apps",
    "v1",
    "replicasets",
    "replicaset",
    "ReplicaSet",
    True,
    ("rs",),
    True,
    True,
    has_scale=True,
    categories=("all",),
)
LEASES: Final = Resource("coordination.k8s.io", "v1", "leases", "lease", "Lease", True)
# The broker of the controller's deploy/ manifests; its controller is ``statefulsets``.
STATEFUL_SETS: Final = Resource(
    "apps", "v1", "statefulsets", "statefulset", "StatefulSet", True, ("sts",), True, True, categories=("all",)
)
POD_DISRUPTION_BUDGETS: Final = Resource(
    "policy", "v1", "poddisruptionbudgets", "poddisruptionbudget", "PodDisruptionBudget", True, ("pdb",), True
)
# The DaemonSet controller's template history, which kubectl rollout history/undo ds read.
CONTROLLER_REVISIONS: Final = Resource(
    "apps", "v1", "controllerrevisions", "controllerrevision", "ControllerRevision", True
)

# Batch work that runs to completion (GPU training runs at central sites): the Job controller (``jobs``) runs its
# pods until enough succeed or too many fail. No short name, as the API server gives none.
JOBS: Final = Resource(
    "batch", "v1", "jobs", "job", "Job", True, has_status=True, tracks_generation=True, categories=("all",)
)

# A release's autoscaler (edgefleet renders them at central sites). Stored, validated and served as the API server
# does; no controller scales by it here (docs/simulated-clusters.md).
HORIZONTAL_POD_AUTOSCALERS: Final = Resource(
    "autoscaling",
    "v2",
    "horizontalpodautoscalers",
    "horizontalpodautoscaler",
    "HorizontalPodAutoscaler",
    True,
    ("hpa",),
    has_status=True,
    tracks_generation=True,
    categories=("all",),
)

RESOURCES: Final = (
    NAMESPACES,
    NODES,
    PODS,
    CONFIG_MAPS,
    SECRETS,
    SERVICES,
    EVENTS,
    DEPLOYMENTS,
    DAEMON_SETS,
    REPLICA_SETS,
    CONTROLLER_REVISIONS,
    LEASES,
    STATEFUL_SETS,
    POD_DISRUPTION_BUDGETS,
    HORIZONTAL_POD_AUTOSCALERS,
    JOBS,
)
# group/version -> plural -> resource
BY_GROUP_VERSION: Final[dict[str, dict[str, Resource]]] = {}
for _resource in RESOURCES:
    BY_GROUP_VERSION.setdefault(_resource.api_version, {})[_resource.plural] = _resource
GROUPS: Final = sorted({r.group for r in RESOURCES if r.group})


def api_versions(server_address: str) -> dict[str, Any]:
    """``GET /api``."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def api_group(group: str) -> dict[str, Any]:
    """``GET /apis/<group>`` (and one entry of ``/apis``)."""
    versions = sorted({r.version for r in RESOURCES if r.group == group})
    entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": entries, "preferredVersion": entries[0]}


def api_group_list() -> dict[str, Any]:
    """``GET /apis``."""
    groups = []
    for group in GROUPS:
        entry = api_group(group)
        del entry["kind"], entry["apiVersion"]
        groups.append(entry)
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_resource_list(group_version: str) -> dict[str, Any] | None:
    """``GET /api/v1`` or ``/apis/<group>/<version>``; None for a group/version not served."""
    served = BY_GROUP_VERSION.get(group_version)
    if served is None:
        return None
    resources: list[dict[str, Any]] = []
    for resource in sorted(served.values(), key=lambda r: r.plural):
        entry: dict[str, Any] = {
            "name": resource.plural,
            "singularName": resource.singular,
            "namespaced": resource.namespaced,
            "kind": resource.kind,
            "verbs": list(VERBS),
        }
        if resource.short_names:
            entry["shortNames"] = list(resource.short_names)
        if resource.categories:
            entry["categories"] = list(resource.categories)
        resources.append(entry)
        if resource.has_status:
            resources.append(
                {
                    "name": f"{resource.plural}/status",
                    "singularName": "",
                    "namespaced": resource.namespaced,
                    "kind": resource.kind,
                    "verbs": list(SUBRESOURCE_VERBS),
                }
            )
        if resource.has_scale:
            # The kind resolver of client-go's scale client reads group, version and kind from this entry.
            resources.append(
                {
                    "name": f"{resource.plural}/scale",
                    "singularName": "",
                    "namespaced": resource.namespaced,
                    "group": "autoscaling",
                    "version": "v1",
                    "kind": "Scale",
                    "verbs": list(SUBRESOURCE_VERBS),
                }
            )
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}
