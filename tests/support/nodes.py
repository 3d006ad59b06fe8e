"""Node objects as a Kubernetes API server serves them (plain JSON), for tests of the node watch's pure parts and
of what the API and CLI show: a KubeEdge node with its Ready condition and taints."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from edgefleet.clock import FakeClock
from edgefleet.cloud.fleet import FleetState
from edgefleet.cloud.nodes import ClusterNodes, took_list
from edgefleet.ids import ClusterId

READY_REASONS = {"True": "KubeletReady", "False": "KubeletNotReady", "Unknown": "NodeStatusUnknown"}


def rfc3339(at: float) -> str:
    return datetime.fromtimestamp(at, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_object(
    name: str,
    ready: str | None = "True",
    *,
    since: float = FakeClock().now(),
    reason: str | None = None,
    taints: tuple[tuple[str, str], ...] = (),
    unschedulable: bool = False,
) -> dict[str, Any]:
    """A node named ``name`` whose Ready condition is ``ready`` (None: no Ready condition) since ``since``."""
    conditions = []
    if ready is not None:
        conditions.append(
            {
                "type": "Ready",
                "status": ready,
                "reason": reason or READY_REASONS.get(ready, "Odd"),
                "message": f"node {name} is {ready}",
                "lastTransitionTime": rfc3339(since),
            }
        )
    spec: dict[str, Any] = {"taints": [{"key": k, "effect": e} for k, e in taints]} if taints else {}
    if unschedulable:
        spec["unschedulable"] = True
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "resourceVersion": "1"},
        "spec": spec,
        "status": {"conditions": conditions},
    }


def publish_nodes(state: FleetState, cluster: str, nodes: list[dict[str, Any]], *, now: float) -> None:
    """What the node watch does after listing ``cluster``: its nodes are ``nodes`` as of ``now``."""
    key = ClusterId(cluster)
    with state.lock:
        known = state.nodes.get(key) or ClusterNodes(key)
        state.nodes = {**state.nodes, key: took_list(known, nodes, now=now)}
