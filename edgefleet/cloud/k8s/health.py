"""What the controller knows of each cluster's health: ``ClusterHealth``, one record per cluster of the inventory.

The gateway (``gateway.KubernetesGateway``) keeps the records: a probe (``/version``) sets reachable, latency,
version and when; any failed call counts as a temporary or permanent gateway error of its cluster, and one that
says something about the cluster (unreachable, timed out, 401/403, 429, 5xx, an unusable kubeconfig) becomes its
last error. The API (``GET /api/v1/clusters``), the CLI (``edgefleet clusters``) and ``/metrics`` read them. This
module imports nothing of ``kubernetes``, so the API reads the records without the client.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgefleet.ids import ClusterId


@dataclass(frozen=True, slots=True)
class ClusterHealth:
    """What the controller last knew of a cluster. ``reachable`` is None until the first probe; ``last_error``
    stays after the cluster recovers (with its time), so ops can see what happened; ``last_success_at`` is the
    last probe that reached it. Times are the controller's clock (epoch seconds); ``latency_s`` is the probe's."""

    cluster: ClusterId
    context: str
    reachable: bool | None = None
    latency_s: float | None = None
    version: str | None = None
    checked_at: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    last_success_at: float | None = None
    # Failed gateway calls since start, by the error's class (errors.py): temporary (try again) or permanent.
    temporary_errors: int = 0
    permanent_errors: int = 0
