"""Placement, pure: the scheduler (``scheduling.plan_schedule``) filters by cordon, taints, node selector and
affinity (every operator) and resources (GPUs among them) and words FailedScheduling as kube-scheduler does;
it never binds more than a node can hold. The DaemonSet step (``daemonsets.plan_daemon_set``) puts one pod on each
matching node, with the tolerations DaemonSet pods get, and rolls within maxUnavailable. The taint manager
(``eviction.plan_eviction``) and the admission's default tolerations decide evictions as Kubernetes does."""

from __future__ import annotations

import copy
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.cluster import admission
from simulator.cluster.daemonsets import HASH_LABEL, daemon_pod, daemon_tolerations, node_should_run, plan_daemon_set
from simulator.cluster.eviction import plan_eviction
from simulator.cluster.matching import parse_quantity, template_hash
from simulator.cluster.nodes import ClusterBox, node_manifest, parse_time
from simulator.cluster.pods import admit_pod
from simulator.cluster.resources import DAEMON_SETS
from simulator.cluster.scheduling import failure_message, node_view, plan_schedule

NOW = 1_800_000_000.0


def _node(
    name: str,
    *,
    gpus: int = 0,
    labels: dict[str, str] | None = None,
    taints: list[dict[str, Any]] | None = None,
    cordoned: bool = False,
) -> dict[str, Any]:
    node = node_manifest(ClusterBox(name, "s", gpus, node_group="s"), now=NOW)
    node["metadata"]["labels"].update(labels or {})
    node["metadata"]["uid"] = f"uid-{name}"
    node["apiVersion"], node["kind"] = "v1", "Node"
    if taints:
        node.setdefault("spec", {})["taints"] = taints
    if cordoned:
        node.setdefault("spec", {})["unschedulable"] = True
    return node


def _pod(name: str = "p", **spec: Any) -> dict[str, Any]:
    return admit_pod(
        {
            "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"},
            "spec": {"containers": [{"name": "c", "image": "i:1"}], **spec},
        }
    )


def _place(pod: dict[str, Any], nodes: list[dict[str, Any]]) -> tuple[str | None, str]:
    ((_, placement),) = plan_schedule([pod], [node_view(n, []) for n in nodes])
    return placement.node, placement.message


@pytest.mark.parametrize(
    ("operator", "values", "fits"),
    [
        ("In", ["a", "b"], {"n-a", "n-b"}),
        ("NotIn", ["a"], {"n-b", "n-none"}),
        ("Exists", [], {"n-a", "n-b"}),
        ("DoesNotExist", [], {"n-none"}),
    ],
)
def test_required_node_affinity_operators(operator: str, values: list[str], fits: set[str]) -> None:
    nodes = [_node("n-a", labels={"zone": "a"}), _node("n-b", labels={"zone": "b"}), _node("n-none")]
    expression: dict[str, Any] = {"key": "zone", "operator": operator}
    if values:
        expression["values"] = values
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [expression]}]
            }
        }
    }
    placed = set()
    for node in nodes:
        where, _ = _place(_pod(affinity=affinity), [node])
        if where:
            placed.add(where)
    assert placed == fits


@pytest.mark.parametrize(("operator", "fits"), [("Gt", {"n-8"}), ("Lt", {"n-2"})])
def test_gt_and_lt_compare_numbers(operator: str, fits: set[str]) -> None:
    nodes = [_node("n-2", labels={"cores": "2"}), _node("n-8", labels={"cores": "8"})]
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "cores", "operator": operator, "values": ["4"]}]}]
            }
        }
    }
    assert {where for n in nodes if (where := _place(_pod(affinity=affinity), [n])[0])} == fits


