"""The workload controllers' shell (``controlling.WorkloadControllers``) over a store on a fake clock: a
Deployment becomes Ready pods on its site's nodes with the objects, labels, owners and events Kubernetes' own
controllers write; a lost node's pods are marked not Ready, and those without a forever toleration are evicted
after the 300 s the admission gave them and replaced; a kubelet back from a short cut carries on with its pods; a crashing or unpullable image shows as the kubelet shows it;
deleting a Deployment or DaemonSet deletes what it owns."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgefleet.clock import FakeClock
from simulator.cluster import admission
from simulator.cluster.controlling import WorkloadControllers
from simulator.cluster.lifecycle import monitor_nodes
from simulator.cluster.matching import condition, node_ready
from simulator.cluster.nodes import ClusterBox, seed_cluster
from simulator.cluster.pods import Fate, HealthyPods, PodTiming
from simulator.cluster.resources import (
    CONTROLLER_REVISIONS,
    DAEMON_SETS,
    DEPLOYMENTS,
    EVENTS,
    LEASES,
    NODES,
    PODS,
    REPLICA_SETS,
)
from simulator.cluster.store import Store
from simulator.cluster.tables import table

SITE = "site-a"
TIMING = PodTiming(pull_s=2.0, crash_after_s=1.0, backoff_s=10.0, max_backoff_s=40.0)
FOREVER = [
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
]


def _boxes() -> list[ClusterBox]:
    return [
        *(ClusterBox(f"{SITE}-edge-0{i}", SITE, 0, node_group=SITE) for i in (1, 2)),
        *(ClusterBox(f"{SITE}-gpu-0{i}", SITE, 2, node_group=SITE) for i in (1, 2)),
        ClusterBox("site-b-edge-01", "site-b", 0, node_group="site-b"),
    ]


class Cluster:
    def __init__(self, fate: Any = None) -> None:
        self.clock = FakeClock()
        self.store = Store(self.clock, cluster="test", admit=admission.admit)
        seed_cluster(self.store, _boxes(), now=self.clock.now())
        # Nodes whose kubelet cannot reach the API server now (a site's link cut), as the simulator tells them.
        self.silent: set[str] = set()
        self.controllers = WorkloadControllers(
            self.store, self.clock, timing=TIMING, fate=fate, is_cut=lambda node: node in self.silent
        )

    def run(self, seconds: float, *, every: float = 0.5) -> None:
        """Move the clock on, stepping the controllers as their loop would."""
        self.controllers.settle()
        elapsed = 0.0
        while elapsed < seconds:
            self.clock.advance(every)
            elapsed += every
            if self.controllers.due():
                self.controllers.step()
            self.controllers.settle()

    def pods(self, **labels: str) -> list[dict[str, Any]]:
        return [
            p
            for p in self.store.list_objects(PODS).items
            if all((p["metadata"].get("labels") or {}).get(k) == v for k, v in labels.items())
        ]

    def events(self, reason: str) -> list[dict[str, Any]]:
        return [e for e in self.store.list_objects(EVENTS).items if e["reason"] == reason]


def deployment(
    name: str = "web", *, replicas: int = 3, image: str = "web:1", tolerations: Any = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "nodeSelector": {"apps.kubeedge.io/belonging-to": SITE},
        "containers": [{"name": "web", "image": image}],
    }
    if tolerations is not None:
        spec["tolerations"] = tolerations
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": spec},
        },
    }


def test_a_deployment_becomes_ready_pods_on_its_sites_nodes() -> None:
    cluster = Cluster()
    cluster.store.create(DEPLOYMENTS, deployment(tolerations=FOREVER), "default")
    cluster.run(5)
    deployed = cluster.store.get(DEPLOYMENTS, "default", "web")
    (rs,) = cluster.store.list_objects(REPLICA_SETS).items
    template_hash = rs["metadata"]["labels"]["pod-template-hash"]
    assert rs["metadata"]["name"] == f"web-{template_hash}"
    assert rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    assert rs["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] == "3"
    assert rs["metadata"]["annotations"]["deployment.kubernetes.io/max-replicas"] == "4"  # 25% of 3 rounds up
    assert (
        rs["metadata"]["ownerReferences"][0] | {"kind": "Deployment", "name": "web", "controller": True}
        == rs["metadata"]["ownerReferences"][0]
    )
    assert deployed["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    status = deployed["status"]
    assert {k: status[k] for k in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas")} == {
        "replicas": 3,
        "updatedReplicas": 3,
        "readyReplicas": 3,
        "availableReplicas": 3,
    }
    assert status["observedGeneration"] == deployed["metadata"]["generation"]
    assert (condition(deployed, "Available") or {}).get("reason") == "MinimumReplicasAvailable"
    assert (condition(deployed, "Progressing") or {}).get("reason") == "NewReplicaSetAvailable"
    pods = cluster.pods(app="web")
    assert len(pods) == 3
    for pod in pods:
        assert pod["metadata"]["labels"]["pod-template-hash"] == template_hash
        assert pod["spec"]["nodeName"].startswith(SITE)  # never site-b's node
        assert pod["status"]["phase"] == "Running"
        assert pod["status"]["podIP"]
        assert pod["status"]["hostIP"]
        assert pod["status"]["startTime"]
        (container,) = pod["status"]["containerStatuses"]
        assert container["ready"]
        assert container["started"]
        assert container["restartCount"] == 0
        assert container["imageID"].startswith("docker.io/library/web@sha256:")
        assert [c["type"] for c in pod["status"]["conditions"] if c["status"] == "True"] == [
            "PodReadyToStartContainers",
            "Initialized",
            "Ready",
            "ContainersReady",
            "PodScheduled",
        ]
    # Spread: the least requested node wins, so three pods land on three nodes.
    assert len({p["spec"]["nodeName"] for p in pods}) == 3
    reasons = {e["reason"] for e in cluster.store.list_objects(EVENTS).items}
    assert {"ScalingReplicaSet", "SuccessfulCreate", "Scheduled", "Pulling", "Pulled", "Created", "Started"} <= reasons
    (scaled,) = cluster.events("ScalingReplicaSet")
    assert scaled["message"] == f"Scaled up replica set web-{template_hash} to 3 from 0"
    assert scaled["source"] == {"component": "deployment-controller"}


def test_a_pod_nowhere_to_go_stays_pending_with_the_schedulers_reason() -> None:
    cluster = Cluster()
    manifest = deployment(replicas=1)
    manifest["spec"]["template"]["spec"]["nodeSelector"] = {"apps.kubeedge.io/belonging-to": "nowhere"}
    cluster.store.create(DEPLOYMENTS, manifest, "default")
    cluster.run(3)
    (pod,) = cluster.pods(app="web")
    scheduled = condition(pod, "PodScheduled") or {}
    assert pod["status"]["phase"] == "Pending"
    assert (scheduled.get("status"), scheduled.get("reason")) == ("False", "Unschedulable")
    assert scheduled["message"].startswith(
        "0/5 nodes are available: 5 node(s) didn't match Pod's node affinity/selector."
    )
    (failed,) = cluster.events("FailedScheduling")
    assert failed["type"] == "Warning"
    assert failed["source"]["component"] == "default-scheduler"


def _cut(cluster: Cluster, nodes: list[str]) -> None:
    """The kubelets of ``nodes`` fall silent; everyone else keeps posting; the lifecycle controller notices."""
    for name in nodes:
        node = copy.deepcopy(cluster.store.get(NODES, "", name))
        node["status"]["conditions"] = [
            {**c, "lastHeartbeatTime": "2000-01-01T00:00:00Z"} for c in node["status"]["conditions"]
        ]
        cluster.store.update(NODES, node, subresource="status")
    for lease in cluster.store.list_objects(LEASES).items:
        if lease["metadata"]["name"] in nodes:
            old = copy.deepcopy(lease)
            old["spec"]["renewTime"] = "2000-01-01T00:00:00.000000Z"
            cluster.store.update(LEASES, old, "kube-node-lease")
    monitor_nodes(cluster.store, now=cluster.clock.now())


def test_pods_on_a_lost_node_are_marked_not_ready_and_evicted_unless_they_tolerate_it_forever() -> None:
    cluster = Cluster()
    cluster.store.create(DEPLOYMENTS, deployment("stays", replicas=4, tolerations=FOREVER), "default")
    cluster.store.create(DEPLOYMENTS, deployment("goes", replicas=4), "default")
    cluster.run(5)
    goes = cluster.pods(app="goes")
    assert all(
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
        in p["spec"]["tolerations"]
        for p in goes
    )
    lost = sorted({p["spec"]["nodeName"] for p in goes})[0]
    before = {p["metadata"]["name"] for p in cluster.pods(app="goes") if p["spec"]["nodeName"] == lost}
    staying = {p["metadata"]["name"] for p in cluster.pods(app="stays") if p["spec"]["nodeName"] == lost}
    assert before
    assert staying
    _cut(cluster, [lost])
    assert node_ready(cluster.store.get(NODES, "", lost)) == "Unknown"
    cluster.run(1)
    on_lost = [p for p in cluster.pods() if p["spec"].get("nodeName") == lost]
    assert on_lost
    assert all((condition(p, "Ready") or {}).get("status") == "False" for p in on_lost)
    assert all(p["status"]["phase"] == "Running" for p in on_lost)  # the kubelet's last word stands
    cluster.run(290)
    assert before <= {p["metadata"]["name"] for p in cluster.pods(app="goes")}  # not yet: 300 s
    cluster.run(15)
    names = {p["metadata"]["name"] for p in cluster.pods(app="goes")}
    assert not (before & names)
    assert len(names) == 4
    assert all(p["spec"]["nodeName"] != lost for p in cluster.pods(app="goes"))
    assert len(cluster.events("TaintManagerEviction")) == len(before)
    assert staying <= {p["metadata"]["name"] for p in cluster.pods(app="stays")}
    assert len(cluster.pods(app="stays")) == 4


def test_a_kubelet_back_from_a_short_cut_carries_on_with_its_pods() -> None:
    # A cut shorter than the node's grace period: the node stays Ready, nothing in the cluster changes when the
    # link returns, and the kubelet must still pick up the pod it was given meanwhile (and finish its pull).
    cluster = Cluster()
    cluster.silent.update(box.name for box in _boxes())
    cluster.store.create(DEPLOYMENTS, deployment(replicas=1, tolerations=FOREVER), "default")
    cluster.run(5)
    (pod,) = cluster.pods(app="web")
    assert pod["spec"].get("nodeName")  # scheduled
    assert "containerStatuses" not in pod["status"]  # but its kubelet has not heard of it
    cluster.silent.clear()
    cluster.run(TIMING.pull_s + 2)
    (pod,) = cluster.pods(app="web")
    assert pod["status"]["phase"] == "Running"
    assert cluster.store.get(DEPLOYMENTS, "default", "web")["status"].get("availableReplicas") == 1


class _Faulty:
    def __init__(self, fate: Fate) -> None:
        self.fate_now = fate

    def fate(self, pod: dict[str, Any], node: dict[str, Any]) -> Fate:
        return self.fate_now


def _waiting_reason(pod: dict[str, Any]) -> str:
    return str(pod["status"]["containerStatuses"][0]["state"].get("waiting", {}).get("reason", ""))


def test_a_crashing_image_loops_with_restarts_climbing() -> None:
    cluster = Cluster(fate=_Faulty(Fate(crashes=True)))
    cluster.store.create(DEPLOYMENTS, deployment(replicas=1), "default")
    cluster.run(60)
    (pod,) = cluster.pods(app="web")
    status = pod["status"]["containerStatuses"][0]
    assert status["restartCount"] >= 2
    assert pod["status"]["phase"] == "Running"
    assert _waiting_reason(pod) == "CrashLoopBackOff" or status["state"].get("running")
    assert status["lastState"]["terminated"]["reason"] == "Error"
    (row,) = table(PODS, [pod], now=cluster.clock.now())["rows"]
    assert re.fullmatch(r"\d+ \(\d+s ago\)", row["cells"][3])  # kubectl's RESTARTS: "3 (12s ago)"
    assert cluster.events("BackOff")[0]["type"] == "Warning"
    assert cluster.store.get(DEPLOYMENTS, "default", "web")["status"].get("availableReplicas", 0) == 0


def test_a_failing_pull_backs_off_and_recovers_when_the_fault_clears() -> None:
    faulty = _Faulty(Fate(pull_error="rpc error: code = NotFound desc = manifest unknown"))
    cluster = Cluster(fate=faulty)
    cluster.store.create(DEPLOYMENTS, deployment(replicas=1), "default")
    cluster.run(2.05, every=0.1)  # the pull takes 2 s, then fails
    (pod,) = cluster.pods(app="web")
    assert _waiting_reason(pod) == "ErrImagePull"
    assert any(e["message"] == "Error: ErrImagePull" for e in cluster.events("Failed"))
    cluster.run(2)
    (pod,) = cluster.pods(app="web")
    assert _waiting_reason(pod) == "ImagePullBackOff"
    assert cluster.events("BackOff")
    cluster.controllers.fate = HealthyPods()  # the fault cleared: the seam swapped while running
    cluster.run(40)
    (pod,) = cluster.pods(app="web")
    assert pod["status"]["phase"] == "Running"
    assert pod["status"]["containerStatuses"][0]["ready"]


def test_deleting_the_owner_deletes_what_it_owns_and_a_gone_nodes_pods_go() -> None:
    cluster = Cluster()
    cluster.store.create(DEPLOYMENTS, deployment(), "default")
    cluster.store.create(
        DAEMON_SETS,
        {
            "metadata": {"name": "agent"},
            "spec": {
                "selector": {"matchLabels": {"app": "agent"}},
                "template": {
                    "metadata": {"labels": {"app": "agent"}},
                    "spec": {"containers": [{"name": "a", "image": "a:1"}]},
                },
            },
        },
        "default",
    )
    cluster.run(4)
    assert len(cluster.pods(app="agent")) == 5  # every node
    assert cluster.store.count(CONTROLLER_REVISIONS) == 1
    gone_node = cluster.pods(app="web")[0]["spec"]["nodeName"]
    cluster.store.delete(NODES, "", gone_node)
    cluster.run(4)
    assert len(cluster.pods(app="web")) == 3
    assert all(p["spec"]["nodeName"] != gone_node for p in cluster.pods())
    assert len(cluster.pods(app="agent")) == 4
    cluster.store.delete(DEPLOYMENTS, "default", "web")
    cluster.store.delete(DAEMON_SETS, "default", "agent")
    cluster.run(1)
    assert cluster.store.count(REPLICA_SETS) == 0
    assert cluster.store.count(PODS) == 0
    assert cluster.store.count(CONTROLLER_REVISIONS) == 0


@pytest.mark.parametrize("strategy", ["RollingUpdate", "Recreate"])
def test_a_new_image_rolls_out_and_undo_brings_the_old_replica_set_back(strategy: str) -> None:
    cluster = Cluster()
    manifest = deployment(replicas=4)
    manifest["spec"]["strategy"] = {"type": strategy}
    cluster.store.create(DEPLOYMENTS, manifest, "default")
    cluster.run(5)
    (first,) = cluster.store.list_objects(REPLICA_SETS).items
    changed = copy.deepcopy(cluster.store.get(DEPLOYMENTS, "default", "web"))
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "web:2"
    cluster.store.update(DEPLOYMENTS, changed, "default")
    cluster.run(15)
    assert {p["spec"]["containers"][0]["image"] for p in cluster.pods(app="web")} == {"web:2"}
    assert (
        cluster.store.get(DEPLOYMENTS, "default", "web")["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
        == "2"
    )
    # What kubectl rollout undo does: the old ReplicaSet's template, without its hash label, back in the Deployment.
    template = copy.deepcopy(cluster.store.get(REPLICA_SETS, "default", first["metadata"]["name"])["spec"]["template"])
    del template["metadata"]["labels"]["pod-template-hash"]
    template["metadata"]["creationTimestamp"] = None
    undone = copy.deepcopy(cluster.store.get(DEPLOYMENTS, "default", "web"))
    undone["spec"]["template"] = template
    cluster.store.update(DEPLOYMENTS, undone, "default")
    cluster.run(15)
    assert {p["spec"]["containers"][0]["image"] for p in cluster.pods(app="web")} == {"web:1"}
    back = cluster.store.get(REPLICA_SETS, "default", first["metadata"]["name"])
    assert back["spec"]["replicas"] == 4
    assert back["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    assert back["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] == "1"
    assert cluster.store.count(REPLICA_SETS) == 2


def test_events_expire_an_hour_after_they_were_last_seen() -> None:
    cluster = Cluster()
    cluster.store.create(DEPLOYMENTS, deployment(replicas=1), "default")
    cluster.run(5)
    assert cluster.events("ScalingReplicaSet")
    cluster.run(3500, every=30)
    assert cluster.events("ScalingReplicaSet")
    cluster.run(200, every=30)
    assert cluster.store.count(EVENTS) == 0


def test_a_write_that_keeps_failing_is_retried_a_second_later_not_every_tick() -> None:
    cluster = Cluster()
    # Its ReplicaSet's name (the Deployment's plus "-" and the hash) is longer than a name may be.
    cluster.store.create(DEPLOYMENTS, deployment("w" * 250), "default")
    assert cluster.controllers.settle() < 5
    assert not cluster.controllers.due()
    cluster.clock.advance(1.0)
    assert cluster.controllers.due()
    assert cluster.store.count(REPLICA_SETS) == 0


EDITS = st.lists(
    st.one_of(
        st.tuples(st.just("replicas"), st.integers(0, 6)),
        st.tuples(st.just("image"), st.sampled_from(["web:1", "web:2", "web:3"])),
        st.tuples(st.just("wait"), st.floats(0.0, 3.0)),
    ),
    max_size=8,
)


@settings(max_examples=30, deadline=None)
@given(edits=EDITS, strategy=st.sampled_from(["RollingUpdate", "Recreate"]))
def test_whatever_the_edits_the_controllers_converge_on_the_last_spec(
    edits: list[tuple[str, Any]], strategy: str
) -> None:
    cluster = Cluster()
    manifest = deployment(replicas=2)
    manifest["spec"]["strategy"] = {"type": strategy}
    cluster.store.create(DEPLOYMENTS, manifest, "default")
    for what, value in edits:
        if what == "wait":
            cluster.run(value, every=0.25)
            continue
        edited = copy.deepcopy(cluster.store.get(DEPLOYMENTS, "default", "web"))
        if what == "replicas":
            edited["spec"]["replicas"] = value
        else:
            edited["spec"]["template"]["spec"]["containers"][0]["image"] = value
        cluster.store.update(DEPLOYMENTS, edited, "default")
        cluster.controllers.settle()
    cluster.run(30)
    final = cluster.store.get(DEPLOYMENTS, "default", "web")
    wanted, image = final["spec"]["replicas"], final["spec"]["template"]["spec"]["containers"][0]["image"]
    pods = cluster.pods(app="web")
    assert len(pods) == wanted
    assert all(p["spec"]["containers"][0]["image"] == image for p in pods)
    assert all(p["status"]["phase"] == "Running" for p in pods)
    status = final["status"]
    assert status["observedGeneration"] == final["metadata"]["generation"]
    assert (status["replicas"], status["updatedReplicas"], status["availableReplicas"]) == (wanted, wanted, wanted)
    assert (condition(final, "Progressing") or {}).get("reason") == "NewReplicaSetAvailable"
