"""Following one kind of object of one cluster through the gateway's watch, for as long as told: the loop the node
watch (``node_watching``) and the rollouts' workload watch (``rollouts.workload_watching``) share.

The gateway's watch starts from a fresh list (``Listed``), resumes from the last resourceVersion when the server
ends it and lists again on 410 Gone. When it fails (the cluster unreachable, a refused login), ``on_failed`` is
told and the loop lists again after a backoff (``backoff_min_s`` doubling to ``backoff_max_s``, or the server's
Retry-After when longer). The failure is logged once per streak, the recovery once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from typing import Any, Literal

from edgefleet.clock import Clock
from edgefleet.cloud.k8s.errors import ClusterError, TemporaryClusterError
from edgefleet.cloud.k8s.gateway import ClusterGateway, Kind, Listed, WatchUpdate
from edgefleet.ids import ClusterId

log = logging.getLogger(__name__)

ChangeType = Literal["ADDED", "MODIFIED", "DELETED"]


@contextmanager
def _closed(updates: Iterator[WatchUpdate]) -> Iterator[None]:
    """Close a watch left early (told to stop, or an error here), so that its stream is closed at once rather
    than when the collector gets to it. The gateway's watch is a generator."""
    try:
        yield
    finally:
        if isinstance(updates, Generator):
            updates.close()


def follow(
    gateway: ClusterGateway,
    cluster: ClusterId,
    kind: Kind,
    *,
    what: str,
    stopping: threading.Event,
    clock: Clock,
    backoff_min_s: float,
    backoff_max_s: float,
    on_listed: Callable[[list[dict[str, Any]], float], None],
    on_change: Callable[[ChangeType, dict[str, Any], float], None],
    on_failed: Callable[[str, float], None],
    namespace: str | None = None,
    logger: logging.Logger = log,
) -> None:
    """Watch ``kind`` in ``cluster`` (``what``: how the logs name it, e.g. "nodes"), and list again after a backoff
    whenever the watch fails, until ``stopping`` is set; each list, change and failure goes to its callback with
    the time (``clock.now()``)."""
    delay = backoff_min_s
    failing = False
    while not stopping.is_set():
        try:
            updates = gateway.watch(cluster, kind, namespace=namespace)
            with _closed(updates):
                for update in updates:
                    if stopping.is_set():
                        return
                    now = clock.now()
                    if isinstance(update, Listed):
                        on_listed(update.items, now)
                        if failing:
                            failing = False
                            logger.info(f"Watching {what} of cluster again", extra={"cluster": cluster})
                        else:
                            logger.info(
                                f"Listed {what} of cluster", extra={"cluster": cluster, what: len(update.items)}
                            )
                        delay = backoff_min_s
                    else:
                        on_change(update.type, update.object, now)
            # The gateway's watch never ends by itself; ending here means it was closed under us: list again.
        except Exception as exc:  # a watch thread must outlive any one failure
            message = str(exc)[:500]
            on_failed(message, clock.now())
            if not failing:
                failing = True
                logger.warning(
                    f"Failed to watch {what} of cluster; trying again with backoff",
                    extra={"cluster": cluster, "error": message},
                    exc_info=not isinstance(exc, ClusterError),
                )
            wait = delay
            if isinstance(exc, TemporaryClusterError) and exc.retry_after_s is not None:
                wait = max(wait, exc.retry_after_s)
            delay = min(delay * 2, backoff_max_s)
            stopping.wait(wait)
