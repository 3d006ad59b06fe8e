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


def pinned_deployment(node_group: str, *, replicas: int, change_cause: str | None = None) -> str:
    """A Deployment ``web`` pinned to one site's node group, tolerating a lost site link as edgefleet's workloads
    do (docs/kubernetes.md), as a user would write it for ``kubectl apply -f``."""
    annotations = f"\n  annotations: {{kubernetes.io/change-cause: {change_cause}}}" if change_cause else ""
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web{annotations}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      nodeSelector: {{apps.kubeedge.io/belonging-to: {node_group}}}
      tolerations:
      - {{key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute}}
      - {{key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute}}
      containers: [{{name: web, image: "registry.example/web:1.0"}}]
"""
