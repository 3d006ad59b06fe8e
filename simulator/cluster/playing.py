"""The inventory's clusters while the simulator plays them: one API server per cluster (``serve_cluster``, in the
simulator's own asyncio loop, on a free port of 127.0.0.1), seeded with the cluster's nodes; a kubelet per node
that renews its Lease and posts its status on a timer unless its site is cut off; the node lifecycle
controller (``lifecycle.monitor_nodes``) judging every node each monitor period; and the workload controllers
(``controlling``: Deployments, ReplicaSets, DaemonSets, the scheduler, the kubelets' pods, eviction, garbage
collection), stepped when a write or a timer of theirs makes them due. A cut site's kubelets leave its pods as
they were.

``simulator.running`` builds ``SimulatedClusters`` with the played fleet and ``Troubles``, its faults as the
clusters feel them (a kubelet that cannot post, an API server failing requests or down), awaits ``start`` before
the boxes connect and ``close`` when it stops.

An ``api-down`` fault stops a cluster's API server (connections are refused, as from a crashed kube-apiserver)
and serves it again on the same port when the fault ends. While it is down no kubelet can post and the node
lifecycle controller cannot read, so neither acts; after it returns the controller waits one grace period before
judging the cluster's nodes again, as kube-controller-manager judges a node by when it last *observed* a change,
so an outage of the API server alone never makes nodes NotReady.

Intervals are the real ones scaled to the node-monitor grace period (50 s by default, as Kubernetes 1.32): the
kubelet renews its lease every grace / 5 (10 s: a quarter of the 40 s lease), checks its status as often
(edgecore's nodeStatusUpdateFrequency, 10 s) and posts it on a change or every 5 minutes (the kubelet's
nodeStatusReportFrequency); the controller looks every grace / 10 (5 s). A test's 2 s grace keeps those ratios.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from edgefleet.clock import Clock
from edgefleet.ids import ClusterId
from edgefleet.inventory import Cluster, Inventory
from simulator.cluster import admission
from simulator.cluster.central import deploy_central_workloads
from simulator.cluster.controlling import WorkloadControllers, run_controllers
from simulator.cluster.lifecycle import NODE_MONITOR_GRACE_S, monitor_nodes
from simulator.cluster.nodes import ClusterBox, cluster_boxes, post_node_status, renew_lease, seed_cluster
from simulator.cluster.podindex import PodsByNode
from simulator.cluster.pods import Fate, PodFate, PodTiming
from simulator.cluster.releases import deploy_fleet_apps
from simulator.cluster.resources import NODES
from simulator.cluster.server import ClusterApi, serve_cluster
from simulator.cluster.store import Store, StoreError
from simulator.cluster.troubles import ApiTrouble
from simulator.scheduling import HeartbeatSchedule

log = logging.getLogger(__name__)

# The kubelet's nodeStatusReportFrequency: an unchanged status is posted this often.
STATUS_REPORT_S: Final = 300.0
# Renewals and monitor passes per grace period (Kubernetes: 50 s grace, 10 s renewals, 5 s monitor period).
RENEWALS_PER_GRACE: Final = 5
MONITORS_PER_GRACE: Final = 10
# A cluster that is not serving within this long will not (a port taken between bind and serve, say).
START_TIMEOUT_S: Final = 30.0
# How often a stopped API server looks whether its api-down fault ended.
DOWN_POLL_S: Final = 0.2


class Troubles(Protocol):
    """The simulator's faults as its clusters feel them; every answer is about now."""

    def kubelet_silent(self, box: ClusterBox) -> bool:
        """The node's kubelet cannot post to its API server (its site is cut, its edgecore is down)."""
        ...

    def api_trouble(self, cluster: ClusterId) -> ApiTrouble | None: ...

    def api_down(self, cluster: ClusterId) -> bool: ...

    def pod_fate(self, box: ClusterBox, images: list[str]) -> Fate:
        """What happens to a pod with these images on this box: a slow or failing pull, a crash loop."""
        ...


class NoTroubles:
    """Clusters without faults: tests and tools that play clusters alone."""

    def kubelet_silent(self, box: ClusterBox) -> bool:
        return False

    def api_trouble(self, cluster: ClusterId) -> ApiTrouble | None:
        return None

    def api_down(self, cluster: ClusterId) -> bool:
        return False

    def pod_fate(self, box: ClusterBox, images: list[str]) -> Fate:
        return Fate()


@dataclass(slots=True)
class PlayedCluster:
    """One cluster of the inventory while it is served."""

    cluster: Cluster
    boxes: list[ClusterBox]
    api: ClusterApi
    workloads: WorkloadControllers
    url: str = ""
    serving: asyncio.Task[None] | None = field(default=None, repr=False)
    # When its API server last came back from an api-down fault (loop time); None: never down.
    back_at: float | None = None
    down: bool = False

    @property
    def store(self) -> Store:
        return self.api.store


