"""The StatefulSet controller of a simulated cluster: the pure step (``statefulsets.plan_stateful_set``, a table of
cases and a property: never a pod past ``replicas`` created, never more than one created or deleted at a time
under OrderedReady), the shell on a fake clock (``web-0`` before ``web-1``, each once the one before is Ready; a
template change rolls from the highest ordinal down; scaling down drops the highest first; deleting the set
deletes its pods), and real kubectl (``rollout status sts``, ``get sts``)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgefleet.clock import FakeClock, format_utc
from simulator.cluster import admission
from simulator.cluster.controlling import WorkloadControllers
from simulator.cluster.kubeconfig import write_kubeconfig
from simulator.cluster.nodes import ClusterBox, seed_cluster
from simulator.cluster.pods import PodTiming
from simulator.cluster.resources import PODS, STATEFUL_SETS
from simulator.cluster.server import BackgroundCluster, start_cluster_in_background
from simulator.cluster.statefulsets import HASH_LABEL, plan_stateful_set, revision
from simulator.cluster.store import Store
from simulator.cluster.tables import table
from tests.cluster.conftest import Kubectl, kubectl_runner
from tests.support.kubectls import ON_PATH

NOW = 1_800_000_000.0
TIMING = PodTiming(pull_s=2.0, crash_after_s=1.0, backoff_s=10.0, max_backoff_s=40.0)


def stateful_set(name: str = "db", *, replicas: int = 3, image: str = "db:1", **spec: Any) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "serviceName": f"{name}-headless",
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": name, "image": image}]}},
            **spec,
        },
    }


def stored(**kwargs: Any) -> dict[str, Any]:
    store = Store(FakeClock(NOW), cluster="test", admit=admission.admit)
    return store.create(STATEFUL_SETS, stateful_set(**kwargs), "data")


def pod(sts: dict[str, Any], index: int, *, ready: bool = True, at: str | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": "Running" if ready else "Pending"}
    if ready:
        status["conditions"] = [{"type": "Ready", "status": "True", "lastTransitionTime": format_utc(NOW - 60)}]
    return {
        "metadata": {
            "name": f"{sts['metadata']['name']}-{index}",
            "labels": {HASH_LABEL: at or revision(sts)},
            "creationTimestamp": format_utc(NOW - 120),
        },
        "spec": {"nodeName": "n1"},
        "status": status,
    }


def test_the_api_server_defaults_a_stateful_set() -> None:
    spec = stored()["spec"]
    assert spec["podManagementPolicy"] == "OrderedReady"
    assert spec["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    assert spec["revisionHistoryLimit"] == 10
    assert spec["template"]["spec"]["restartPolicy"] == "Always"


def test_the_step_makes_pods_in_order_with_stable_names() -> None:
    sts = stored()
    first = plan_stateful_set(sts, [], now=NOW)
    assert [p["metadata"]["name"] for p in first.create] == ["db-0"]
    made = first.create[0]
    assert made["metadata"]["labels"] == {
        "app": "db",
        HASH_LABEL: revision(sts),
        "statefulset.kubernetes.io/pod-name": "db-0",
        "apps.kubernetes.io/pod-index": "0",
    }
    assert (made["spec"]["hostname"], made["spec"]["subdomain"]) == ("db-0", "db-headless")
    assert made["metadata"]["ownerReferences"][0]["kind"] == "StatefulSet"
    # db-1 waits for db-0 to be Ready; then comes.
    assert plan_stateful_set(sts, [pod(sts, 0, ready=False)], now=NOW).create == ()
    assert [p["metadata"]["name"] for p in plan_stateful_set(sts, [pod(sts, 0)], now=NOW).create] == ["db-1"]
    # Parallel: all at once.
    parallel = stored(podManagementPolicy="Parallel")
    assert len(plan_stateful_set(parallel, [], now=NOW).create) == 3


def test_the_step_rolls_from_the_highest_ordinal_and_scales_down_from_it() -> None:
    sts = stored()
    old = [pod(sts, i, at="db-old") for i in range(3)]
    plan = plan_stateful_set({**sts, "status": {"currentRevision": "db-old"}}, old, now=NOW)
    assert plan.delete == ("db-2",)
    assert (plan.status["currentRevision"], plan.status["updateRevision"]) == ("db-old", revision(sts))
    # Not while one is not Ready.
    waiting = [*old[:2], pod(sts, 2, ready=False)]
    assert plan_stateful_set({**sts, "status": {"currentRevision": "db-old"}}, waiting, now=NOW).delete == ()
    # A partition keeps the ordinals below it.
    partitioned = stored(updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 2}})
    mixed = [pod(partitioned, 0, at="db-old"), pod(partitioned, 1, at="db-old"), pod(partitioned, 2)]
    assert plan_stateful_set(partitioned, mixed, now=NOW).delete == ()
    # OnDelete: nothing is replaced by the controller.
    on_delete = stored(updateStrategy={"type": "OnDelete"})
    assert plan_stateful_set(on_delete, [pod(on_delete, i, at="db-old") for i in range(3)], now=NOW).delete == ()
    # Scaled to 1: db-2 goes first, then db-1.
    small = stored(replicas=1)
    assert plan_stateful_set(small, [pod(small, i) for i in range(3)], now=NOW).delete == ("db-2",)
    done = plan_stateful_set(sts, [pod(sts, i) for i in range(3)], now=NOW)
    assert (done.create, done.delete) == ((), ())
    assert done.status["currentRevision"] == done.status["updateRevision"] == revision(sts)
    assert (done.status["readyReplicas"], done.status["updatedReplicas"]) == (3, 3)


@settings(max_examples=200, deadline=None)
@given(
    replicas=st.integers(0, 5),
    shown=st.dictionaries(st.integers(0, 7), st.tuples(st.booleans(), st.booleans()), max_size=8),
    parallel=st.booleans(),
)
def test_the_step_never_passes_its_bounds(replicas: int, shown: dict[int, tuple[bool, bool]], parallel: bool) -> None:
    sts = stored(replicas=replicas, podManagementPolicy="Parallel" if parallel else "OrderedReady")
    pods = [pod(sts, i, ready=ready, at=None if current else "db-old") for i, (ready, current) in shown.items()]
    plan = plan_stateful_set(sts, pods, now=NOW)
    names = {p["metadata"]["name"] for p in pods}
    made = [p["metadata"]["name"] for p in plan.create]
    assert all(int(n.rsplit("-", 1)[1]) < replicas and n not in names for n in made)
    assert not set(plan.delete) - names
    if not parallel:
        assert len(made) + len(plan.delete) <= 1
    else:
        assert len(made) == replicas - sum(1 for i in shown if i < replicas)


class Cluster:
    def __init__(self) -> None:
        self.clock = FakeClock(NOW)
        self.store = Store(self.clock, cluster="test", admit=admission.admit)
        seed_cluster(self.store, [ClusterBox(f"site-a-node-0{i}", "site-a", 0) for i in (1, 2)], now=NOW)
        self.controllers = WorkloadControllers(self.store, self.clock, timing=TIMING)

    def run(self, seconds: float, *, every: float = 0.5) -> None:
        self.controllers.settle()
        elapsed = 0.0
        while elapsed < seconds:
            self.clock.advance(every)
            elapsed += every
            if self.controllers.due():
                self.controllers.step()
            self.controllers.settle()

    def pods(self) -> dict[str, dict[str, Any]]:
        return {p["metadata"]["name"]: p for p in self.store.list_objects(PODS).items}


def test_the_controllers_start_roll_and_scale_a_stateful_set_in_order() -> None:
    cluster = Cluster()
    cluster.store.create(STATEFUL_SETS, stateful_set(), "data")
    cluster.run(1)
    assert list(cluster.pods()) == ["db-0"]  # db-1 waits until db-0 is Ready (a 2 s pull)
    cluster.run(10)
    pods = cluster.pods()
    assert sorted(pods) == ["db-0", "db-1", "db-2"]
    created = {n: p["metadata"]["creationTimestamp"] for n, p in pods.items()}
    assert created["db-0"] < created["db-1"] < created["db-2"]
    sts = cluster.store.get(STATEFUL_SETS, "data", "db")
    assert sts["status"]["readyReplicas"] == 3
    assert table(STATEFUL_SETS, [sts], now=cluster.clock.now())["rows"][0]["cells"][:2] == ["db", "3/3"]

    changed = copy.deepcopy(sts)
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "db:2"
    del changed["metadata"]["resourceVersion"]
    cluster.store.update(STATEFUL_SETS, changed, "data")
    cluster.run(1)
    assert sorted(cluster.pods()) == ["db-0", "db-1", "db-2"]  # db-2 went and came back at once
    assert cluster.pods()["db-2"]["spec"]["containers"][0]["image"] == "db:2"
    assert cluster.pods()["db-1"]["spec"]["containers"][0]["image"] == "db:1"
    cluster.run(20)
    images = {n: p["spec"]["containers"][0]["image"] for n, p in cluster.pods().items()}
    assert images == {"db-0": "db:2", "db-1": "db:2", "db-2": "db:2"}
    status = cluster.store.get(STATEFUL_SETS, "data", "db")["status"]
    assert status["currentRevision"] == status["updateRevision"]
    assert status["updatedReplicas"] == 3

    small = copy.deepcopy(cluster.store.get(STATEFUL_SETS, "data", "db"))
    small["spec"]["replicas"] = 1
    del small["metadata"]["resourceVersion"]
    cluster.store.update(STATEFUL_SETS, small, "data")
    cluster.run(5)
    assert list(cluster.pods()) == ["db-0"]
    cluster.store.delete(STATEFUL_SETS, "data", "db")
    cluster.run(1)
    assert cluster.pods() == {}


@pytest.fixture
def served(boxes: list[ClusterBox]) -> Iterator[BackgroundCluster]:
    running = start_cluster_in_background(boxes[0].site, boxes, controllers=True, pod_timing=PodTiming().scaled(0.1))
    yield running
    running.stop()


def test_kubectl_follows_a_stateful_set(served: BackgroundCluster, tmp_path: Path) -> None:
    kubectl: Kubectl = kubectl_runner(
        ON_PATH, write_kubeconfig(tmp_path / "kubeconfig", {served.api.name: served.url}), tmp_path
    )
    kubectl("apply", "-f", "-", stdin=json.dumps(stateful_set(replicas=2)))
    done = kubectl("rollout", "status", "sts/db", "--timeout=60s")
    assert "partitioned roll out complete: 2 new pods have been updated..." in done.stdout
    listed = kubectl("get", "sts").stdout.splitlines()
    assert listed[0].split() == ["NAME", "READY", "AGE"]
    assert listed[1].split()[:2] == ["db", "2/2"]
    kubectl("set", "image", "sts/db", "db=db:2")
    kubectl("rollout", "status", "sts/db", "--timeout=60s")
    pods = json.loads(kubectl("get", "pods", "-l", "app=db", "-o", "json").stdout)["items"]
    assert sorted((p["metadata"]["name"], p["spec"]["containers"][0]["image"]) for p in pods) == [
        ("db-0", "db:2"),
        ("db-1", "db:2"),
    ]
