"""Probing every cluster of the inventory on the controller's schedule: is its API reachable, how fast, which
version, the last error, the last success (``ClusterHealth``, kept by the gateway).

``ClusterProbing(gateway, clusters)`` is built and started by the controller (``edgefleet.cloud.controller``) when
the inventory has clusters. Each cluster is its own APScheduler job on a thread pool with a worker per cluster
(``max_instances=1, coalesce=True``, a fixed job id), so a slow or unreachable cluster holds only its own probe,
never another cluster's, the API or the ingest; the probe's own timeout is short (``gateway.PROBE_TIMEOUT_S``).
The first probe of each cluster runs at start. Times in the records come from the gateway's injected clock; the
scheduler only decides when to ask. Tests call ``probe_all`` instead of waiting for the schedule.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Final

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from edgefleet.cloud.k8s.gateway import ClusterGateway
from edgefleet.cloud.k8s.health import ClusterHealth
from edgefleet.cloud.scheduling import JOB_DEFAULTS
from edgefleet.ids import ClusterId

log = logging.getLogger(__name__)

# A lost cluster shows within one interval plus the probe's timeout (~20 s); /version costs the server nothing.
PROBE_INTERVAL_S: Final = 15.0
# Beyond this many clusters probes share threads (the shipped inventory has five).
MAX_PROBE_THREADS: Final = 16


class ClusterProbing:
    """The periodic probe of ``clusters`` through ``gateway``. Thread-safe: the gateway keeps the records."""

    def __init__(
        self, gateway: ClusterGateway, clusters: Sequence[ClusterId], *, interval_s: float = PROBE_INTERVAL_S
    ) -> None:
        self.gateway = gateway
        self.clusters = sorted(clusters)
        self.interval_s = interval_s
        self._scheduler: BackgroundScheduler | None = None
        self._reachable: dict[ClusterId, bool | None] = {}

    def start(self) -> None:
        if self._scheduler is not None or not self.clusters:
            return
        workers = min(len(self.clusters), MAX_PROBE_THREADS)
        scheduler = BackgroundScheduler(
            timezone="UTC", executors={"default": ThreadPoolExecutor(workers)}, job_defaults=JOB_DEFAULTS
        )
        for cluster in self.clusters:
            job = f"probe-cluster:{cluster}"
            scheduler.add_job(
                self.probe,
                "interval",
                args=[cluster],
                seconds=self.interval_s,
                id=job,
                max_instances=1,
                coalesce=True,
                replace_existing=True,
            )
            # Once now (a date trigger at the scheduler's start): health is known seconds after start.
            scheduler.add_job(self.probe, args=[cluster], id=f"{job}:first")
        scheduler.start()
        self._scheduler = scheduler

    def stop(self) -> None:
        """Stop probing, waiting for probes in flight (each ends within its timeout). Safe to call twice."""
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None

    def probe_all(self) -> list[ClusterHealth]:
        """Probe every cluster now, one after another (tests; the schedule probes them side by side)."""
        return [self.probe(cluster) for cluster in self.clusters]

    def probe(self, cluster: ClusterId) -> ClusterHealth:
        health = self.gateway.probe(cluster)
        before = self._reachable.get(cluster)
        self._reachable[cluster] = health.reachable
        if health.reachable and before is not True:
            log.info("Reached cluster", extra={"cluster": cluster, "version": health.version})
        elif not health.reachable and before is not False:
            log.warning("Failed to reach cluster", extra={"cluster": cluster, "error": health.last_error})
        return health