def test_failed_scheduling_reads_as_kube_scheduler() -> None:
    nodes = [
        _node("a", labels={"site": "x"}),
        _node("b", labels={"site": "x"}, taints=[{"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"}]),
        _node("c", labels={"site": "x"}, cordoned=True),
        _node("d", labels={"site": "y"}),
    ]
    pod = _pod(
        nodeSelector={"site": "x"},
        containers=[{"name": "c", "image": "i", "resources": {"limits": {"nvidia.com/gpu": "1"}}}],
    )
    where, message = _place(pod, nodes)
    assert where is None
    assert message == (
        "0/4 nodes are available: 1 Insufficient nvidia.com/gpu, 1 node(s) didn't match Pod's node affinity/selector,"
        " 1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }, 1 node(s) were unschedulable."
        " preemption: 0/4 nodes are available: 1 No preemption victims found for incoming pod,"
        " 3 Preemption is not helpful for scheduling."
    )
    assert failure_message(0, Counter()) == "no nodes available to schedule pods"


def test_taints_are_tolerated_by_key_value_and_effect() -> None:
    taint = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
    node = _node("n", taints=[taint])
    assert _place(_pod(), [node])[0] is None
    assert (
        _place(
            _pod(tolerations=[{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]),
            [node],
        )[0]
        == "n"
    )
    assert _place(_pod(tolerations=[{"key": "dedicated", "operator": "Equal", "value": "cpu"}]), [node])[0] is None
    assert _place(_pod(tolerations=[{"operator": "Exists"}]), [node])[0] == "n"


def test_quantities_parse_as_kubernetes_writes_them() -> None:
    assert parse_quantity("100m") == Decimal("0.1")
    assert parse_quantity("1.5") == Decimal("1.5")
    assert parse_quantity("128Mi") == 128 * 2**20
    assert parse_quantity("1G") == 10**9
    assert parse_quantity("1e3") == 1000


@settings(max_examples=100, deadline=None)
@given(
    gpus=st.lists(st.integers(0, 4), min_size=1, max_size=5),
    asks=st.lists(st.tuples(st.integers(0, 3), st.sampled_from(["0", "500m", "2", "6"])), min_size=1, max_size=12),
)
def test_the_scheduler_never_overcommits_a_node(gpus: list[int], asks: list[tuple[int, str]]) -> None:
    nodes = [_node(f"n{i}", gpus=g) for i, g in enumerate(gpus)]
    pods = [
        _pod(
            f"p{i}",
            containers=[
                {"name": "c", "image": "i", "resources": {"requests": {"cpu": cpu, "nvidia.com/gpu": str(gpu)}}}
            ],
        )
        for i, (gpu, cpu) in enumerate(asks)
    ]
    placed = plan_schedule(pods, [node_view(n, []) for n in nodes])
    used_gpu: Counter[str] = Counter()
    used_cpu: Counter[str] = Counter()
    for (gpu, cpu), (_, placement) in zip(asks, placed, strict=True):
        if placement.node is not None:
            used_gpu[placement.node] += gpu
            used_cpu[placement.node] += parse_quantity(cpu)  # type: ignore[assignment]
        else:
            assert placement.message.startswith(f"0/{len(nodes)} nodes are available: ")
    for i, g in enumerate(gpus):
        assert used_gpu[f"n{i}"] <= g
        assert used_cpu[f"n{i}"] <= 8


def test_admission_adds_300_s_tolerations_only_where_none_apply() -> None:
    pod = _pod()
    seconds = {t["key"]: t.get("tolerationSeconds") for t in pod["spec"]["tolerations"]}
    assert seconds == {"node.kubernetes.io/not-ready": 300, "node.kubernetes.io/unreachable": 300}
    forever = _pod(tolerations=[{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}])
    keys = [(t["key"], t.get("tolerationSeconds")) for t in forever["spec"]["tolerations"]]
    assert keys == [("node.kubernetes.io/unreachable", None), ("node.kubernetes.io/not-ready", 300)]


UNREACHABLE_NO_EXECUTE = {
    "key": "node.kubernetes.io/unreachable",
    "effect": "NoExecute",
    "timeAdded": "2027-01-15T08:00:00Z",
}
ADDED = parse_time("2027-01-15T08:00:00Z")


@pytest.mark.parametrize(
    ("tolerations", "after_s", "now_", "at"),
    [
        ([], 0, True, None),  # not tolerated: at once
        ([{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}], 10_000, False, None),
        (
            [
                {
                    "key": "node.kubernetes.io/unreachable",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                }
            ],
            299,
            False,
            300,
        ),
        (
            [
                {
                    "key": "node.kubernetes.io/unreachable",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                }
            ],
            300,
            True,
            None,
        ),
        ([{"operator": "Exists"}], 10_000, False, None),
    ],
)
def test_eviction_follows_toleration_seconds(
    tolerations: list[dict[str, Any]], after_s: float, now_: bool, at: float | None
) -> None:
    assert ADDED is not None
    node = _node("n", taints=[UNREACHABLE_NO_EXECUTE])
    pod = {"metadata": {"name": "p"}, "spec": {"nodeName": "n", "tolerations": tolerations}}
    decision = plan_eviction(pod, node, now=ADDED + after_s)
    assert decision.now == now_
    assert decision.at == (None if at is None else ADDED + at)


# --- DaemonSets ---------------------------------------------------------------------------------------------------


def _daemon_set(**template_spec: Any) -> dict[str, Any]:
    return admission.admit(
        DAEMON_SETS,
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": "default", "uid": "ds-uid", "generation": 1},
            "spec": {
                "selector": {"matchLabels": {"app": "agent"}},
                "template": {
                    "metadata": {"labels": {"app": "agent"}},
                    "spec": {"containers": [{"name": "a", "image": "a:1"}], **template_spec},
                },
            },
        },
        creating=True,
    )


