"""Batch restart (``edgefleet.cloud.restarting``) against a simulated cluster: Deployments restarted as ``kubectl
rollout restart`` does, at most M at a time, each batch waited for until it has rolled out; a Deployment whose new
pods crash-loop exceeds its progress deadline, and the restart stops there: the Deployments after it are never
touched. The batching itself is pure and table-tested."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgefleet.clock import SystemClock
from edgefleet.cloud.k8s.clients import ClusterClients
from edgefleet.cloud.k8s.gateway import RESTARTED_AT, KubernetesGateway
from edgefleet.cloud.restarting import Step, Target, batches, restart_deployments, select
from edgefleet.ids import ClusterId, SiteId
from edgefleet.inventory import load_inventory
from simulator.cluster.kubeconfig import write_kubeconfig
from simulator.cluster.matching import Obj
from simulator.cluster.nodes import site_boxes
from simulator.cluster.pods import Fate, PodTiming
from simulator.cluster.server import BackgroundCluster, start_cluster_in_background
from tests.k8s.conftest import TEST_TIMEOUTS
from tests.policies.central import CLUSTER, write_central
from tests.policies.test_the_audit_finds_what_breaks_the_policy import workload
from tests.support.peers import wait_for

CENTRAL = ClusterId(CLUSTER)


class CrashLoops:
    """The simulator's crash-loop fault, by image: a pod of an image in ``broken`` starts and crashes."""

    def __init__(self) -> None:
        self.broken: set[str] = set()

    def fate(self, pod: Obj, node: Obj) -> Fate:
        images = {str(c.get("image")) for c in (pod.get("spec") or {}).get("containers") or []}
        return Fate(crashes=bool(images & self.broken))


@pytest.mark.parametrize(
    ("count", "m", "sizes"),
    [(5, 2, [2, 2, 1]), (4, 4, [4]), (3, 10, [3]), (0, 3, [])],
)
def test_batches_keep_the_order_and_at_most_m_in_flight(count: int, m: int, sizes: list[int]) -> None:
    targets = [Target("shop", f"d{i}") for i in range(count)]
    planned = batches(targets, m)
    assert [len(b) for b in planned] == sizes
    assert [t for b in planned for t in b] == targets


def test_batches_refuse_fewer_than_one_in_flight() -> None:
    with pytest.raises(ValueError, match="restart at least 1 Deployment at a time"):
        batches([Target("a", "b")], 0)


def test_select_orders_by_namespace_then_name() -> None:
    listed = [{"metadata": {"namespace": "b", "name": "x"}}, {"metadata": {"namespace": "a", "name": "y"}}]
    assert select(listed) == [Target("a", "y"), Target("b", "x")]


@pytest.fixture
def crash_loops() -> CrashLoops:
    return CrashLoops()


@pytest.fixture
def central(tmp_path: Path, crash_loops: CrashLoops) -> Iterator[BackgroundCluster]:
    (tmp_path / "sites").mkdir()
    inventory = load_inventory(write_central(tmp_path / "sites"))
    boxes = site_boxes(inventory, SiteId(CLUSTER))
    running = start_cluster_in_background(
        CLUSTER, boxes, controllers=True, pod_timing=PodTiming().scaled(0.05), pod_fate=crash_loops
    )
    yield running
    running.stop()


@pytest.fixture
def gateway(central: BackgroundCluster, tmp_path: Path) -> Iterator[KubernetesGateway]:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", {CENTRAL: central.url})
    built = KubernetesGateway(
        ClusterClients({CENTRAL: CLUSTER}, kubeconfig), clock=SystemClock(), timeouts=TEST_TIMEOUTS
    )
    yield built
    built.close()


def deployment(name: str) -> dict[str, Any]:
    made = workload(name, replicas=2)
    # Short, so the failing one is known failed in seconds (the default is 10 minutes).
    made["spec"]["progressDeadlineSeconds"] = 2
    return made


def restarted_at(gateway: KubernetesGateway, name: str) -> str | None:
    obj = gateway.get_deployment(CENTRAL, "shop", name)
    return ((obj["spec"]["template"]["metadata"] or {}).get("annotations") or {}).get(RESTARTED_AT)


@pytest.mark.parametrize("max_in_flight", [1, 2])
def test_a_batch_restart_stops_at_the_deployment_that_crash_loops(
    gateway: KubernetesGateway, crash_loops: CrashLoops, max_in_flight: int
) -> None:
    gateway.apply(CENTRAL, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
    names = ["a-web", "b-api", "c-worker", "d-cron"]
    for name in names:
        gateway.apply(CENTRAL, deployment(name))
    wait_for(
        lambda: all(gateway.rollout_progress(CENTRAL, "Deployment", "shop", n).done for n in names),
        timeout=30,
        what="the Deployments to roll out",
    )
    crash_loops.broken.add("registry.local/b-api:1")  # from now on, b-api's new pods crash
    steps: list[Step] = []

    targets = select(gateway.list_deployments(CENTRAL, namespace="shop").items)
    outcome = restart_deployments(
        gateway,
        CENTRAL,
        targets,
        max_in_flight=max_in_flight,
        clock=SystemClock(),
        sleep=time.sleep,
        report=steps.append,
        poll_s=0.2,
        margin_s=30.0,
    )

    assert outcome.failed == Target("shop", "b-api")
    assert outcome.reason == 'deployment "b-api" exceeded its progress deadline'
    started = names[:2]
    assert [t.name for t in outcome.restarted] == started
    assert [t.name for t in outcome.not_started] == names[2:]
    assert all(restarted_at(gateway, n) is not None for n in started)
    assert all(restarted_at(gateway, n) is None for n in names[2:])
    # a-web rolled out before the restart stopped; every step was reported as it happened.
    assert ("a-web", "rolled-out") in [(s.target.name, s.state) for s in steps]
    assert (steps[-1].target.name, steps[-1].state) == ("b-api", "failed")