class TroubledPods:
    """The pods' fate (``pods.PodFate``) from the simulator's faults: crash-loop and pull faults by node."""

    def __init__(self, troubles: Troubles, boxes: list[ClusterBox]) -> None:
        self._troubles = troubles
        self._by_node = {box.name: box for box in boxes}

    def fate(self, pod: dict[str, Any], node: dict[str, Any]) -> Fate:
        box = self._by_node.get(str((node.get("metadata") or {}).get("name")))
        if box is None:
            return Fate()
        containers = (pod.get("spec") or {}).get("containers") or []
        return self._troubles.pod_fate(box, [str(c.get("image") or "") for c in containers])


class SimulatedClusters:
    """Every cluster of ``fleet`` with at least one played box; lives on the simulator's loop."""

    def __init__(
        self,
        fleet: Inventory,
        *,
        clock: Clock,
        troubles: Troubles | None = None,
        grace_s: float = NODE_MONITOR_GRACE_S,
        pod_timing: PodTiming | None = None,
        pod_fate: PodFate | None = None,
        seed: int | None = None,
    ) -> None:
        """``seed``: deploy the fleet's apps at the releases it gives each site (``releases.fleet_workloads``)
        and the central clusters' own workloads (``central.central_workloads``); None: clusters with nodes only."""
        self.clock = clock
        self.grace_s = grace_s
        self._troubles: Troubles = troubles or NoTroubles()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.clusters: dict[ClusterId, PlayedCluster] = {}
        # Each cluster's pods by node: what each box's MetaServer serves its agent.
        self.pods: dict[ClusterId, PodsByNode] = {}
        for cluster_id, cluster in sorted(fleet.clusters.items()):
            boxes = cluster_boxes(fleet, cluster_id)
            if not boxes:
                continue
            store = Store(clock, cluster=cluster_id, admit=admission.admit)
            seed_cluster(store, boxes, now=clock.now())
            if seed is not None:
                deploy_fleet_apps(store, fleet, cluster_id, seed=seed)
                deploy_central_workloads(store, fleet, cluster_id, seed=seed)
            self.pods[cluster_id] = PodsByNode(store)
            api = ClusterApi(cluster_id, store, clock, trouble=self._trouble_reader(cluster_id))
            workloads = WorkloadControllers(
                store,
                clock,
                timing=pod_timing,
                fate=pod_fate or TroubledPods(self._troubles, boxes),
                is_cut=self._kubelet_silent_reader(cluster_id, boxes),
                paused=self._down_reader(cluster_id),
            )
            self.clusters[cluster_id] = PlayedCluster(cluster, boxes, api, workloads)

    def _trouble_reader(self, cluster: ClusterId) -> Callable[[], ApiTrouble | None]:
        return lambda: self._troubles.api_trouble(cluster)

    def _down_reader(self, cluster: ClusterId) -> Callable[[], bool]:
        """The cluster's API server is down: its controller-manager can neither read nor write (built before
        ``self.clusters`` holds it, hence the late lookup)."""
        return lambda: self.clusters[cluster].down

    def _kubelet_silent_reader(self, cluster: ClusterId, boxes: list[ClusterBox]) -> Callable[[str], bool]:
        """By node name: the node's kubelet cannot reach its API server (site cut, edgecore down, server down)."""
        by_node = {box.name: box for box in boxes}

        def silent(node: str) -> bool:
            box = by_node.get(node)
            return self.clusters[cluster].down or (box is not None and self._troubles.kubelet_silent(box))

        return silent

    def node_pods(self, cluster: ClusterId, node: str) -> list[dict[str, Any]]:
        """The pods bound to ``node`` of ``cluster`` (none for a cluster not played)."""
        pods = self.pods.get(cluster)
        return pods.on(node) if pods is not None else []

    @property
    def renew_every_s(self) -> float:
        return self.grace_s / RENEWALS_PER_GRACE

    @property
    def monitor_every_s(self) -> float:
        return self.grace_s / MONITORS_PER_GRACE

    def servers(self) -> dict[str, str]:
        """Kubeconfig context (the Cluster manifest's ``context``) -> URL, of every served cluster."""
        return {played.cluster.context: played.url for played in self.clusters.values()}

    async def start(self) -> None:
        """Serve every cluster and start the kubelets and the lifecycle controller; returns once all serve."""
        for played in self.clusters.values():
            ready = asyncio.Event()

            def on_ready(url: str, played: PlayedCluster = played, ready: asyncio.Event = ready) -> None:
                played.url = url
                ready.set()

            played.serving = asyncio.create_task(self._serve(played, on_ready), name=f"cluster-{played.cluster.id}")
            waiting = asyncio.create_task(ready.wait())
            done, _ = await asyncio.wait(
                [waiting, played.serving], timeout=START_TIMEOUT_S, return_when="FIRST_COMPLETED"
            )
            waiting.cancel()
            if played.serving in done:
                played.serving.result()  # raises what stopped it
            if not played.url:
                raise TimeoutError(
                    f"simulated cluster {played.cluster.id!r} was not serving within {START_TIMEOUT_S} s"
                )
        self._tasks = [
            asyncio.create_task(self._run_kubelets(), name="kubelets"),
            asyncio.create_task(self._monitor(), name="node-lifecycle"),
            asyncio.create_task(
                run_controllers([p.workloads for p in self.clusters.values()]), name="workload-controllers"
            ),
        ]

    async def close(self) -> None:
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        serving = [p.serving for p in self.clusters.values() if p.serving is not None]
        await asyncio.gather(*self._tasks, *serving, return_exceptions=True)

    async def _serve(self, played: PlayedCluster, ready: Callable[[str], None]) -> None:
        """Serve the cluster until the simulator stops, stopping its API server while an api-down fault lasts."""
        loop = asyncio.get_running_loop()
        cluster = played.cluster.id
        port = 0
        while not self._stop.is_set():
            if self._troubles.api_down(cluster):
                if not played.down:
                    played.down = True
                    log.info("Stopped simulated cluster's API server (api-down fault)", extra={"cluster": cluster})
                await self._pause(DOWN_POLL_S)
                continue
            if played.down:
                played.down, played.back_at = False, loop.time()
            interrupt = asyncio.Event()
            watching = asyncio.create_task(self._until_down(cluster, interrupt))
            try:
                await serve_cluster(played.api, stop=interrupt, port=port, ready=ready if not port else None)
            except OSError as exc:  # the port was taken while it was down: try again, as a restarted server would
                log.warning(
                    "Cannot serve simulated cluster again on its port", extra={"cluster": cluster, "error": str(exc)}
                )
                await self._pause(DOWN_POLL_S)
            finally:
                watching.cancel()
            port = int(played.url.rsplit(":", 1)[1]) if played.url else 0

    async def _until_down(self, cluster: ClusterId, interrupt: asyncio.Event) -> None:
        while not self._stop.is_set() and not self._troubles.api_down(cluster):
            await self._pause(DOWN_POLL_S)
        interrupt.set()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)

    def judged(self, played: PlayedCluster, now: float) -> bool:
        """Whether the node lifecycle controller judges this cluster's nodes now: not while its API server is down,
        nor for one grace period after it returns (kubelets need that long to be heard again)."""
        return not played.down and (played.back_at is None or now - played.back_at >= self.grace_s)

    # --- the kubelets ----------------------------------------------------------------------------------------

    async def _run_kubelets(self) -> None:
        loop = asyncio.get_running_loop()
        kubelets = [(played, box) for played in self.clusters.values() for box in played.boxes]
        # One timer for every node, phases spread over the interval, as the simulated agents' heartbeats.
        schedule = HeartbeatSchedule([self.renew_every_s] * len(kubelets), start=loop.time())
        while True:
            for index in schedule.pop_due(loop.time()):
                played, box = kubelets[index]
                if played.down or self._troubles.kubelet_silent(box):
                    continue  # the kubelet cannot reach the API server
                with contextlib.suppress(StoreError):  # someone deleted the node: a real kubelet would retry
                    self.tick_kubelet(played, box)
            due = schedule.next_due()
            await asyncio.sleep(max(0.0, (due if due is not None else loop.time() + 1.0) - loop.time()))

    def tick_kubelet(self, played: PlayedCluster, box: ClusterBox) -> None:
        """One round of a node's kubelet: renew its lease, post its status if it changed or is due."""
        now = self.clock.now()
        renew_lease(played.store, box.name, now=now)
        post_node_status(played.store, box, now=now, report_every_s=STATUS_REPORT_S)

    # --- the node lifecycle controller ----------------------------------------------------------------------

    async def _monitor(self) -> None:
        while True:
            await asyncio.sleep(self.monitor_every_s)
            loop_now = asyncio.get_running_loop().time()
            for played in self.clusters.values():
                if not self.judged(played, loop_now):
                    continue
                try:
                    changed = monitor_nodes(played.store, now=self.clock.now(), grace_s=self.grace_s)
                except Exception:
                    log.exception(
                        "Failed to judge the nodes of simulated cluster", extra={"cluster": played.cluster.id}
                    )
                    continue
                if changed:
                    log.info(
                        "Changed node conditions or taints in simulated cluster",
                        extra={"cluster": played.cluster.id, "nodes": len(changed)},
                    )

    # --- status ----------------------------------------------------------------------------------------------

    def status(self) -> list[dict[str, Any]]:
        rows = []
        for played in self.clusters.values():
            nodes = played.store.list_objects(NODES).items
            ready = sum(
                1
                for node in nodes
                for c in (node.get("status") or {}).get("conditions") or []
                if c.get("type") == "Ready" and c.get("status") == "True"
            )
            rows.append(
                {
                    "cluster": played.cluster.id,
                    "role": played.cluster.role,
                    "context": played.cluster.context,
                    "url": played.url,
                    "nodes": len(nodes),
                    "ready": ready,
                }
            )
        return rows