def test_daemon_pods_tolerate_what_kubernetes_adds_and_nothing_else() -> None:
    keys = {(t["key"], t["effect"]) for t in daemon_tolerations({})}
    assert keys == {
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    }
    host_network = {(t["key"], t["effect"]) for t in daemon_tolerations({"hostNetwork": True})}
    assert host_network - keys == {("node.kubernetes.io/network-unavailable", "NoSchedule")}
    assert node_should_run({}, _node("lost", taints=[UNREACHABLE_NO_EXECUTE])) == (True, True)
    assert node_should_run({}, _node("gpu-only", taints=[{"key": "dedicated", "effect": "NoSchedule"}])) == (
        False,
        True,
    )
    assert node_should_run({}, _node("drain", taints=[{"key": "dedicated", "effect": "NoExecute"}])) == (False, False)
    assert node_should_run({"nodeSelector": {"gpu": "yes"}}, _node("plain")) == (False, False)


def test_one_pod_per_matching_node_pinned_by_affinity() -> None:
    nodes = [_node("g1", gpus=2, labels={"gpu": "yes"}), _node("g2", gpus=2, labels={"gpu": "yes"}), _node("e1")]
    ds = _daemon_set(nodeSelector={"gpu": "yes"})
    plan = plan_daemon_set(ds, nodes, [], [], now=NOW)
    assert plan.create_on == ("g1", "g2")
    assert plan.create_revision is not None
    assert plan.create_revision["revision"] == 1
    assert plan.create_revision["data"]["spec"]["template"]["$patch"] == "replace"
    assert plan.status["desiredNumberScheduled"] == 2
    pod = daemon_pod(ds, "g1", "h")
    assert pod["metadata"]["labels"][HASH_LABEL] == "h"
    terms = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    assert terms == [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["g1"]}]}]
    assert _place(admit_pod({**pod, "metadata": {**pod["metadata"], "name": "x"}}), nodes)[0] == "g1"


def _running(ds: dict[str, Any], node: str, index: int, *, available: bool) -> dict[str, Any]:
    pod = daemon_pod(ds, node, template_hash(ds["spec"]["template"], label=HASH_LABEL))
    pod["metadata"].update(name=f"agent-{index}", uid=f"p{index}", creationTimestamp=f"2027-01-01T00:00:{index:02d}Z")
    pod["spec"]["nodeName"] = node
    pod["status"] = {
        "phase": "Running",
        "conditions": [
            {"type": "Ready", "status": "True" if available else "False", "lastTransitionTime": "2027-01-01T00:00:00Z"}
        ],
    }
    return pod


