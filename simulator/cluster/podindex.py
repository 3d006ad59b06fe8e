"""The pods bound to each node of a simulated cluster, kept current from the store's events: what a node's
kubelet (edgecore's MetaServer, on a KubeEdge box) knows of its own pods, without scanning every pod of the
cluster at each heartbeat of each box."""

from __future__ import annotations

from typing import Any

from simulator.cluster.resources import PODS
from simulator.cluster.store import Event, Store

Key = tuple[str, str]


class PodsByNode:
    """Node name -> its pods (``spec.nodeName``), in creation order; follows every write to the store."""

    def __init__(self, store: Store) -> None:
        self._by_node: dict[str, dict[Key, dict[str, Any]]] = {}
        self._node_of: dict[Key, str] = {}
        for pod in store.list_objects(PODS).items:
            self._place(_key(pod), pod)
        store.add_listener(self._on_event)

    def on(self, node: str) -> list[dict[str, Any]]:
        return list(self._by_node.get(node, {}).values())

    def _on_event(self, event: Event) -> None:
        if event.resource != PODS.key:
            return
        key = _key(event.object)
        self._remove(key)
        if event.type != "DELETED":
            self._place(key, event.object)

    def _place(self, key: Key, pod: dict[str, Any]) -> None:
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            self._by_node.setdefault(node, {})[key] = pod
            self._node_of[key] = node

    def _remove(self, key: Key) -> None:
        node = self._node_of.pop(key, None)
        if node is not None:
            pods = self._by_node[node]
            pods.pop(key, None)
            if not pods:
                del self._by_node[node]


def _key(pod: dict[str, Any]) -> Key:
    metadata = pod.get("metadata") or {}
    return str(metadata.get("namespace") or ""), str(metadata.get("name") or "")
