"""The workload controllers of one simulated cluster, as kube-controller-manager, kube-scheduler and the nodes'
kubelets run them: the shell around the pure steps. Each ``step`` reads the store, asks each pure step what to do
and writes it, recording Events:

1. garbage collection: objects whose controller owner is gone are deleted (background propagation: a deleted
   Deployment's ReplicaSets go, then their pods), and pods bound to a node that is gone (the pod GC);
2. Deployments (``deployments.plan_deployment``) -> ReplicaSets (``replicasets.plan_replica_set``) -> pods;
3. DaemonSets (``daemonsets.plan_daemon_set``) -> pods and ControllerRevisions; StatefulSets
   (``statefulsets.plan_stateful_set``) -> pods with stable names; Jobs (``jobs.plan_job``) -> pods that run to
   completion;
4. the scheduler binds pods without a node (``scheduling.plan_schedule``) or marks them Unschedulable;
5. each Ready, reachable node's kubelet moves its pods on (``pods.plan_kubelet``, with the ``PodFate`` seam) until
   they finish (a pod Succeeded or Failed is left alone);
   pods of a node that is not Ready are marked not Ready (``pods.mark_not_ready``);
6. taint-based eviction (``eviction.plan_eviction``);
7. every minute, Events past their hour (``events.Recorder.expire``).

Level-triggered: every step looks at everything, so running it twice is harmless. ``WorkloadControllers``
listens to the store and is ``due`` after a write that matters (not lease renewals, events, or a node's
heartbeat) or when a timer one of the steps asked for has come (an image pull done, a progress deadline, a
toleration expiring). A write that fails is tried again a second later; a step creates at most 500 pods (the
ReplicaSet controller's burst) and leaves the rest to the next. ``run_controllers`` steps it on the server's loop; ``playing`` runs one per cluster under
``edgefleet sim run``, ``server.start_cluster_in_background(controllers=True)`` one for tests.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Callable
from typing import Any, Final

from edgefleet.clock import Clock, format_utc
from simulator.cluster import daemonsets, deployments, eviction, jobs, replicasets, statefulsets
from simulator.cluster.events import EventType, Recorder
from simulator.cluster.matching import Obj, condition, controller_of, node_ready, template_hash
from simulator.cluster.pods import HealthyPods, KubeletProgress, PodFate, PodTiming, mark_not_ready, plan_kubelet
from simulator.cluster.resources import (
    CONTROLLER_REVISIONS,
    DAEMON_SETS,
    DEPLOYMENTS,
    EVENTS,
    JOBS,
    LEASES,
    NODES,
    PODS,
    REPLICA_SETS,
    STATEFUL_SETS,
    Resource,
)
from simulator.cluster.scheduling import node_view, plan_schedule
from simulator.cluster.store import Event, NotFound, Store, StoreError

log = logging.getLogger(__name__)

# How often the loop checks whether a step is due: writes are batched over this long, so a burst of API calls
# costs one step, and a change is acted on within it.
TICK_S: Final = 0.1
_OWNERS: Final[dict[str, Resource]] = {
    "Deployment": DEPLOYMENTS,
    "ReplicaSet": REPLICA_SETS,
    "DaemonSet": DAEMON_SETS,
    "StatefulSet": STATEFUL_SETS,
    "Job": JOBS,
}
_DEPENDENTS: Final = (REPLICA_SETS, PODS, CONTROLLER_REVISIONS)
_QUIET: Final = frozenset({LEASES.key, EVENTS.key})
BURST_PODS: Final = 500
# How soon a failed write or step is tried again.
RETRY_S: Final = 1.0
# How soon a kubelet cut off from the API server looks again: a real one resyncs its pods as soon as its link is
# back, and a cut shorter than the node grace period changes nothing else in the cluster that would wake us.
CUT_RECHECK_S: Final = 1.0
# How often Events past their TTL are swept (the API server lets etcd expire each on its own).
EXPIRE_EVERY_S: Final = 60.0


def _key(obj: Obj) -> tuple[str, str]:
    return obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


def _node_changed(event: Event) -> bool:
    """A node write that the controllers care about: not a heartbeat (the kubelet's status posts)."""
    if event.type != "MODIFIED" or event.previous is None:
        return True
    old, new = event.previous, event.object
    return (
        old.get("spec") != new.get("spec")
        or old["metadata"].get("labels") != new["metadata"].get("labels")
        or node_ready(old) != node_ready(new)
        or (old.get("status") or {}).get("allocatable") != (new.get("status") or {}).get("allocatable")
    )


class WorkloadControllers:
    """The controllers of one cluster's ``store``; ``is_cut(node name)``: its kubelet cannot reach the API;
    ``paused()``: the cluster's API server is down, so its controller-manager does nothing (``run_controllers``)."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        timing: PodTiming | None = None,
        fate: PodFate | None = None,
        is_cut: Callable[[str], bool] | None = None,
        paused: Callable[[], bool] | None = None,
    ) -> None:
        self.store = store
        self.paused = paused or (lambda: False)
        self.clock = clock
        self.timing = timing or PodTiming()
        self.fate: PodFate = fate or HealthyPods()
        self._is_cut = is_cut or (lambda _node: False)
        self.recorder = Recorder(store)
        self._kubelet: dict[str, KubeletProgress] = {}
        self._dirty = True
        self._wake_at: float | None = None
        # Each kind's objects as last listed, dropped on any write to the kind: a pass lists each kind once.
        self._lists: dict[str, list[Obj]] = {}
        # Pods this step may still create: the ReplicaSet controller's burstReplicas (500), so a step that
        # starts thousands of pods at once does not hold the server's loop for seconds; the rest follow next step.
        self._burst = BURST_PODS
        self._next_expiry = clock.now() + EXPIRE_EVERY_S
        store.add_listener(self._on_event)

    def _on_event(self, event: Event) -> None:
        self._lists.pop(event.resource, None)
        if event.resource in _QUIET:
            return
        if event.resource == NODES.key and not _node_changed(event):
            return
        self._dirty = True

    def retry(self) -> None:
        """Step again a little later (a step or a write failed): a failure that persists costs one step a
        second, not one a tick."""
        self._wake(self.clock.now() + RETRY_S)

    def due(self) -> bool:
        now = self.clock.now()
        return self._dirty or (self._wake_at is not None and self._wake_at <= now) or now >= self._next_expiry

    def _wake(self, at: float | None) -> None:
        if at is not None and (self._wake_at is None or at < self._wake_at):
            self._wake_at = at

    def step(self) -> None:
        """One pass of every controller."""
        self._dirty = False
        self._wake_at = None
        self._burst = BURST_PODS
        now = self.clock.now()
        self._collect_garbage()
        self._sync_deployments(now)
        self._sync_replica_sets(now)
        self._sync_daemon_sets(now)
        self._sync_stateful_sets(now)
        self._sync_jobs(now)
        self._schedule(now)
        self._run_kubelets(now)
        self._evict(now)
        if now >= self._next_expiry:
            self._next_expiry = now + EXPIRE_EVERY_S
            self.recorder.expire(now=now)

    def settle(self, *, max_steps: int = 50) -> int:
        """Step until nothing is due now (for tests on a fake clock); returns the steps taken."""
        for taken in range(max_steps):
            if not self._dirty:
                return taken
            self.step()
        return max_steps

    def _list(self, resource: Resource) -> list[Obj]:
        found = self._lists.get(resource.key)
        if found is None:
            found = self._lists[resource.key] = self.store.list_objects(resource).items
        return found

    def _may_create_pod(self) -> bool:
        if self._burst <= 0:
            self._dirty = True  # the rest at the next step
            return False
        self._burst -= 1
        return True

    # --- writing ----------------------------------------------------------------------------------------------

    def _try(
        self, write: Callable[..., Obj], resource: Resource, obj: Obj, namespace: str, **options: str
    ) -> Obj | None:
        """A write; one that fails (a conflict with the API, an object gone) is retried at the next step."""
        what = f"{resource.plural} {obj['metadata'].get('name') or obj['metadata'].get('generateName')}"
        try:
            return write(resource, obj, namespace, **options)
        except StoreError as exc:
            self.retry()
            log.debug("Deferred a controller write", extra={"what": what, "error": exc.message})
            return None

    def _write_status(self, resource: Resource, obj: Obj, status: Obj) -> None:
        if obj.get("status") == status:
            return
        updated = {**obj, "status": status, "metadata": {**obj["metadata"]}}
        updated["metadata"].pop("resourceVersion", None)
        namespace = obj["metadata"].get("namespace", "")
        self._try(self.store.update, resource, updated, namespace, subresource="status")

    def _record(self, involved: Obj, kind: EventType, reason: str, message: str, **where: Any) -> None:
        """An Event, best effort as client-go's recorder: one that cannot be written is dropped."""
        try:
            self.recorder.record(involved, kind, reason, message, **where)
        except StoreError as exc:
            log.debug("Dropped an event", extra={"reason": reason, "error": exc.message})

    def _delete(self, resource: Resource, namespace: str, name: str) -> Obj | None:
        try:
            return self.store.delete(resource, namespace, name)
        except NotFound:
            return None

    # --- 1. garbage collection --------------------------------------------------------------------------------

    def _collect_garbage(self) -> None:
        live: set[str] = set()
        for resource in _OWNERS.values():
            live |= {o["metadata"]["uid"] for o in self._list(resource)}
        for resource in _DEPENDENTS:
            for obj in self._list(resource):
                owner = controller_of(obj)
                if owner is not None and owner.get("kind") in _OWNERS and owner.get("uid") not in live:
                    self._delete(resource, *_key(obj))
        # The pod garbage collector: a pod bound to a node that no longer exists goes (its owner replaces it).
        nodes = {n["metadata"]["name"] for n in self._list(NODES)}
        for pod in self._list(PODS):
            bound = (pod.get("spec") or {}).get("nodeName")
            if bound and bound not in nodes:
                self._delete(PODS, *_key(pod))

    # --- 2. Deployments and ReplicaSets -----------------------------------------------------------------------

    def _controlled(self, resource: Resource) -> dict[str, list[Obj]]:
        """The objects of ``resource`` by the uid of their controller."""
        found: dict[str, list[Obj]] = {}
        for obj in self._list(resource):
            owner = controller_of(obj)
            if owner is not None:
                found.setdefault(str(owner.get("uid")), []).append(obj)
        return found

    def _sync_deployments(self, now: float) -> None:
        sets = self._controlled(REPLICA_SETS)
        for deployment in self._list(DEPLOYMENTS):
            if not ((deployment.get("spec") or {}).get("selector") or {}):
                continue  # the API server would have refused it
            namespace = deployment["metadata"].get("namespace", "")
            written: Obj | None = None
            plan = deployments.plan_deployment(deployment, sets.get(deployment["metadata"]["uid"], []), now=now)
            self._wake(plan.wake_at)
            if plan.create is not None and self._try(self.store.create, REPLICA_SETS, plan.create, namespace) is None:
                continue  # nothing to say until it exists: the next try is a second away
            for rs in plan.scale:
                write = {**rs, "metadata": {k: v for k, v in rs["metadata"].items() if k != "resourceVersion"}}
                self._try(self.store.update, REPLICA_SETS, write, namespace)
            for name in plan.delete:
                self._delete(REPLICA_SETS, namespace, name)
            for kind, reason, message in plan.events:
                self._record(deployment, kind, reason, message, component="deployment-controller", now=now)
            if plan.annotations is not None:
                annotated = copy.deepcopy(deployment)
                annotated["metadata"]["annotations"] = plan.annotations
                annotated["metadata"].pop("resourceVersion", None)
                written = self._try(self.store.update, DEPLOYMENTS, annotated, namespace)
            self._write_status(DEPLOYMENTS, written or deployment, plan.status)

    def _sync_replica_sets(self, now: float) -> None:
        pods = self._controlled(PODS)
        for rs in self._list(REPLICA_SETS):
            namespace = rs["metadata"].get("namespace", "")
            plan = replicasets.plan_replica_set(rs, pods.get(rs["metadata"]["uid"], []), now=now)
            self._wake(plan.wake_at)
            template = (rs.get("spec") or {}).get("template") or {}
            for _ in range(plan.create):
                if not self._may_create_pod():
                    break
                created = self._try(self.store.create, PODS, replicasets.pod_from_template(rs, template), namespace)
                if created is not None:
                    self._record(
                        rs,
                        "Normal",
                        "SuccessfulCreate",
                        f"Created pod: {created['metadata']['name']}",
                        component="replicaset-controller",
                        now=now,
                    )
            for name in plan.delete:
                if self._delete(PODS, namespace, name) is not None:
                    self._record(
                        rs,
                        "Normal",
                        "SuccessfulDelete",
                        f"Deleted pod: {name}",
                        component="replicaset-controller",
                        now=now,
                    )
            self._write_status(REPLICA_SETS, rs, plan.status)

    # --- 3. DaemonSets ----------------------------------------------------------------------------------------

    def _sync_daemon_sets(self, now: float) -> None:
        daemon_sets = self._list(DAEMON_SETS)
        if not daemon_sets:
            return
        nodes = self._list(NODES)
        pods = self._controlled(PODS)
        revisions = self._controlled(CONTROLLER_REVISIONS)
        for ds in daemon_sets:
            if not ((ds.get("spec") or {}).get("selector") or {}):
                continue
            namespace = ds["metadata"].get("namespace", "")
            uid = ds["metadata"]["uid"]
            plan = daemonsets.plan_daemon_set(ds, nodes, pods.get(uid, []), revisions.get(uid, []), now=now)
            self._wake(plan.wake_at)
            if plan.create_revision is not None:
                self._try(self.store.create, CONTROLLER_REVISIONS, plan.create_revision, namespace)
            if plan.renumber is not None:
                renumbered = {
                    **plan.renumber,
                    "metadata": {k: v for k, v in plan.renumber["metadata"].items() if k != "resourceVersion"},
                }
                self._try(self.store.update, CONTROLLER_REVISIONS, renumbered, namespace)
            for name in plan.delete_revisions:
                self._delete(CONTROLLER_REVISIONS, namespace, name)
            revision_hash = template_hash((ds.get("spec") or {}).get("template") or {}, label=daemonsets.HASH_LABEL)
            for node_name in plan.create_on:
                if not self._may_create_pod():
                    break
                pod = daemonsets.daemon_pod(ds, node_name, revision_hash)
                created = self._try(self.store.create, PODS, pod, namespace)
                if created is not None:
                    self._record(
                        ds,
                        "Normal",
                        "SuccessfulCreate",
                        f"Created pod: {created['metadata']['name']}",
                        component="daemonset-controller",
                        now=now,
                    )
            for name in plan.delete:
                if self._delete(PODS, namespace, name) is not None:
                    self._record(
                        ds,
                        "Normal",
                        "SuccessfulDelete",
                        f"Deleted pod: {name}",
                        component="daemonset-controller",
                        now=now,
                    )
            self._write_status(DAEMON_SETS, ds, plan.status)

    def _sync_stateful_sets(self, now: float) -> None:
        listed = self._list(STATEFUL_SETS)
        if not listed:
            return
        pods = self._controlled(PODS)
        for sts in listed:
            if not ((sts.get("spec") or {}).get("selector") or {}):
                continue
            namespace = sts["metadata"].get("namespace", "")
            plan = statefulsets.plan_stateful_set(sts, pods.get(sts["metadata"]["uid"], []), now=now)
            self._wake(plan.wake_at)
            for pod in plan.create:
                if not self._may_create_pod():
                    break
                if self._try(self.store.create, PODS, pod, namespace) is not None:
                    self._record(
                        sts,
                        "Normal",
                        "SuccessfulCreate",
                        f"create Pod {pod['metadata']['name']} in StatefulSet {sts['metadata']['name']} successful",
                        component=statefulsets.COMPONENT,
                        now=now,
                    )
            for name in plan.delete:
                if self._delete(PODS, namespace, name) is not None:
                    self._record(
                        sts,
                        "Normal",
                        "SuccessfulDelete",
                        f"delete Pod {name} in StatefulSet {sts['metadata']['name']} successful",
                        component=statefulsets.COMPONENT,
                        now=now,
                    )
            self._write_status(STATEFUL_SETS, sts, plan.status)

    def _sync_jobs(self, now: float) -> None:
        listed = self._list(JOBS)
        if not listed:
            return
        pods = self._controlled(PODS)
        for job in listed:
            if not ((job.get("spec") or {}).get("selector") or {}):
                continue  # the API server would have refused it
            namespace = job["metadata"].get("namespace", "")
            plan = jobs.plan_job(job, pods.get(job["metadata"]["uid"], []), now=now)
            self._wake(plan.wake_at)
            template = (job.get("spec") or {}).get("template") or {}
            for _ in range(plan.create):
                if not self._may_create_pod():
                    break
                created = self._try(self.store.create, PODS, replicasets.pod_from_template(job, template), namespace)
                if created is not None:
                    self._record(
                        job,
                        "Normal",
                        "SuccessfulCreate",
                        f"Created pod: {created['metadata']['name']}",
                        component=jobs.COMPONENT,
                        now=now,
                    )
            for name in plan.delete:
                if self._delete(PODS, namespace, name) is not None:
                    self._record(
                        job, "Normal", "SuccessfulDelete", f"Deleted pod: {name}", component=jobs.COMPONENT, now=now
                    )
            for kind, reason, message in plan.events:
                self._record(job, kind, reason, message, component=jobs.COMPONENT, now=now)
            self._write_status(JOBS, job, plan.status)

    # --- 4. the scheduler -------------------------------------------------------------------------------------

    def _schedule(self, now: float) -> None:
        all_pods = self._list(PODS)
        waiting = [
            p
            for p in all_pods
            if not (p.get("spec") or {}).get("nodeName")
            and (p.get("spec") or {}).get("schedulerName", "default-scheduler") == "default-scheduler"
            and (p.get("status") or {}).get("phase", "Pending") == "Pending"
            and not p["metadata"].get("deletionTimestamp")
        ]
        if not waiting:
            return
        bound: dict[str, list[Obj]] = {}
        for pod in all_pods:
            node_name = (pod.get("spec") or {}).get("nodeName")
            if node_name and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                bound.setdefault(str(node_name), []).append(pod)
        views = [node_view(node, bound.get(node["metadata"]["name"], [])) for node in self._list(NODES)]
        stamp = format_utc(now)
        for pod, placement in plan_schedule(waiting, views):
            namespace, name = _key(pod)
            if placement.node is None:
                old = condition(pod, "PodScheduled") or {}
                if old.get("status") == "False" and old.get("message") == placement.message:
                    continue
                status = copy.deepcopy(pod.get("status") or {})
                status["phase"] = "Pending"
                status["conditions"] = [
                    c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"
                ] + [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "lastProbeTime": None,
                        "lastTransitionTime": old.get("lastTransitionTime") if old.get("status") == "False" else stamp,
                        "reason": "Unschedulable",
                        "message": placement.message,
                    }
                ]
                self._write_status(PODS, pod, status)
                self._record(
                    pod, "Warning", "FailedScheduling", placement.message, component="default-scheduler", now=now
                )
                continue
            bound_pod = copy.deepcopy(pod)
            bound_pod["spec"]["nodeName"] = placement.node
            bound_pod["metadata"].pop("resourceVersion", None)
            written = self._try(self.store.update, PODS, bound_pod, namespace)
            if written is None:
                continue
            status = copy.deepcopy(written.get("status") or {})
            status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"] + [
                {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": stamp}
            ]
            self._write_status(PODS, written, status)
            self._record(
                written,
                "Normal",
                "Scheduled",
                f"Successfully assigned {namespace}/{name} to {placement.node}",
                component="default-scheduler",
                now=now,
            )

    # --- 5. the kubelets --------------------------------------------------------------------------------------

    def _run_kubelets(self, now: float) -> None:
        nodes = {n["metadata"]["name"]: n for n in self._list(NODES)}
        seen: set[str] = set()
        for pod in self._list(PODS):
            node_name = (pod.get("spec") or {}).get("nodeName")
            if not node_name:
                continue
            uid = str(pod["metadata"]["uid"])
            seen.add(uid)
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue  # finished: its kubelet has nothing more to do with it
            node = nodes.get(str(node_name))
            if node is None:
                continue
            if node_ready(node) != "True":
                # The kubelet is silent; the node lifecycle controller marks its pods not Ready.
                status = mark_not_ready(pod, now=now)
                if status is not None:
                    self._write_status(PODS, pod, status)
                continue
            if self._is_cut(str(node_name)):
                self._wake(now + CUT_RECHECK_S)
                continue
            progress = self._kubelet.get(uid)
            if progress is None and (pod.get("status") or {}).get("phase") == "Running":
                # A pod running before these controllers started (the simulator's memory is gone, not the pod's).
                progress = KubeletProgress("running", now, now)
            step = plan_kubelet(pod, node, progress, fate=self.fate.fate(pod, node), timing=self.timing, now=now)
            self._kubelet[uid] = step.progress
            self._wake(step.wake_at)
            if step.status is not None:
                self._write_status(PODS, pod, step.status)
            for event in step.events:
                self._record(
                    pod,
                    event.type,
                    event.reason,
                    event.message,
                    component="kubelet",
                    now=now,
                    host=str(node_name),
                    field_path=event.field_path,
                )
        for gone in set(self._kubelet) - seen:
            del self._kubelet[gone]

    # --- 6. eviction ------------------------------------------------------------------------------------------

    def _evict(self, now: float) -> None:
        tainted = {
            n["metadata"]["name"]: n
            for n in self._list(NODES)
            if any(t.get("effect") == "NoExecute" for t in (n.get("spec") or {}).get("taints") or [])
        }
        if not tainted:
            return
        for pod in self._list(PODS):
            node = tainted.get(str((pod.get("spec") or {}).get("nodeName") or ""))
            if node is None:
                continue
            decision = eviction.plan_eviction(pod, node, now=now)
            self._wake(decision.at)
            if decision.now and self._delete(PODS, *_key(pod)) is not None:
                self._record(
                    pod,
                    "Normal",
                    "TaintManagerEviction",
                    eviction.eviction_message(pod),
                    component=eviction.COMPONENT,
                    now=now,
                )


async def run_controllers(
    controllers: list[WorkloadControllers], *, clock: Clock | None = None, tick_s: float = TICK_S
) -> None:
    """Step each cluster's controllers when due, forever (cancel to stop); a step that fails is logged and
    retried at the next tick. After a long step the loop rests as long as it took, so busy controllers take at
    most about half the CPU and the API servers on the same loop keep answering."""
    while True:
        started = clock.monotonic() if clock is not None else asyncio.get_running_loop().time()
        for controllers_of_cluster in controllers:
            if controllers_of_cluster.paused() or not controllers_of_cluster.due():
                continue
            try:
                controllers_of_cluster.step()
            except Exception:
                controllers_of_cluster.retry()
                log.exception("Failed a step of the workload controllers")
        took = (clock.monotonic() if clock is not None else asyncio.get_running_loop().time()) - started
        await asyncio.sleep(max(tick_s, took))