@settings(max_examples=60, deadline=None)
@given(
    nodes=st.integers(1, 8),
    max_unavailable=st.integers(1, 3),
    surge=st.integers(0, 2),
    order=st.randoms(use_true_random=False),
)
def test_a_daemon_set_rolls_within_max_unavailable(nodes: int, max_unavailable: int, surge: int, order: Any) -> None:
    node_objs = [_node(f"n{i}") for i in range(nodes)]
    ds = _daemon_set()
    old_ds = copy.deepcopy(ds)
    pods = {f"agent-{i}": _running(old_ds, f"n{i}", i, available=True) for i in range(nodes)}
    ds["spec"]["template"]["spec"]["containers"][0]["image"] = "a:2"
    ds["spec"]["updateStrategy"] = {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": max_unavailable if not surge else 0, "maxSurge": surge},
    }
    limit = max_unavailable if not surge else 0
    created = nodes
    for _ in range(6 * nodes + 6):
        plan = plan_daemon_set(ds, node_objs, list(pods.values()), [], now=NOW)
        for name in plan.delete:
            del pods[name]
        for node in plan.create_on:
            created += 1
            pods[f"agent-{created}"] = _running(ds, node, created, available=False)
        available_nodes = {
            p["spec"]["nodeName"] for p in pods.values() if p["status"]["conditions"][0]["status"] == "True"
        }
        assert nodes - len(available_nodes) <= limit  # with surge, limit 0: an old pod goes once its successor is up
        per_node = Counter(p["spec"]["nodeName"] for p in pods.values())
        assert max(per_node.values(), default=0) <= (2 if surge else 1)
        # Some new pods become available, in an order hypothesis picks.
        waiting = [p for p in pods.values() if p["status"]["conditions"][0]["status"] == "False"]
        for pod in waiting[: order.randint(0, len(waiting))]:
            pod["status"]["conditions"][0]["status"] = "True"
    for _ in range(2 * nodes + 2):  # then everything becomes available as soon as it starts
        for pod in pods.values():
            pod["status"]["conditions"][0]["status"] = "True"
        final = plan_daemon_set(ds, node_objs, list(pods.values()), [], now=NOW)
        for name in final.delete:
            del pods[name]
        for node in final.create_on:
            created += 1
            pods[f"agent-{created}"] = _running(ds, node, created, available=True)
    assert not final.delete
    assert not final.create_on
    assert final.status.get("updatedNumberScheduled") == nodes
    assert final.status.get("numberAvailable") == nodes


def _labelled(name: str, labels: dict[str, str], **spec: Any) -> dict[str, Any]:
    pod = _pod(name, **spec)
    pod["metadata"]["labels"] = labels
    return pod


ONE_PER_NODE = {
    "podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}
        ]
    }
}


def test_required_pod_anti_affinity_keeps_one_copy_per_node() -> None:
    nodes = [_node("n-1"), _node("n-2"), _node("n-3")]
    running = _labelled("web-old", {"app": "web"})
    views = [node_view(nodes[0], [running]), node_view(nodes[1], []), node_view(nodes[2], [])]
    copies = [_labelled(f"web-{i}", {"app": "web"}, affinity=ONE_PER_NODE) for i in range(3)]
    placed = [placement for _, placement in plan_schedule(copies, views)]
    # n-1 runs a copy already; the two others take one each, and the third copy has nowhere to go.
    assert [p.node for p in placed] == ["n-2", "n-3", None]
    assert placed[2].message.startswith("0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules.")
    # Planted: the same copies without the rule stack where the scores say.
    stacked = [
        placement.node
        for _, placement in plan_schedule(
            [_labelled(f"web-{i}", {"app": "web"}) for i in range(3)],
            [node_view(nodes[0], [running]), node_view(nodes[1], []), node_view(nodes[2], [])],
        )
    ]
    assert None not in stacked, "without the rule every copy finds a node"
    other = _labelled("db-0", {"app": "db"}, affinity=ONE_PER_NODE)
    ((_, alone),) = plan_schedule([other], [node_view(nodes[0], []), node_view(nodes[1], [])])
    assert alone.node is not None, "no copy of the selected pods anywhere: every node fits"
