"""core/v1 Events as the controllers and kubelets of a simulated cluster record them, with client-go's
aggregation: a repeat of the same event (same object, reason, message, type and source) bumps ``count`` and
``lastTimestamp`` of the Event already written instead of writing a new one. Named ``<object>.<hex time>`` as
client-go names them; in the involved object's namespace (``default`` for a node).

``Recorder.record`` is called by ``controlling`` with what the pure steps decided; ``kubectl get events`` and
``describe`` read what it writes.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from edgefleet.clock import format_utc
from simulator.cluster.matching import Obj
from simulator.cluster.nodes import parse_time
from simulator.cluster.resources import EVENTS
from simulator.cluster.store import Store, StoreError

EventType = Literal["Normal", "Warning"]
# The kubelet's source names the node as well; the controllers name only themselves.
_HOSTED: Final = frozenset({"kubelet"})
MAX_NAME: Final = 253
# kube-apiserver's --event-ttl: an Event not repeated for an hour is gone.
EVENT_TTL_S: Final = 3600.0


class Recorder:
    """Writes Events into one cluster's store."""

    def __init__(self, store: Store) -> None:
        self._store = store
        # (uid, reason, message, type, component) -> (namespace, event name): the aggregation key.
        self._written: dict[tuple[str, str, str, str, str], tuple[str, str]] = {}

    def expire(self, *, now: float, ttl_s: float = EVENT_TTL_S) -> int:
        """Delete the Events last seen more than ``ttl_s`` ago, as the API server's TTL does; returns how many."""
        gone: set[tuple[str, str]] = set()
        for event in self._store.list_objects(EVENTS).items:
            last = parse_time(str(event.get("lastTimestamp") or event["metadata"].get("creationTimestamp", "")))
            if last is not None and last + ttl_s < now:
                key = (event["metadata"].get("namespace", ""), event["metadata"]["name"])
                try:
                    self._store.delete(EVENTS, *key)
                except StoreError:
                    continue
                gone.add(key)
        if gone:
            self._written = {k: v for k, v in self._written.items() if v not in gone}
        return len(gone)

    def record(
        self,
        involved: Obj,
        kind: EventType,
        reason: str,
        message: str,
        *,
        component: str,
        now: float,
        host: str = "",
        field_path: str = "",
    ) -> None:
        metadata = involved["metadata"]
        namespace = metadata.get("namespace") or "default"
        uid = str(metadata.get("uid", ""))
        key = (uid, reason, message, kind, component)
        stamp = format_utc(now)
        known = self._written.get(key)
        if known is not None:
            try:
                event = self._store.get(EVENTS, *known)
            except StoreError:
                self._written.pop(key, None)
            else:
                bumped = {**event, "count": int(event.get("count", 1)) + 1, "lastTimestamp": stamp}
                self._store.update(EVENTS, bumped, known[0])
                return
        involved_ref: dict[str, Any] = {
            "kind": involved.get("kind"),
            "namespace": metadata.get("namespace", ""),
            "name": metadata["name"],
            "uid": uid,
            "apiVersion": involved.get("apiVersion"),
            "resourceVersion": metadata.get("resourceVersion", ""),
        }
        if not metadata.get("namespace"):
            del involved_ref["namespace"]
        if field_path:
            involved_ref["fieldPath"] = field_path
        source = {"component": component, **({"host": host} if component in _HOSTED and host else {})}
        suffix = f".{int(now * 1e9) + len(self._written):x}"
        # A name at the limit leaves no room for the suffix: cut it (the API would refuse a longer one).
        name = metadata["name"][: MAX_NAME - len(suffix)].rstrip(".-") + suffix
        created = self._store.create(
            EVENTS,
            {
                "metadata": {"name": name},
                "involvedObject": involved_ref,
                "reason": reason,
                "message": message,
                "source": source,
                "firstTimestamp": stamp,
                "lastTimestamp": stamp,
                "count": 1,
                "type": kind,
                "eventTime": None,
                "reportingComponent": component,
                "reportingInstance": host,
            },
            namespace,
        )
        self._written[key] = (namespace, created["metadata"]["name"])
