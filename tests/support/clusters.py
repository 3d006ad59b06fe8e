"""Cluster manifests for test inventories: every site names the cluster that holds its nodes (docs/inventory.md),
so a test that writes sites writes their clusters too."""

from __future__ import annotations

from pathlib import Path

# The KubeEdge host cluster the test fixtures' transfer centers are on.
TEST_HOST = "test-edge"


def cluster_manifest(name: str = TEST_HOST, role: str = "kubeedge-host", *, region: str = "east") -> str:
    """One ``kind: Cluster`` document (its kubeconfig context is its name)."""
    return (
        "apiVersion: edgefleet.io/v1\nkind: Cluster\n"
        f"metadata: {{name: {name}}}\nspec: {{role: {role}, context: {name}, region: {region}}}\n"
    )


def write_host_cluster(directory: Path, name: str = TEST_HOST) -> Path:
    """``directory/clusters.yaml`` declaring the KubeEdge host cluster ``name``."""
    path = directory / "clusters.yaml"
    path.write_text(cluster_manifest(name))
    return path
