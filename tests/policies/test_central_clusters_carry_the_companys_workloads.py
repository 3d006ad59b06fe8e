"""The simulated central clusters run the company's own workloads (``simulator.cluster.central``): dozens of
Deployments over a few namespaces, HPAs, a StatefulSet and GPU jobs (batch/v1 Jobs, some running, some finished
before the simulation began), deterministic from the seed, only on central clusters, following the cluster's policy except
the planted violations (one of them a Job's). Seeded into a simulated ``central-sh-dc1`` with its controllers
running, every pod is scheduled and the audit finds exactly the planted violations (the intruder on the big-data
host only inside its window), and the GPU view counts every GPU Deployment and running GPU Job, not the
finished Jobs."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgefleet.clock import FakeClock
from edgefleet.cloud.auditing import audit_cluster, find_violations
from edgefleet.cloud.cluster_gpus import cluster_gpus
from edgefleet.cloud.fleet import FleetState
from edgefleet.cloud.k8s.clients import ClusterClients
from edgefleet.cloud.k8s.gateway import KubernetesGateway
from edgefleet.ids import ClusterId
from edgefleet.inventory import Inventory, load_inventory
from simulator.cluster.central import PLANTED, PLANTED_JOB, central_workloads, deploy_central_workloads
from simulator.cluster.kubeconfig import write_kubeconfig
from simulator.cluster.nodes import cluster_boxes
from simulator.cluster.playing import TroubledPods
from simulator.cluster.pods import PodTiming
from simulator.cluster.server import BackgroundCluster, start_cluster_in_background
from simulator.faults import FaultRequest, Faults
from simulator.running import FaultedClusters
from tests.conftest import SITES
from tests.k8s.conftest import TEST_TIMEOUTS
from tests.support.peers import wait_for

CENTRAL = ClusterId("central-sh-dc1")
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


@pytest.fixture(scope="module")
def inventory() -> Inventory:
    return load_inventory(SITES)


def _of(kind: str, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def _gpus(workload: dict[str, Any]) -> int:
    """GPUs a Deployment's replicas or a running Job's parallel pods hold; a finished Job's none."""
    containers = workload["spec"]["template"]["spec"]["containers"]
    each = sum(int(c["resources"]["limits"].get("nvidia.com/gpu", 0)) for c in containers)
    if workload["kind"] == "Job":
        return 0 if _finished(workload) else int(workload["spec"]["parallelism"]) * each
    return int(workload["spec"]["replicas"]) * each


def _finished(job: dict[str, Any]) -> bool:
    return any(c["type"] in ("Complete", "Failed") for c in (job.get("status") or {}).get("conditions") or [])


