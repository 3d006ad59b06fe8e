"""The GPU view of a cluster: the pure join of nodes' allocatable GPUs, pods' GPU requests and the agents'
heartbeats (a table), and ``GET /api/v1/clusters/{name}/gpus`` and ``edgefleet clusters gpus C`` over a real
uvicorn whose controller reaches a simulated central cluster with GPU nodes through the real gateway."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import typer
from typer.testing import CliRunner

from edgefleet.cli import clusters as clusters_cli
from edgefleet.clock import FakeClock
from edgefleet.cloud.api import create_app
from edgefleet.cloud.cluster_gpus import Agent, NamespaceGpus, join_gpus
from edgefleet.cloud.k8s.clients import ClusterClients
from edgefleet.cloud.k8s.gateway import KubernetesGateway
from edgefleet.cloud.settings import Settings
from edgefleet.ids import BoxId, ClusterId, SiteId
from edgefleet.inventory import load_inventory
from edgefleet.messages import GpuReport, GpuSample
from simulator.cluster.kubeconfig import write_kubeconfig
from simulator.cluster.nodes import site_boxes
from simulator.cluster.pods import PodTiming
from simulator.cluster.server import start_cluster_in_background
from tests.cloud.api.memory import MemoryController
from tests.cloud.api.serving import serving
from tests.cloud.builders import heartbeat
from tests.k8s.conftest import TEST_TIMEOUTS
from tests.support.access import cli_headers, mint, use_token
from tests.support.peers import wait_for


def node(name: str, gpus: str | None) -> dict[str, Any]:
    allocatable = {"cpu": "8"} | ({"nvidia.com/gpu": gpus} if gpus is not None else {})
    return {"metadata": {"name": name}, "status": {"allocatable": allocatable}}


def pod(
    name: str,
    namespace: str,
    on: str | None,
    *containers: dict[str, Any],
    init: tuple[dict[str, Any], ...] = (),
    phase: str = "Running",
) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": list(containers)} | ({"initContainers": list(init)} if init else {})
    if on is not None:
        spec["nodeName"] = on
    return {"metadata": {"name": name, "namespace": namespace}, "spec": spec, "status": {"phase": phase}}


def gpu(requests: str | None = None, limits: str | None = None) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if requests is not None:
        resources["requests"] = {"nvidia.com/gpu": requests}
    if limits is not None:
        resources["limits"] = {"nvidia.com/gpu": limits}
    return {"name": "c", "resources": resources}


CASES: list[tuple[str, list[dict[str, Any]], list[dict[str, Any]], dict[str, tuple[int, int]], list[NamespaceGpus]]] = [
    ("no GPUs at all", [node("a", None)], [pod("p", "x", "a", {"name": "c"})], {}, []),
    ("a node's allocatable, nothing requested", [node("a", "4"), node("b", None)], [], {"a": (4, 0)}, []),
    (
        "requests on nodes and in namespaces",
        [node("a", "4"), node("b", "2")],
        [pod("p1", "ml", "a", gpu("2", "2")), pod("p2", "ml", "b", gpu("1", "1")), pod("p3", "bi", "a", gpu("1"))],
        {"a": (4, 3), "b": (2, 1)},
        [NamespaceGpus("bi", 1, 0, 1), NamespaceGpus("ml", 3, 0, 2)],
    ),
    (
        "a limit without a request counts as the request",
        [node("a", "4")],
        [pod("p", "ml", "a", gpu(limits="2"))],
        {"a": (4, 2)},
        [NamespaceGpus("ml", 2, 0, 1)],
    ),
    (
        "containers add up; an init container counts when larger",
        [node("a", "8")],
        [
            pod("p1", "ml", "a", gpu("1"), gpu("2")),
            pod("p2", "ml", "a", gpu("1"), init=(gpu("4"),)),
            pod("p3", "ml", "a", gpu("2"), init=(gpu("1"),)),
        ],
        {"a": (8, 9)},
        [NamespaceGpus("ml", 9, 0, 3)],
    ),
    (
        "finished pods hold nothing",
        [node("a", "4")],
        [pod("p1", "ml", "a", gpu("2"), phase="Succeeded"), pod("p2", "ml", "a", gpu("1"), phase="Failed")],
        {"a": (4, 0)},
        [],
    ),
    (
        "a pod not bound yet is pending in its namespace, on no node",
        [node("a", "1")],
        [pod("p1", "ml", "a", gpu("1")), pod("p2", "ml", None, gpu("1"))],
        {"a": (1, 1)},
        [NamespaceGpus("ml", 1, 1, 2)],
    ),
    (
        "a pod on a node that lists no GPU still shows the node",
        [node("a", None)],
        [pod("p", "ml", "a", gpu("1"))],
        {"a": (0, 1)},
        [NamespaceGpus("ml", 1, 0, 1)],
    ),
]


@pytest.mark.parametrize(("nodes", "pods", "per_node", "namespaces"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_the_join_counts_allocatable_and_requested(
    nodes: list[dict[str, Any]],
    pods: list[dict[str, Any]],
    per_node: dict[str, tuple[int, int]],
    namespaces: list[NamespaceGpus],
) -> None:
    view = join_gpus(nodes, pods, {})
    assert {n.node: (n.allocatable, n.requested) for n in view.nodes} == per_node
    assert [n.node for n in view.nodes] == sorted(per_node)
    assert list(view.namespaces) == namespaces
    assert view.allocatable == sum(a for a, _ in per_node.values())
    assert view.requested == sum(r for _, r in per_node.values())
    assert view.problems == ()


READINGS = GpuReport(
    available=True,
    gpus=[GpuSample(index=0, name="NVIDIA A100", uuid="GPU-0", utilization_percent=80.0, temperature_c=71.0)],
)


def test_the_join_puts_each_nodes_agent_beside_it() -> None:
    beat = heartbeat(1)
    heard = Agent(BoxId("box-a"), msgspec.structs.replace(beat, gpu=READINGS), 123.0)
    silent = Agent(BoxId("box-b"), None, None)
    no_driver = GpuReport(available=False, reason="no NVIDIA driver")
    driverless = Agent(BoxId("box-c"), msgspec.structs.replace(beat, gpu=no_driver), 5.0)
    view = join_gpus(
        [node("a", "1"), node("b", "1"), node("c", "1"), node("d", "1")],
        [],
        {"a": heard, "b": silent, "c": driverless},
    )
    rows = {n.node: n for n in view.nodes}
    assert (rows["a"].box, rows["a"].seen_at, [g.utilization_percent for g in rows["a"].gpus]) == (
        "box-a",
        123.0,
        [80.0],
    )
    assert (rows["b"].box, rows["b"].gpus, rows["b"].seen_at) == ("box-b", (), None)
    assert (rows["c"].box, rows["c"].gpus, rows["c"].agent_reason) == ("box-c", (), "no NVIDIA driver")
    assert (rows["d"].box, rows["d"].gpus) == (None, ())


def test_a_quantity_that_is_no_whole_gpu_is_named_and_counted_as_none() -> None:
    view = join_gpus([node("a", "lots")], [pod("p", "ml", "a", gpu("0.5"))], {})
    assert view.requested == 0
    assert view.allocatable == 0
    assert len(view.problems) == 2
    assert "node a allocatable: 'lots' is no quantity" in view.problems[0]
    assert "pod ml/p container c: nvidia.com/gpu '0.5' is no whole number of GPUs" in view.problems[1]


# --- through the API and the CLI ---------------------------------------------------------------------------

CLUSTER = "central-g"
SITE = """\
apiVersion: edgefleet.io/v1
kind: Site
metadata: {name: central-g}
spec:
  kind: central
  displayName: Central G
  region: east
  timezone: Asia/Shanghai
  cluster: central-g
  boxes:
    - {name: central-g-node-01, role: cluster-node}
    - name: central-g-node-02
      role: cluster-node
      gpu: {model: NVIDIA A100, count: 4, driverVersion: "550.90.07"}
    - name: central-g-node-03
      role: cluster-node
      gpu: {model: NVIDIA A100, count: 2, driverVersion: "550.90.07"}
