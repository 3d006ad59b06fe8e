"""A small fleet for process-level rollout tests (a controller killed, a leader killed): sites of one edge node each
on the simulator's host cluster, beating every half second, the scan-upload release they are rolled to, and what
each site's Deployment is as the cluster serves it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

from edgefleet.cloud.k8s.gateway import KubernetesGateway
from edgefleet.cloud.rollouts.rendering import NAME_LABEL, NAMESPACE, SITE_LABEL
from edgefleet.ids import ClusterId
from simulator.sources import site_release
from tests.support.clusters import TEST_HOST, write_host_cluster

CLUSTER: Final = ClusterId(TEST_HOST)
# The sites' heartbeat interval: an edge node's new version reaches the controller within half a second.
INTERVAL_S: Final = 0.5


def write_sites(directory: Path, sites: Iterable[str], *, edge_nodes: Mapping[str, int] | None = None) -> Path:
    """One manifest per site (one edge node each, or as many as ``edge_nodes`` says for the site: ``site-edge-01``,
    ``site-edge-02``, ..., on the host cluster), and the host cluster's."""
    directory.mkdir(parents=True, exist_ok=True)
    for site in sites:
        count = (edge_nodes or {}).get(site, 1)
        boxes = "".join(
            f"    - {{name: {site}-edge-{i:02d}, role: edge-node, model: Dell PowerEdge XR11}}\n"
            for i in range(1, count + 1)
        )
        (directory / f"{site}.yaml").write_text(
            "apiVersion: edgefleet.io/v1\nkind: Site\n"
            f"metadata: {{name: {site}}}\n"
            "spec:\n  kind: transfer-center\n"
            f'  displayName: "{site}"\n  region: east\n  timezone: Asia/Shanghai\n'
            f"  cluster: {TEST_HOST}\n"
            f"  heartbeat: {{intervalSeconds: {INTERVAL_S}, missedBeats: 3}}\n"
            "  boxes:\n" + boxes
        )
    write_host_cluster(directory)
    return directory


def release(version: str) -> str:
    """scan-upload ``version``: the canary site-01, then one site, then the rest, one site in flight at a time (so
    a kill can land between two sites of one wave), no soak, and no failure allowed."""
    return f"""\
apiVersion: edgefleet.io/v1
kind: Release
metadata: {{name: scan-upload-{version}}}
spec:
  app: scan-upload
  version: {version}
  images:
    scan-upload: registry.local:5000/edgefleet/scan-upload:{version}
  rollback: true
  strategy:
    canary: {{sites: [site-01], coverHardware: false}}
    waves: ["1", "100%"]
    maxInFlight: 1
    soak: 0s
    failureThreshold: {{sites: 0, percentOfWave: 100}}
    gates: {{runningPercent: 100, healthTolerancePercent: 50}}
"""


def write_releases(directory: Path, seed: int, sites: Iterable[str]) -> Path:
    """The releases the simulator's fleet (of ``seed``) runs when it starts: what a revert goes back to."""
    directory.mkdir(parents=True, exist_ok=True)
    for version in {site_release(seed, site, "scan-upload") for site in sites}:
        (directory / f"scan-upload-{version}.yaml").write_text(release(version))
    return directory


def deployments(gateway: KubernetesGateway) -> dict[str, dict[str, Any]]:
    """Each site's scan-upload Deployment as the cluster serves it."""
    items = gateway.list_objects(
        CLUSTER, "Deployment", namespace=NAMESPACE, label_selector=f"{NAME_LABEL}=scan-upload"
    ).items
    return {item["metadata"]["labels"][SITE_LABEL]: item for item in items}
