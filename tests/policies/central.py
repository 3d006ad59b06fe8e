"""A central cluster for the policy tests: three cluster nodes (two ``general``, one ``bigdata``) under a policy
with every part set, and a scan-upload release that scales; written to a test's own inventory directory."""

from __future__ import annotations

from pathlib import Path

CLUSTER = "central-x"
SITE = """\
apiVersion: edgefleet.io/v1
kind: Site
metadata: {name: central-x}
spec:
  kind: central
  displayName: Central X
  region: east
  timezone: Asia/Shanghai
  cluster: central-x
  boxes:
    - {name: central-x-node-01, role: cluster-node, labels: {edgefleet.io/host-group: general}}
    - {name: central-x-node-02, role: cluster-node, labels: {edgefleet.io/host-group: general}}
    - {name: central-x-node-03, role: cluster-node, labels: {edgefleet.io/host-group: bigdata}}
---
apiVersion: edgefleet.io/v1
kind: Cluster
metadata: {name: central-x}
spec:
  role: central
  context: central-x
  region: east
  timezone: Asia/Shanghai
  policy:
    overcommit: {cpu: 10, memory: 1.5}
    hostGroups:
      general: {matchLabels: {edgefleet.io/host-group: general}}
      bigdata: {matchLabels: {edgefleet.io/host-group: bigdata}}
    hostGroup: general
    exclusiveHosts:
      - {hostGroup: bigdata, window: "00:00-06:00", namespaces: [bigdata], apps: [scan-upload]}
    antiAffinity:
      - {name: uploaders, apps: [scan-upload, video-transcode]}
    namespaces:
      edgefleet: {hostGroup: bigdata}
      kube-system: {audit: false}
"""
# A transfer center beside it, on a KubeEdge host: a rollout's canary is one.
EDGE = """\
apiVersion: edgefleet.io/v1
kind: Site
metadata: {name: tc-a}
spec:
  kind: transfer-center
  displayName: Transfer center A
  region: east
  timezone: Asia/Shanghai
  cluster: edge-x
  boxes:
    - {name: tc-a-edge-01, role: edge-node}
---
apiVersion: edgefleet.io/v1
kind: Cluster
metadata: {name: edge-x}
spec: {role: kubeedge-host, context: edge-x, region: east}
"""
RELEASE = """\
apiVersion: edgefleet.io/v1
kind: Release
metadata: {name: scan-upload-2.0.0}
spec:
  app: scan-upload
  version: 2.0.0
  images: {scan-upload: "registry.local:5000/edgefleet/scan-upload:2.0.0"}
  resources:
    requests: {cpu: "1", memory: 1Gi}
    limits: {cpu: "2", memory: 3Gi}
  autoscaling: {minReplicas: 1, maxReplicas: 3, cpuUtilization: 70}
"""


def write_central(directory: Path) -> Path:
    (directory / "central-x.yaml").write_text(SITE)
    (directory / "tc-a.yaml").write_text(EDGE)
    return directory
