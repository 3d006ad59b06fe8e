"""``kubectl get``'s tables: what the API server answers to ``Accept: application/json;as=Table;g=meta.k8s.io;v=v1``,
with the columns and cell values Kubernetes' own printers give (pkg/printers/internalversion/printers.go) for the
kinds served here, and Name/Age for any other. Columns of priority 1 are the ones ``-o wide`` adds.

Rows carry the object's metadata (``PartialObjectMetadata``, the default ``includeObject=Metadata``) so that
``kubectl get -A`` can show the NAMESPACE column and ``--show-labels`` the labels. Pure; the server calls ``table``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Final, Literal

from simulator.cluster.resources import Resource

IncludeObject = Literal["None", "Metadata", "Object"]
Row = list[Any]
Column = tuple[str, str, int]  # name, type, priority

_AGE: Final[Column] = ("Age", "string", 0)
_NAME: Final[Column] = ("Name", "string", 0)
_WORKLOAD_WIDE: Final[tuple[Column, ...]] = (
    ("Containers", "string", 1),
    ("Images", "string", 1),
    ("Selector", "string", 1),
)


def human_duration(seconds: float) -> str:
    """apimachinery's duration.HumanDuration, the AGE column: ``45s``, ``5m3s``, ``3h20m``, ``2d5h``, ``1y20d``."""
    whole = int(seconds)
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 120:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 10:
        return f"{minutes}m" if whole % 60 == 0 else f"{minutes}m{whole % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = whole // 3600
    if hours < 8:
        return f"{hours}h" if minutes % 60 == 0 else f"{hours}h{minutes % 60}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d" if hours % 24 == 0 else f"{hours // 24}d{hours % 24}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if days == 0 else f"{hours // 24 // 365}y{days}d"
    return f"{hours // 24 // 365}y"


def _seconds(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def _since(timestamp: str | None, now: float) -> str:
    if not timestamp:
        return "<unknown>"
    return human_duration(now - _seconds(timestamp))


def _labels(selector: dict[str, Any] | None) -> str:
    """A label selector as kubectl writes it: ``app=web,tier in (a,b)``; ``<none>`` when it selects nothing."""
    if not selector:
        return "<none>"
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        op, values = str(expr.get("operator", "")), ",".join(sorted(expr.get("values") or []))
        key = expr.get("key", "")
        if op == "In":
            parts.append(f"{key} in ({values})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({values})")
        elif op == "Exists":
            parts.append(str(key))
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts) or "<none>"


def _containers(obj: dict[str, Any]) -> tuple[str, str]:
    containers = ((obj.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or []
    return ",".join(c.get("name", "") for c in containers), ",".join(c.get("image", "") for c in containers)


def _node_row(node: dict[str, Any], now: float) -> Row:
    labels = node["metadata"].get("labels") or {}
    roles = sorted(
        {k.removeprefix("node-role.kubernetes.io/") for k in labels if k.startswith("node-role.kubernetes.io/")}
        | ({labels["kubernetes.io/role"]} if labels.get("kubernetes.io/role") else set())
    )
    status = node.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    # As Kubernetes' printer: NotReady for any status but True (Unknown too); Unknown only with no Ready at all.
    state = "Unknown" if ready is None else "Ready" if ready.get("status") == "True" else "NotReady"
    if (node.get("spec") or {}).get("unschedulable"):
        state += ",SchedulingDisabled"
    addresses = status.get("addresses") or []
    info = status.get("nodeInfo") or {}

    def address(kind: str) -> str:
        return next((a["address"] for a in addresses if a.get("type") == kind), "<none>")

    return [
        node["metadata"]["name"],
        state,
        ",".join(r for r in roles if r) or "<none>",
        _since(node["metadata"].get("creationTimestamp"), now),
        info.get("kubeletVersion", ""),
        address("InternalIP"),
        address("ExternalIP"),
        info.get("osImage") or "<unknown>",
        info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ]


def _pod_row(pod: dict[str, Any], now: float) -> Row:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    reason = status.get("reason") or status.get("phase") or "Pending"
    for container in statuses:
        state = container.get("state") or {}
        waiting, terminated = state.get("waiting") or {}, state.get("terminated") or {}
        if waiting.get("reason"):
            reason = waiting["reason"]
        elif terminated.get("reason"):
            reason = terminated["reason"]
    if pod["metadata"].get("deletionTimestamp"):
        reason = "Terminating"
    ready = sum(1 for c in statuses if c.get("ready"))
    restarts = sum(int(c.get("restartCount", 0)) for c in statuses)
    # As kubectl's printer: "3 (10s ago)", the age of the last container exit.
    exits = [
        str(((c.get("lastState") or {}).get("terminated") or {}).get("finishedAt") or "")
        for c in statuses
        if ((c.get("lastState") or {}).get("terminated") or {}).get("finishedAt")
    ]
    shown_restarts = f"{restarts} ({_since(max(exits), now)} ago)" if restarts and exits else str(restarts)
    return [
        pod["metadata"]["name"],
        f"{ready}/{len(spec.get('containers') or [])}",
        reason,
        shown_restarts,
        _since(pod["metadata"].get("creationTimestamp"), now),
        status.get("podIP") or "<none>",
        spec.get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        "<none>",
    ]


def _deployment_row(obj: dict[str, Any], now: float) -> Row:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    containers, images = _containers(obj)
    return [
        obj["metadata"]["name"],
        f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
        status.get("updatedReplicas", 0),
        status.get("availableReplicas", 0),
        _since(obj["metadata"].get("creationTimestamp"), now),
        containers,
        images,
        _labels(spec.get("selector")),
    ]


def _daemon_set_row(obj: dict[str, Any], now: float) -> Row:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    containers, images = _containers(obj)
    selector = ((spec.get("template") or {}).get("spec") or {}).get("nodeSelector") or {}
    return [
        obj["metadata"]["name"],
        status.get("desiredNumberScheduled", 0),
        status.get("currentNumberScheduled", 0),
        status.get("numberReady", 0),
        status.get("updatedNumberScheduled", 0),
        status.get("numberAvailable", 0),
        ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or "<none>",
        _since(obj["metadata"].get("creationTimestamp"), now),
        containers,
        images,
        _labels(spec.get("selector")),
    ]


def _replica_set_row(obj: dict[str, Any], now: float) -> Row:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    containers, images = _containers(obj)
    return [
        obj["metadata"]["name"],
        spec.get("replicas", 1),
        status.get("replicas", 0),
        status.get("readyReplicas", 0),
        _since(obj["metadata"].get("creationTimestamp"), now),
        containers,
        images,
        _labels(spec.get("selector")),
    ]


def _stateful_set_row(obj: dict[str, Any], now: float) -> Row:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    containers, images = _containers(obj)
    return [
        obj["metadata"]["name"],
        f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
        _since(obj["metadata"].get("creationTimestamp"), now),
        containers,
        images,
    ]


def _job_row(obj: dict[str, Any], now: float) -> Row:
    """printJob: STATUS from the conditions, COMPLETIONS ``1/3`` (``0/1 of 4`` for a work queue run in
    parallel), DURATION from startTime to completionTime (to now while it runs; empty before it starts)."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    containers, images = _containers(obj)
    succeeded = int(status.get("succeeded", 0))
    if spec.get("completions") is not None:
        completions = f"{succeeded}/{spec['completions']}"
    elif int(spec.get("parallelism") or 0) > 1:
        completions = f"{succeeded}/1 of {spec['parallelism']}"
    else:
        completions = f"{succeeded}/1"
    held = {c.get("type") for c in status.get("conditions") or [] if c.get("status") == "True"}
    shown = next(
        (
            name
            for name, kind in (
                ("Complete", "Complete"),
                ("Failed", "Failed"),
                ("Suspended", "Suspended"),
                ("FailureTarget", "FailureTarget"),
                ("SuccessCriteriaMet", "SuccessCriteriaMet"),
            )
            if kind in held
        ),
        "Running",
    )
    if obj["metadata"].get("deletionTimestamp") and shown not in ("Complete", "Failed"):
        shown = "Terminating"
    started, ended = status.get("startTime"), status.get("completionTime")
    duration = ""
    if started and ended:
        duration = human_duration(_seconds(ended) - _seconds(started))
    elif started:
        duration = human_duration(now - _seconds(started))
    return [
        obj["metadata"]["name"],
        shown,
        completions,
        duration,
        _since(obj["metadata"].get("creationTimestamp"), now),
        containers,
        images,
        _labels(spec.get("selector")),
    ]


def _service_row(obj: dict[str, Any], now: float) -> Row:
    spec = obj.get("spec") or {}
    # As the API server's printer: a node port after the port, the external name or the load balancer's address as
    # EXTERNAL-IP (<pending> until it has one).
    ports = [
        f"{p.get('port')}:{p['nodePort']}/{p.get('protocol', 'TCP')}"
        if p.get("nodePort")
        else f"{p.get('port')}/{p.get('protocol', 'TCP')}"
        for p in spec.get("ports") or []
    ]
    kind = spec.get("type", "ClusterIP")
    external = list(spec.get("externalIPs") or [])
    if kind == "ExternalName":
        external = [spec.get("externalName", "")]
    elif kind == "LoadBalancer":
        ingress = (obj.get("status") or {}).get("loadBalancer", {}).get("ingress") or []
        external = [i.get("ip") or i.get("hostname", "") for i in ingress] + external
    selector = spec.get("selector") or {}
    return [
        obj["metadata"]["name"],
        kind,
        spec.get("clusterIP") or "<none>",
        ",".join(external) or ("<pending>" if kind == "LoadBalancer" else "<none>"),
        ",".join(ports) or "<none>",
        _since(obj["metadata"].get("creationTimestamp"), now),
        ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or "<none>",
    ]


def _event_row(obj: dict[str, Any], now: float) -> Row:
    involved = obj.get("involvedObject") or {}
    last = obj.get("lastTimestamp") or obj.get("eventTime") or obj["metadata"].get("creationTimestamp")
    return [
        _since(last, now),
        obj.get("type", ""),
        obj.get("reason", ""),
        f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}",
        obj.get("message", ""),
    ]


def _hpa_targets(obj: dict[str, Any]) -> str:
    """kubectl's TARGETS of an autoscaler: ``cpu: <unknown>/70%`` until a controller reports the current value
    (none runs here, so it stays unknown)."""
    current = {
        (m.get("resource") or {}).get("name"): (m.get("resource") or {}).get("current") or {}
        for m in (obj.get("status") or {}).get("currentMetrics") or []
    }
    parts = []
    for metric in (obj.get("spec") or {}).get("metrics") or []:
        resource = metric.get("resource") or {}
        target = resource.get("target") or {}
        name = resource.get("name", "")
        if "averageUtilization" in target:
            now = current.get(name, {}).get("averageUtilization")
            parts.append(f"{name}: {'<unknown>' if now is None else f'{now}%'}/{target['averageUtilization']}%")
        else:
            parts.append(f"{name}: <unknown>/{target.get('averageValue') or target.get('value') or '<unset>'}")
    return ", ".join(parts) or "<none>"


def _hpa_row(obj: dict[str, Any], now: float) -> Row:
    spec = obj.get("spec") or {}
    ref = spec.get("scaleTargetRef") or {}
    return [
        obj["metadata"]["name"],
        f"{ref.get('kind', '')}/{ref.get('name', '')}",
        _hpa_targets(obj),
        str(spec["minReplicas"]) if spec.get("minReplicas") is not None else "<unset>",
        int(spec.get("maxReplicas") or 0),
        int((obj.get("status") or {}).get("currentReplicas") or 0),
        _since(obj["metadata"].get("creationTimestamp"), now),
    ]


def _age_row(*cells: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any], float], Row]:
    def row(obj: dict[str, Any], now: float) -> Row:
        return [
            obj["metadata"]["name"],
            *(cell(obj) for cell in cells),
            _since(obj["metadata"].get("creationTimestamp"), now),
        ]

    return row


def _revision_controller(obj: dict[str, Any]) -> str:
    """``daemonset.apps/<name>``: the printer's CONTROLLER column (the controller owner reference)."""
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            group = str(ref.get("apiVersion", "")).split("/")[0] if "/" in str(ref.get("apiVersion", "")) else ""
            return (
                f"{str(ref.get('kind', '')).lower()}.{group}/{ref.get('name')}"
                if group
                else f"{str(ref.get('kind', '')).lower()}/{ref.get('name')}"
            )
    return "<none>"


def _data_count(obj: dict[str, Any]) -> int:
    return len(obj.get("data") or {}) + len(obj.get("binaryData") or {}) + len(obj.get("stringData") or {})


_PRINTERS: Final[dict[str, tuple[tuple[Column, ...], Callable[[dict[str, Any], float], Row]]]] = {
    "v1/nodes": (
        (
            _NAME,
            ("Status", "string", 0),
            ("Roles", "string", 0),
            _AGE,
            ("Version", "string", 0),
            ("Internal-IP", "string", 1),
            ("External-IP", "string", 1),
            ("OS-Image", "string", 1),
            ("Kernel-Version", "string", 1),
            ("Container-Runtime", "string", 1),
        ),
        _node_row,
    ),
    "v1/pods": (
        (
            _NAME,
            ("Ready", "string", 0),
            ("Status", "string", 0),
            ("Restarts", "string", 0),
            _AGE,
            ("IP", "string", 1),
            ("Node", "string", 1),
            ("Nominated Node", "string", 1),
            ("Readiness Gates", "string", 1),
        ),
        _pod_row,
    ),
    "apps/v1/deployments": (
        (
            _NAME,
            ("Ready", "string", 0),
            ("Up-to-date", "integer", 0),
            ("Available", "integer", 0),
            _AGE,
            *_WORKLOAD_WIDE,
        ),
        _deployment_row,
    ),
    "apps/v1/daemonsets": (
        (
            _NAME,
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            ("Up-to-date", "integer", 0),
            ("Available", "integer", 0),
            ("Node Selector", "string", 0),
            _AGE,
            *_WORKLOAD_WIDE,
        ),
        _daemon_set_row,
    ),
    "apps/v1/replicasets": (
        (_NAME, ("Desired", "integer", 0), ("Current", "integer", 0), ("Ready", "integer", 0), _AGE, *_WORKLOAD_WIDE),
        _replica_set_row,
    ),
    "apps/v1/statefulsets": (
        (_NAME, ("Ready", "string", 0), _AGE, ("Containers", "string", 1), ("Images", "string", 1)),
        _stateful_set_row,
    ),
    "batch/v1/jobs": (
        (
            _NAME,
            ("Status", "string", 0),
            ("Completions", "string", 0),
            ("Duration", "string", 0),
            _AGE,
            *_WORKLOAD_WIDE,
        ),
        _job_row,
    ),
    "v1/services": (
        (
            _NAME,
            ("Type", "string", 0),
            ("Cluster-IP", "string", 0),
            ("External-IP", "string", 0),
            ("Port(s)", "string", 0),
            _AGE,
            ("Selector", "string", 1),
        ),
        _service_row,
    ),
    "v1/events": (
        (
            ("Last Seen", "string", 0),
            ("Type", "string", 0),
            ("Reason", "string", 0),
            ("Object", "string", 0),
            ("Message", "string", 0),
        ),
        _event_row,
    ),
    "v1/namespaces": (
        (_NAME, ("Status", "string", 0), _AGE),
        _age_row(lambda o: (o.get("status") or {}).get("phase", "Active")),
    ),
    "v1/configmaps": ((_NAME, ("Data", "integer", 0), _AGE), _age_row(_data_count)),
    "v1/secrets": (
        (_NAME, ("Type", "string", 0), ("Data", "integer", 0), _AGE),
        _age_row(lambda o: o.get("type", "Opaque"), _data_count),
    ),
    "apps/v1/controllerrevisions": (
        (_NAME, ("Controller", "string", 0), ("Revision", "integer", 0), _AGE),
        _age_row(_revision_controller, lambda o: int(o.get("revision", 0))),
    ),
    "autoscaling/v2/horizontalpodautoscalers": (
        (
            _NAME,
            ("Reference", "string", 0),
            ("Targets", "string", 0),
            ("MinPods", "string", 0),
            ("MaxPods", "integer", 0),
            ("Replicas", "integer", 0),
            _AGE,
        ),
        _hpa_row,
    ),
    "coordination.k8s.io/v1/leases": (
        (_NAME, ("Holder", "string", 0), _AGE),
        _age_row(lambda o: (o.get("spec") or {}).get("holderIdentity", "")),
    ),
}
_DEFAULT: Final = ((_NAME, _AGE), _age_row())


def _row_object(obj: dict[str, Any], include: IncludeObject) -> dict[str, Any] | None:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}


def table(
    resource: Resource,
    objects: Iterable[dict[str, Any]],
    *,
    now: float,
    api_version: str = "meta.k8s.io/v1",
    include: IncludeObject = "Metadata",
    list_metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``meta.k8s.io`` Table of ``objects`` (a list, one object, or one watch event's object)."""
    columns, printer = _PRINTERS.get(resource.key, _DEFAULT)
    definitions = [
        {
            "name": name,
            "type": kind,
            "format": "name" if name == "Name" and priority == 0 else "",
            "description": "",
            "priority": priority,
        }
        for name, kind, priority in columns
    ]
    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": printer(obj, now)}
        shown = _row_object(obj, include)
        if shown is not None:
            row["object"] = shown
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": api_version,
        "metadata": list_metadata or {},
        "columnDefinitions": definitions,
        "rows": rows,
    }
