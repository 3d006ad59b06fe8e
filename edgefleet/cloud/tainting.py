"""Exclusive windows made real: the nodes of a central cluster's exclusive host groups carry the taint
``edgefleet.io/exclusive=<group>:NoSchedule`` while their group is kept (its window is open in the cluster's local
time, or it has none), and lose it when the window closes. The rendering's tolerations (``rollouts.policy``) let
the group's own workloads on; everyone else's new pods stay off (running ones stay: the audit reports them).

Level-triggered: every pass compares each node of every central cluster with what the policy wants at that
moment and changes only what differs, so a controller that was down at a window's edge puts it right on its first
pass, and running a pass twice changes nothing. Ownership: the taint key ``edgefleet.io/exclusive`` with effect
``NoSchedule`` is edgefleet's on the nodes of central clusters (it sets and removes it, also on a node that left
its host group or a group the policy no longer keeps); every other taint - another key, or that key with another
effect - is someone else's and is never changed. Kubernetes allows one taint per key and effect, so a node in two
exclusive groups kept at once carries the first group the policy lists (the inventory refuses overlapping windows
of one group, not of two groups that share nodes).

``plan_node_taints(policy, nodes, local=...)`` is pure (``local``: the cluster's wall time); ``ExclusiveWindows``
is the shell the controller runs as an APScheduler job every ``INTERVAL_S`` and once at start: it lists each
central cluster's nodes through the gateway, writes each change with ``set_node_taints`` (a node changed since it
was read is left to the next pass) and records it in the audit (the rollout audit, with no rollout, as batch
restarts do). Called by ``edgefleet.cloud.controller``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from apscheduler.schedulers.background import BackgroundScheduler

from edgefleet.clock import Clock
from edgefleet.cloud.auditing import local_time
from edgefleet.cloud.k8s.errors import ClusterError
from edgefleet.cloud.k8s.gateway import ClusterGateway
from edgefleet.cloud.rollouts.store import AuditEntry
from edgefleet.cloud.scheduling import start_interval_job
from edgefleet.inventory import Cluster
from edgefleet.policies import EXCLUSIVE_EFFECT, EXCLUSIVE_TAINT, ClusterPolicy

log = logging.getLogger(__name__)

# Windows are whole minutes: a pass a minute puts a taint on or off within a minute of its edge.
INTERVAL_S: Final = 60.0
JOB_ID: Final = "exclusive-windows"
# Who the audit names for these changes.
TAINTER: Final = "exclusive-windows"

Taint = dict[str, Any]


@dataclass(frozen=True, slots=True)
class NodeTaints:
    """One node whose taints must change: its whole new list (``taints``), the version it was read at, and what
    changes in words (``added`` / ``removed``: the exclusive group's taint put on or taken off)."""

    node: str
    resource_version: str
    before: tuple[str, ...]
    taints: list[Taint]
    added: str | None
    removed: str | None


def exclusive_taint(host_group: str) -> Taint:
    return {"key": EXCLUSIVE_TAINT, "value": host_group, "effect": EXCLUSIVE_EFFECT}


def shown(taint: Mapping[str, Any]) -> str:
    """A taint as ``kubectl taint`` writes it: ``key=value:Effect``."""
    value = taint.get("value")
    return f"{taint.get('key')}{'=' + str(value) if value else ''}:{taint.get('effect')}"


def _ours(taint: Mapping[str, Any]) -> bool:
    return taint.get("key") == EXCLUSIVE_TAINT and taint.get("effect") == EXCLUSIVE_EFFECT


def kept_for(policy: ClusterPolicy, labels: Mapping[str, str], local: dt.datetime) -> str | None:
    """The exclusive host group a node with ``labels`` is kept for at wall time ``local``: the first entry of the
    policy whose group the node belongs to and whose window is open; None when none is."""
    for entry in policy.exclusive:
        group = policy.host_groups.get(entry.host_group)
        if group and entry.open_at(local) and all(labels.get(k) == v for k, v in group.items()):
            return entry.host_group
    return None


def plan_node_taints(
    policy: ClusterPolicy, nodes: Iterable[Mapping[str, Any]], *, local: dt.datetime
) -> list[NodeTaints]:
    """The nodes whose taints differ from what ``policy`` wants at ``local``, by name, each with its new list:
    every taint not edgefleet's kept in place, edgefleet's added, replaced or removed."""
    out: list[NodeTaints] = []
    for node in nodes:
        metadata = node.get("metadata") or {}
        taints: list[Taint] = list((node.get("spec") or {}).get("taints") or [])
        labels = metadata.get("labels") or {}
        wanted = kept_for(policy, labels, local)
        current = [t for t in taints if _ours(t)]
        if [str(t.get("value") or "") for t in current] == ([wanted] if wanted is not None else []):
            continue
        kept = [t for t in taints if not _ours(t)]
        out.append(
            NodeTaints(
                str(metadata.get("name") or ""),
                str(metadata.get("resourceVersion") or ""),
                tuple(shown(t) for t in taints),
                kept + ([exclusive_taint(wanted)] if wanted is not None else []),
                wanted,
                ", ".join(str(t.get("value") or "") for t in current) or None,
            )
        )
    return sorted(out, key=lambda n: n.node)


def _what(cluster: Cluster, change: NodeTaints, local: dt.datetime) -> str:
    when = f"at {local:%Y-%m-%d %H:%M} {local.tzname()}"
    if change.added is not None and change.removed is not None:
        return (
            f"taint node {change.node} of cluster {cluster.id} for exclusive host group {change.added} "
            f"(was {change.removed}) {when}"
        )
    if change.added is not None:
        return f"taint node {change.node} of cluster {cluster.id}: exclusive host group {change.added} kept {when}"
    return f"untaint node {change.node} of cluster {cluster.id}: exclusive host group {change.removed} free {when}"


class ExclusiveWindows:
    """The exclusive windows' keeper: ``reconcile()`` is one pass over every central cluster; ``start()`` runs it
    at once and every ``interval_s``."""

    def __init__(
        self,
        gateway: ClusterGateway,
        clusters: Callable[[], Iterable[Cluster]],
        *,
        clock: Clock,
        audit: Callable[[AuditEntry], None] | None,
        interval_s: float = INTERVAL_S,
    ) -> None:
        self._gateway = gateway
        self._clusters = clusters
        self._clock = clock
        self._audit = audit
        self.interval_s = interval_s
        self._scheduler: BackgroundScheduler | None = None

    def start(self) -> None:
        if self._scheduler is None:
            self._scheduler = start_interval_job(self.reconcile, seconds=self.interval_s, job_id=JOB_ID, run_now=True)

    def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None

    def reconcile(self) -> list[NodeTaints]:
        """One pass: the changes written. A cluster that cannot be read, or a node that cannot be written, is
        logged and left to the next pass; the others go on."""
        done: list[NodeTaints] = []
        for cluster in self._clusters():
            if cluster.role != "central":
                continue  # a policy, and so exclusive hosts, are a central cluster's only
            try:
                done += self._reconcile_cluster(cluster)
            except Exception:  # the scheduler's thread must survive whatever one cluster does
                log.exception("Could not keep the exclusive windows of a cluster", extra={"cluster": cluster.id})
        return done

    def _reconcile_cluster(self, cluster: Cluster) -> list[NodeTaints]:
        try:
            nodes = self._gateway.nodes(cluster.id).items
        except ClusterError as exc:
            log.warning("Could not read the nodes of a cluster", extra={"cluster": cluster.id, "error": str(exc)})
            return []
        now = self._clock.now()
        local = local_time(cluster, now)
        done: list[NodeTaints] = []
        for change in plan_node_taints(cluster.policy, nodes, local=local):
            try:
                self._gateway.set_node_taints(
                    cluster.id, change.node, change.taints, resource_version=change.resource_version
                )
            except ClusterError as exc:
                # A 409 (the node changed since it was read) included: the next pass reads it again.
                log.warning(
                    "Could not set the taints of a node",
                    extra={"cluster": cluster.id, "node": change.node, "error": str(exc)},
                )
                continue
            done.append(change)
            what = _what(cluster, change, local)
            log.info("Set exclusive taint of a node", extra={"cluster": cluster.id, "node": change.node, "what": what})
            self._record(
                AuditEntry(
                    now, TAINTER, what, ", ".join(change.before) or None, _taints(change.taints) or None,
                    action="taint-node", target_kind="node", target_id=f"{cluster.id}/{change.node}",
                )
            )  # fmt: skip
        return done

    def _record(self, entry: AuditEntry) -> None:
        if self._audit is None:
            return
        try:
            self._audit(entry)
        except Exception:  # the database may be down; the taint is set, the log above keeps the change
            log.exception("Could not write a taint change to the audit", extra={"what": entry.what})


def _taints(taints: list[Taint]) -> str:
    return ", ".join(shown(t) for t in taints)