def _workloads(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return _of("Deployment", objects) + _of("StatefulSet", objects) + _of("Job", objects)


def test_only_central_clusters_get_them_the_same_for_a_seed(inventory: Inventory) -> None:
    for cluster in inventory.clusters.values():
        objects = central_workloads(inventory, cluster.id, seed=7)
        if cluster.role != "central":
            assert objects == [], cluster.id
            continue
        assert objects == central_workloads(inventory, cluster.id, seed=7)
        deployments = _of("Deployment", objects)
        assert len(deployments) >= 20, cluster.id
        names = {d["metadata"]["name"] for d in deployments}
        for hpa in _of("HorizontalPodAutoscaler", objects):
            assert hpa["spec"]["scaleTargetRef"]["name"] in names
        # Never more GPUs asked than the cluster's boxes have: every GPU job can be scheduled.
        have = sum(
            b.gpu.count for s in inventory.cluster_sites(cluster.id) for b in inventory.site_boxes(s.id) if b.gpu
        )
        assert sum(_gpus(d) for d in _workloads(objects)) <= have
        if not have:
            assert not any(_gpus(j) or j["metadata"]["namespace"] == "ml-training" for j in _of("Job", objects))
    objects = central_workloads(inventory, CENTRAL, seed=7)
    assert {n["metadata"]["name"] for n in _of("Namespace", objects)} == {
        "order-api",
        "billing",
        "bigdata",
        "monitoring",
        "ml",
        "ml-training",
    }
    assert len(_of("HorizontalPodAutoscaler", objects)) >= 5
    assert [(s["metadata"]["namespace"], s["metadata"]["name"]) for s in _of("StatefulSet", objects)] == [
        ("bigdata", "kafka")
    ]
    assert sum(_gpus(d) for d in _of("Deployment", objects)) > 0
    # GPU jobs: some running (holding GPUs), some Complete, one Failed.
    jobs = {j["metadata"]["name"]: j for j in _of("Job", objects)}
    running = [j for j in jobs.values() if not _finished(j)]
    assert len(running) >= 2
    assert all(_gpus(j) for j in running)
    states = [c["type"] for j in jobs.values() for c in (j.get("status") or {}).get("conditions") or []]
    assert states.count("Complete") >= 2
    assert states.count("Failed") == 1
    replicas = [
        [d["spec"]["replicas"] for d in _of("Deployment", central_workloads(inventory, CENTRAL, seed=s))]
        for s in range(5)
    ]
    assert len({tuple(r) for r in replicas}) > 1, "the seed draws the replicas"


def test_the_manifests_break_the_policy_only_where_planted(inventory: Inventory) -> None:
    policy = inventory.clusters[CENTRAL].policy
    workloads = _workloads(central_workloads(inventory, CENTRAL, seed=7))
    found = find_violations(
        policy, [(w["kind"], w) for w in workloads], [], [], local=dt.datetime(2026, 12, 2, 3, tzinfo=SHANGHAI)
    )
    assert {(f.rule, f.kind, f.namespace, f.name) for f in found} == {
        ("off-ratio", "Deployment", *PLANTED["off-ratio"]),
        ("no-anti-affinity", "Deployment", *PLANTED["no-anti-affinity"]),
        ("off-ratio", "Job", *PLANTED_JOB),
    }


@pytest.fixture
def faults(inventory: Inventory) -> Faults:
    return Faults(inventory)


@pytest.fixture
def seeded(
    inventory: Inventory, faults: Faults, tmp_path: Path
) -> Iterator[tuple[BackgroundCluster, KubernetesGateway]]:
    boxes = cluster_boxes(inventory, CENTRAL)
    # The pods' fate from the simulator's own faults, as ``sim run`` wires them (its clock at 0: faults start then).
    fate = TroubledPods(FaultedClusters(faults, FakeClock()), boxes)
    running = start_cluster_in_background(
        CENTRAL, boxes, controllers=True, pod_timing=PodTiming().scaled(0.05), pod_fate=fate
    )
    running.call(lambda store: deploy_central_workloads(store, inventory, CENTRAL, seed=7))
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", {CENTRAL: running.url})
    gateway = KubernetesGateway(
        ClusterClients({CENTRAL: str(CENTRAL)}, kubeconfig), clock=FakeClock(), timeouts=TEST_TIMEOUTS
    )
    try:
        yield running, gateway
    finally:
        gateway.close()
        running.stop()


def test_the_audit_of_the_seeded_cluster_finds_the_planted_violations(
    inventory: Inventory, seeded: tuple[BackgroundCluster, KubernetesGateway]
) -> None:
    _, gateway = seeded
    cluster = inventory.clusters[CENTRAL]
    objects = central_workloads(inventory, CENTRAL, seed=7)
    deployments = _of("Deployment", objects)
    stateful = _of("StatefulSet", objects)
    running_jobs = [j for j in _of("Job", objects) if not _finished(j)]
    wanted = sum(int(d["spec"]["replicas"]) for d in deployments + stateful) + sum(
        int(j["spec"]["parallelism"]) for j in running_jobs
    )

    def all_running() -> list[dict[str, Any]] | None:
        pods = [p for p in gateway.list_objects(CENTRAL, "Pod").items if p["metadata"]["namespace"] != "edgefleet"]
        running = [p for p in pods if (p.get("status") or {}).get("phase") == "Running"]
        return pods if len(running) == wanted == len(pods) else None

    pods = wait_for(all_running, timeout=60, what=f"{wanted} pods of the central workloads to run")
    # The finished Jobs keep the status their controller left, and the controller leaves them be.
    jobs = {j["metadata"]["name"]: j for j in gateway.list_objects(CENTRAL, "Job").items}
    assert {n: _finished(j) for n, j in jobs.items()} == {
        j["metadata"]["name"]: _finished(j) for j in _of("Job", objects)
    }
    assert all(jobs[j["metadata"]["name"]]["status"].get("active") == 1 for j in running_jobs)
    for seeded_job in _of("Job", objects):
        if _finished(seeded_job):
            stored = jobs[seeded_job["metadata"]["name"]]
            assert stored["metadata"]["generation"] == 1
            assert "active" not in stored["status"]
            assert stored["status"].get("succeeded") == seeded_job["status"].get("succeeded")
    night = dt.datetime(2026, 12, 2, 3, tzinfo=SHANGHAI).timestamp()
    noon = dt.datetime(2026, 12, 2, 12, tzinfo=SHANGHAI).timestamp()
    at_night = audit_cluster(gateway, cluster, clock=FakeClock(night))
    intruder = [p["metadata"]["name"] for p in pods if p["metadata"]["name"].startswith("report-export-")]
    assert {
        (f.rule, f.kind, f.namespace, f.name if f.kind != "Pod" else "report-export") for f in at_night.findings
    } == {
        ("off-ratio", "Deployment", *PLANTED["off-ratio"]),
        ("no-anti-affinity", "Deployment", *PLANTED["no-anti-affinity"]),
        ("exclusive-host", "Pod", *PLANTED["exclusive-host"]),
        ("off-ratio", "Job", *PLANTED_JOB),
    }
    assert [f.name for f in at_night.findings if f.rule == "exclusive-host"] == intruder
    assert at_night.workloads == len(deployments) + len(stateful) + len(jobs)
    # The StatefulSet's pods have their stable names, on the big-data host its namespace is kept to.
    kafka = sorted(p["metadata"]["name"] for p in pods if p["metadata"]["name"].startswith("kafka-"))
    assert kafka == ["kafka-0", "kafka-1", "kafka-2"]
    at_noon = audit_cluster(gateway, cluster, clock=FakeClock(noon))
    assert {f.rule for f in at_noon.findings} == {"off-ratio", "no-anti-affinity"}

    # The GPU view counts the running Jobs' GPUs beside the Deployments'; the finished Jobs' pods hold none.
    view = cluster_gpus(gateway, FleetState.for_inventory(inventory), cluster)
    asked = sum(_gpus(d) for d in deployments)
    training = sum(_gpus(j) for j in running_jobs)
    assert (view.requested, view.allocatable) == (asked + training, 8)
    assert sum(ns.pending for ns in view.namespaces) == 0
    assert [(ns.namespace, ns.requested) for ns in view.namespaces] == [
        ("ml", asked),
        ("ml-training", training),
    ]


def test_a_crash_loop_fault_on_a_central_deployment_emits_warning_events(
    inventory: Inventory, faults: Faults, seeded: tuple[BackgroundCluster, KubernetesGateway]
) -> None:
    _, gateway = seeded
    deployments = _of("Deployment", central_workloads(inventory, CENTRAL, seed=7))
    order_api = next(d for d in deployments if d["metadata"]["name"] == "order-api")
    version = order_api["spec"]["template"]["spec"]["containers"][0]["image"].rsplit(":", 1)[1]
    # What 'sim fault crash-loop --site central-sh-dc1 --app order-api --version V' asks for.
    faults.add(FaultRequest(kind="crash-loop", site=str(CENTRAL), app="order-api", version=version), now=0.0)
    gateway.restart(CENTRAL, "Deployment", "order-api", "order-api", at=1_800_000_000.0)

    def backoffs() -> set[str] | None:
        events = gateway.list_objects(CENTRAL, "Event", namespace="order-api").items
        names = {
            e["involvedObject"]["name"] for e in events if (e.get("type"), e.get("reason")) == ("Warning", "BackOff")
        }
        return names or None

    crashing = wait_for(backoffs, timeout=60, what="a Warning BackOff Event of order-api's restarted pods")
    assert all(name.startswith("order-api-") for name in crashing)
    # Only the faulted app: the namespace's other apps run on.
    others = gateway.list_objects(CENTRAL, "Event", namespace="billing").items
    assert not [e for e in others if e.get("reason") == "BackOff"]