---
apiVersion: edgefleet.io/v1
kind: Cluster
metadata: {name: central-g}
spec: {role: central, context: central-g, region: east, timezone: Asia/Shanghai}
"""


@pytest.fixture
def served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[MemoryController, KubernetesGateway, str]]:
    (tmp_path / "sites").mkdir()
    (tmp_path / "sites" / "central-g.yaml").write_text(SITE)
    inventory = load_inventory(tmp_path / "sites")
    central = ClusterId(CLUSTER)
    boxes = site_boxes(inventory, SiteId(CLUSTER))
    cluster = start_cluster_in_background(CLUSTER, boxes, controllers=True, pod_timing=PodTiming().scaled(0.05))
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", {central: cluster.url})
    gateway = KubernetesGateway(
        ClusterClients({central: CLUSTER}, kubeconfig), clock=FakeClock(), timeouts=TEST_TIMEOUTS
    )
    memory = MemoryController(inventory)
    memory.gateway = gateway
    try:
        with serving(create_app(Settings(), controller=memory)) as url:
            use_token(monkeypatch, mint(memory))  # the CLI and the tests' own calls act as an admin
            yield memory, gateway, url
    finally:
        gateway.close()
        cluster.stop()


def gpu_deployment(name: str, namespace: str, replicas: int, gpus: int) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": name,
                            "image": "registry.local:5000/edgefleet/scan-upload:1.0.0",
                            "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
                        }
                    ]
                },
            },
        },
    }


RUNNER = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})


def cli() -> typer.Typer:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    clusters_cli.register(app)
    return app


def test_the_api_and_the_cli_show_a_clusters_gpus_beside_its_agents(
    served: tuple[MemoryController, KubernetesGateway, str],
) -> None:
    memory, gateway, url = served
    central = ClusterId(CLUSTER)
    gateway.apply(central, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ml"}})
    # Three pods of one GPU each: two fit beside each other only on the 4-GPU node or spread; 3 GPUs either way.
    gateway.apply(central, gpu_deployment("trainer", "ml", 3, 1))
    memory.beat(
        "central-g-node-02",
        gpu=GpuReport(
            available=True,
            gpus=[
                GpuSample(
                    index=i,
                    name="NVIDIA A100",
                    uuid=f"GPU-{i}",
                    utilization_percent=50.0 + i,
                    temperature_c=60.0 + i,
                    memory_used_bytes=10 * 2**30,
                    memory_total_bytes=80 * 2**30,
                )
                for i in range(4)
            ],
        ),
    )
    with httpx.Client(base_url=url, timeout=10, headers=cli_headers()) as client:
        body = _poll_requested(client, 3)
        assert (body["allocatable"], body["requested"]) == (6, 3)
        nodes = {n["node"]: n for n in body["nodes"]}
        assert sorted(nodes) == ["central-g-node-02", "central-g-node-03"]  # node-01 has no GPU
        assert (nodes["central-g-node-02"]["allocatable"], nodes["central-g-node-03"]["allocatable"]) == (4, 2)
        assert nodes["central-g-node-02"]["requested"] + nodes["central-g-node-03"]["requested"] == 3
        assert [g["temperature_c"] for g in nodes["central-g-node-02"]["gpus"]] == [60.0, 61.0, 62.0, 63.0]
        assert nodes["central-g-node-02"]["box"] == "central-g-node-02"
        assert nodes["central-g-node-03"]["gpus"] == []  # its agent never spoke
        assert body["namespaces"] == [{"namespace": "ml", "requested": 3, "pending": 0, "pods": 3}]
        assert client.get("/api/v1/clusters/central-y/gpus").status_code == 404

    shown = RUNNER.invoke(cli(), ["clusters", "gpus", CLUSTER, "--api", url])
    assert shown.exit_code == 0, shown.output
    assert "3 of 6 GPUs requested on 2 GPU nodes of central-g" in shown.output
    assert "52%" in shown.output  # the mean of 50, 51, 52, 53 (rounded)
    assert "63 C" in shown.output  # the hottest
    assert "40/320 GiB" in shown.output
    assert "no heartbeat" in shown.output

    as_json = RUNNER.invoke(cli(), ["clusters", "gpus", CLUSTER, "--api", url, "-o", "json"])
    assert as_json.exit_code == 0, as_json.output
    assert '"requested": 3' in as_json.output

    memory.gateway = None
    with httpx.Client(base_url=url, timeout=10, headers=cli_headers()) as client:
        assert client.get(f"/api/v1/clusters/{CLUSTER}/gpus").status_code == 503


def _poll_requested(client: httpx.Client, want: int) -> dict[str, Any]:
    """The view once the simulated scheduler has bound the trainer's pods (its controllers run on their own)."""

    def bound() -> dict[str, Any] | None:
        answer = client.get(f"/api/v1/clusters/{CLUSTER}/gpus")
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body if body["requested"] == want else None

    return wait_for(bound, timeout=30, what=f"{want} GPUs requested by bound pods")
