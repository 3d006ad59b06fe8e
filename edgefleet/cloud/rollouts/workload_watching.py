"""The rollouts' workload watch: follows the Deployments and DaemonSets in edgefleet's namespace of every cluster of
the inventory (``watching.follow``, one thread per cluster and kind) and tells the reconciler of each change to a
site's workload (``Reconciler.workload_changed``), which ticks early when that site is in flight: a rollout is
followed through its watch, its Deployment counting a new pod available is seen within the watch's latency rather
than at the next scheduled tick.

Level-triggered still: the tick lists every workload it judges (what it compares is always the cluster's state
now), and nothing depends on an event arriving; a lost or late event costs at most one scheduled tick. A watch that
fails is retried with backoff and says nothing more: the tick's own list marks the cluster's sites unreachable.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any, Final

from edgefleet.clock import Clock
from edgefleet.cloud.k8s.gateway import ClusterGateway, Kind
from edgefleet.cloud.rollouts.rendering import NAMESPACE, SITE_LABEL
from edgefleet.cloud.watching import follow
from edgefleet.ids import ClusterId, SiteId
from edgefleet.inventory import Inventory

log = logging.getLogger(__name__)

KINDS: Final[tuple[Kind, ...]] = ("Deployment", "DaemonSet")
BACKOFF_MIN_S: Final = 1.0
BACKOFF_MAX_S: Final = 60.0
STOP_WAIT_S: Final = 1.0


class WorkloadWatch:
    """Watches the workloads of every cluster of ``inventory()`` through ``gateway`` (None: nothing) and calls
    ``changed(site)`` for each change to a workload labelled with a site."""

    def __init__(
        self,
        inventory: Callable[[], Inventory],
        gateway: ClusterGateway | None,
        *,
        changed: Callable[[SiteId], None],
        clock: Clock,
        backoff_min_s: float = BACKOFF_MIN_S,
        backoff_max_s: float = BACKOFF_MAX_S,
    ) -> None:
        self._inventory = inventory
        self.gateway = gateway
        self.changed = changed
        self.clock = clock
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = backoff_max_s
        self._threads: dict[tuple[ClusterId, Kind], tuple[threading.Thread, threading.Event]] = {}
        self._lock = threading.Lock()
        self._running = False

    def start(self) -> None:
        with self._lock:
            self._running = True
        self.inventory_changed()

    def inventory_changed(self) -> None:
        """Watch the clusters of the inventory in force now: start the new ones, stop the removed."""
        if self.gateway is None:
            return
        wanted = {(cluster, kind) for cluster in self._inventory().clusters for kind in KINDS}
        with self._lock:
            if not self._running:
                return
            for key in sorted(self._threads.keys() - wanted):
                self._threads.pop(key)[1].set()
            for key in sorted(wanted - self._threads.keys()):
                stopping = threading.Event()
                thread = threading.Thread(
                    target=self._run, args=(*key, stopping), name=f"edgefleet-workloads-{key[0]}-{key[1]}", daemon=True
                )
                self._threads[key] = (thread, stopping)
                thread.start()

    def stop(self) -> None:
        """Tell every thread to end and wait for them a little. Safe to call twice."""
        with self._lock:
            self._running = False
            threads = list(self._threads.values())
            self._threads.clear()
        for _thread, stopping in threads:
            stopping.set()
        deadline = self.clock.monotonic() + STOP_WAIT_S
        for thread, _stopping in threads:
            thread.join(timeout=max(0.0, deadline - self.clock.monotonic()))

    def _run(self, cluster: ClusterId, kind: Kind, stopping: threading.Event) -> None:
        assert self.gateway is not None
        follow(
            self.gateway,
            cluster,
            kind,
            what="workloads",
            namespace=NAMESPACE,
            stopping=stopping,
            clock=self.clock,
            backoff_min_s=self.backoff_min_s,
            backoff_max_s=self.backoff_max_s,
            on_listed=lambda items, _now: self._tell(items, stopping),
            on_change=lambda _type, obj, _now: self._tell((obj,), stopping),
            on_failed=lambda _error, _now: None,
            logger=log,
        )

    def _tell(self, objects: Iterable[dict[str, Any]], stopping: threading.Event) -> None:
        if stopping.is_set():
            return
        sites = {
            site
            for obj in objects
            if isinstance(site := ((obj.get("metadata") or {}).get("labels") or {}).get(SITE_LABEL), str)
        }
        for site in sorted(sites):
            self.changed(SiteId(site))
