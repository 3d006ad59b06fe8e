"""The inventory's clusters while the simulator plays them: one API server per cluster (``serve_cluster``, in the
simulator's own asyncio loop, on a free port of 127.0.0.1), seeded with the cluster's nodes; a kubelet per node
that renews its Lease and posts its status on a timer unless its site is cut off; the node lifecycle
controller (``lifecycle.monitor_nodes``) judging every node each monitor period; and the workload controllers
(``controlling``: Deployments, ReplicaSets, DaemonSets, the scheduler, the kubelets' pods, eviction, garbage
collection), stepped when a write or a timer of theirs makes them due. A cut site's kubelets leave its pods as
they were.

``simulator.running`` builds ``SimulatedClusters`` with the played fleet and a ``is_cut(site)`` reader of its
faults, awaits ``start`` before the boxes connect and ``close`` when it stops.

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
from typing import Any, Final

from edgefleet.clock import Clock
from edgefleet.ids import ClusterId, SiteId
from edgefleet.inventory import Cluster, Inventory
from simulator.cluster import admission
from simulator.cluster.controlling import WorkloadControllers, run_controllers
from simulator.cluster.lifecycle import NODE_MONITOR_GRACE_S, monitor_nodes
from simulator.cluster.nodes import ClusterBox, cluster_boxes, post_node_status, renew_lease, seed_cluster
from simulator.cluster.pods import PodFate, PodTiming
from simulator.cluster.resources import NODES
from simulator.cluster.server import ClusterApi, serve_cluster
from simulator.cluster.store import Store, StoreError
from simulator.scheduling import HeartbeatSchedule

log = logging.getLogger(__name__)

# The kubelet's nodeStatusReportFrequency: an unchanged status is posted this often.
STATUS_REPORT_S: Final = 300.0
# Renewals and monitor passes per grace period (Kubernetes: 50 s grace, 10 s renewals, 5 s monitor period).
RENEWALS_PER_GRACE: Final = 5
MONITORS_PER_GRACE: Final = 10
# A cluster that is not serving within this long will not (a port taken between bind and serve, say).
START_TIMEOUT_S: Final = 30.0


@dataclass(slots=True)
class PlayedCluster:
    """One cluster of the inventory while it is served."""

    cluster: Cluster
    boxes: list[ClusterBox]
    api: ClusterApi
    workloads: WorkloadControllers
    url: str = ""
    serving: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def store(self) -> Store:
        return self.api.store


def _node_cut_reader(boxes: list[ClusterBox], is_cut: Callable[[SiteId], bool]) -> Callable[[str], bool]:
    """``is_cut`` by node name: a node's kubelet is cut off when its site is."""
    site_of = {box.name: SiteId(box.site) for box in boxes}

    def node_cut(node: str) -> bool:
        site = site_of.get(node)
        return site is not None and is_cut(site)

    return node_cut


class SimulatedClusters:
    """Every cluster of ``fleet`` with at least one played box; lives on the simulator's loop."""

    def __init__(
        self,
        fleet: Inventory,
        *,
        clock: Clock,
        is_cut: Callable[[SiteId], bool],
        grace_s: float = NODE_MONITOR_GRACE_S,
        pod_timing: PodTiming | None = None,
        pod_fate: PodFate | None = None,
    ) -> None:
        self.clock = clock
        self.grace_s = grace_s
        self._is_cut = is_cut
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.clusters: dict[ClusterId, PlayedCluster] = {}
        for cluster_id, cluster in sorted(fleet.clusters.items()):
            boxes = cluster_boxes(fleet, cluster_id)
            if not boxes:
                continue
            store = Store(clock, cluster=cluster_id, admit=admission.admit)
            seed_cluster(store, boxes, now=clock.now())
            workloads = WorkloadControllers(
                store, clock, timing=pod_timing, fate=pod_fate, is_cut=_node_cut_reader(boxes, is_cut)
            )
            self.clusters[cluster_id] = PlayedCluster(cluster, boxes, ClusterApi(cluster_id, store, clock), workloads)

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

            played.serving = asyncio.create_task(
                serve_cluster(played.api, stop=self._stop, ready=on_ready), name=f"cluster-{played.cluster.id}"
            )
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

    # --- the kubelets ----------------------------------------------------------------------------------------

    async def _run_kubelets(self) -> None:
        loop = asyncio.get_running_loop()
        kubelets = [(played, box) for played in self.clusters.values() for box in played.boxes]
        # One timer for every node, phases spread over the interval, as the simulated agents' heartbeats.
        schedule = HeartbeatSchedule([self.renew_every_s] * len(kubelets), start=loop.time())
        while True:
            for index in schedule.pop_due(loop.time()):
                played, box = kubelets[index]
                if self._is_cut(SiteId(box.site)):
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
            for played in self.clusters.values():
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
