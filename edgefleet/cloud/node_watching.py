"""The node watch: one thread per cluster of the inventory that keeps what the cluster says of its Nodes in
``FleetState.nodes``, for the API and the alert loop. Built and started by the controller with its gateway
(``controller.gateway``, or one a test passes); the pure parts are ``nodes`` (reading a node, taking a list or
an event) and ``alerting.node_rules``.

Each thread asks the gateway for a watch of the cluster's Nodes from a fresh list: the gateway resumes it from
the last resourceVersion when the server ends it and lists again on 410 Gone. Every update replaces the cluster's
``ClusterNodes`` in the fleet state (copy on write, under the fleet lock: one event on a cluster of 2,000 nodes
takes ~15 us, measured; with edgecore's default status report every 10 s that is ~200 events and ~3 ms a second). When the watch fails (the cluster unreachable, a refused login), the
cluster is marked not watched with the error, and the thread lists again after a backoff (``BACKOFF_MIN_S``
doubling to ``BACKOFF_MAX_S``, or the server's Retry-After when longer). The failure is logged once per streak,
the recovery once.

Without a gateway nothing is watched: every box's node reads "not-watched" (reason "no-gateway").

Stopping: ``stop`` tells the threads to end; a thread blocked in a watch read notices at the next event or when
the server ends the watch (the gateway's watch timeout). The threads are daemons and publish nothing once told
to stop, so a stopped watch never changes the fleet state.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Final

from edgefleet.clock import Clock
from edgefleet.cloud.fleet import FleetState
from edgefleet.cloud.k8s.gateway import ClusterGateway
from edgefleet.cloud.nodes import ClusterNodes, took_change, took_list, watch_failed
from edgefleet.cloud.watching import follow
from edgefleet.ids import ClusterId

log = logging.getLogger(__name__)

# A watch that failed is tried again after 1 s, then 2, 4... up to a minute: a cluster back after a blip is seen
# again within a second or two, one away for an hour costs a request a minute.
BACKOFF_MIN_S: Final = 1.0
BACKOFF_MAX_S: Final = 60.0
# How long ``stop`` waits for the threads in all: those waiting out a backoff end at once; one in a watch read
# would hold the controller's shutdown for minutes, and it publishes nothing after stop anyway.
STOP_WAIT_S: Final = 1.0


@dataclass
class _Watcher:
    cluster: ClusterId
    thread: threading.Thread
    stopping: threading.Event


class NodeWatch:
    """Watches the Nodes of every cluster of ``state.inventory`` through ``gateway`` (None: watches nothing)."""

    def __init__(
        self,
        state: FleetState,
        gateway: ClusterGateway | None,
        *,
        clock: Clock,
        backoff_min_s: float = BACKOFF_MIN_S,
        backoff_max_s: float = BACKOFF_MAX_S,
    ) -> None:
        self.state = state
        self.gateway = gateway
        self.clock = clock
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = backoff_max_s
        self._watchers: dict[ClusterId, _Watcher] = {}
        self._lock = threading.Lock()
        self._running = False

    @property
    def clusters(self) -> list[ClusterId]:
        """The clusters watched now."""
        with self._lock:
            return sorted(self._watchers)

    def start(self) -> None:
        """Start a watch for every cluster of the inventory. Safe to call twice."""
        with self._lock:
            self._running = True
        self.inventory_changed()

    def inventory_changed(self) -> None:
        """Watch the clusters of the inventory in force now: start the new ones, stop and forget the removed
        (their nodes leave ``FleetState.nodes``). Called by the controller after an inventory reload."""
        if self.gateway is None:
            return
        with self.state.lock:
            wanted = set(self.state.inventory.clusters)
        with self._lock:
            if not self._running:
                return
            for cluster in sorted(self._watchers.keys() - wanted):
                self._watchers.pop(cluster).stopping.set()
                log.info("Stopped watching nodes of cluster removed from inventory", extra={"cluster": cluster})
            for cluster in sorted(wanted - self._watchers.keys()):
                self._watchers[cluster] = self._start_one(cluster)
            watched = set(self._watchers)
        with self.state.lock:
            book = dict(self.state.nodes)
            for cluster in list(book):
                if cluster not in watched:
                    del book[cluster]
            for cluster in watched:
                book.setdefault(cluster, ClusterNodes(cluster))
            self.state.nodes = book

    def stop(self) -> None:
        """Tell every thread to end and wait for them a little (``STOP_WAIT_S``). Safe to call twice."""
        with self._lock:
            self._running = False
            watchers = list(self._watchers.values())
            self._watchers.clear()
        for watcher in watchers:
            watcher.stopping.set()
        deadline = self.clock.monotonic() + STOP_WAIT_S
        for watcher in watchers:
            watcher.thread.join(timeout=max(0.0, deadline - self.clock.monotonic()))

    def _start_one(self, cluster: ClusterId) -> _Watcher:
        stopping = threading.Event()
        thread = threading.Thread(
            target=self._run, args=(cluster, stopping), name=f"edgefleet-nodes-{cluster}", daemon=True
        )
        watcher = _Watcher(cluster, thread, stopping)
        thread.start()
        return watcher

    def _publish(
        self, cluster: ClusterId, stopping: threading.Event, change: Callable[[ClusterNodes], ClusterNodes]
    ) -> None:
        """Replace the cluster's entry with what ``change`` makes of the current one."""
        if stopping.is_set():
            return
        with self.state.lock:
            known = self.state.nodes.get(cluster) or ClusterNodes(cluster)
            self.state.nodes = {**self.state.nodes, cluster: change(known)}

    def _run(self, cluster: ClusterId, stopping: threading.Event) -> None:
        """Watch, and list again after a backoff whenever the watch fails, until told to stop."""
        assert self.gateway is not None
        follow(
            self.gateway,
            cluster,
            "Node",
            what="nodes",
            stopping=stopping,
            clock=self.clock,
            backoff_min_s=self.backoff_min_s,
            backoff_max_s=self.backoff_max_s,
            on_listed=lambda items, now: self._publish(cluster, stopping, partial(took_list, items=items, now=now)),
            on_change=lambda kind, obj, now: self._publish(
                cluster, stopping, partial(took_change, kind=kind, raw=obj, now=now)
            ),
            on_failed=lambda error, now: self._publish(cluster, stopping, partial(watch_failed, error=error, now=now)),
            logger=log,
        )
