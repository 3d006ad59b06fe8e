"""The policy audit (``edgefleet.cloud.auditing``): the pure finding function over listed objects (a table of
workloads and pods; every workload kind judged by its pod template alike, a finished Job not at all; and the
property that what edgefleet renders under a policy never breaks it), and against a simulated central cluster with
violations planted beside compliant workloads, a Job among them: it finds exactly those, changes nothing, and an
exclusive host's intruder only while the window is open, in the cluster's time zone."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgefleet.clock import FakeClock
from edgefleet.cloud.auditing import WORKLOAD_KINDS, Finding, audit_cluster, find_violations
from edgefleet.cloud.k8s.clients import ClusterClients
from edgefleet.cloud.k8s.gateway import KubernetesGateway
from edgefleet.cloud.rollouts.policy import with_policy
from edgefleet.cloud.rollouts.rendering import namespace, render
from edgefleet.ids import ClusterId, SiteId
from edgefleet.inventory import Inventory, load_inventory
from edgefleet.policies import ClusterPolicy, PolicySpec, check_policy
from edgefleet.releases import load_release_text
from simulator.cluster.kubeconfig import write_kubeconfig
from simulator.cluster.nodes import site_boxes
from simulator.cluster.pods import PodTiming
from simulator.cluster.server import BackgroundCluster, start_cluster_in_background
from tests.k8s.conftest import TEST_TIMEOUTS
from tests.policies.central import CLUSTER, RELEASE, write_central
from tests.support.peers import wait_for

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
NIGHT = dt.datetime(2026, 12, 2, 3, 0, tzinfo=SHANGHAI)  # inside 00:00-06:00
DAY = dt.datetime(2026, 12, 2, 12, 0, tzinfo=SHANGHAI)
POLICY = check_policy(
    msgspec.convert(
        {
            "overcommit": {"cpu": 10, "memory": 1.5},
            "hostGroups": {"bigdata": {"matchLabels": {"edgefleet.io/host-group": "bigdata"}}},
            "exclusiveHosts": [{"hostGroup": "bigdata", "window": "00:00-06:00", "namespaces": ["bigdata"]}],
            "antiAffinity": [{"name": "gpu-heavy", "apps": ["recognizer", "transcoder"]}],
            "namespaces": {"kube-system": {"audit": False}, "batch": {"overcommit": {"cpu": 4}}},
        },
        PolicySpec,
    ),
    has_timezone=True,
)[0]


def workload(
    name: str,
    *,
    namespace: str = "shop",
    limits: dict[str, str] | None = None,
    requests: dict[str, str] | None = None,
    app: str | None = None,
    affinity: dict[str, Any] | None = None,
    node_selector: dict[str, str] | None = None,
    replicas: int = 1,
) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": app or name}
    resources: dict[str, Any] = {}
    if limits:
        resources["limits"] = limits
    if requests:
        resources["requests"] = requests
    spec: dict[str, Any] = {"containers": [{"name": name, "image": f"registry.local/{name}:1", "resources": resources}]}
    if affinity:
        spec["affinity"] = affinity
    if node_selector:
        spec["nodeSelector"] = node_selector
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": spec},
        },
    }


def as_kind(kind: str, obj: dict[str, Any], *, finished: str | None = None) -> dict[str, Any]:
    """``obj`` (a Deployment) as a workload of ``kind`` with the same pod template; a Job ``finished`` Complete or
    Failed when asked."""
    group = {"Job": "batch/v1"}.get(kind, "apps/v1")
    spec = {"template": obj["spec"]["template"]}
    if kind == "Job":
        spec["template"] = {**spec["template"], "spec": {**spec["template"]["spec"], "restartPolicy": "Never"}}
    else:
        spec["selector"] = obj["spec"]["selector"]
    made: dict[str, Any] = {"apiVersion": group, "kind": kind, "metadata": dict(obj["metadata"]), "spec": spec}
    if finished is not None:
        made["status"] = {"conditions": [{"type": finished, "status": "True"}]}
    return made


def avoid(*apps: str, required: bool = False) -> dict[str, Any]:
    term = {
        "labelSelector": {
            "matchExpressions": [{"key": "app.kubernetes.io/name", "operator": "In", "values": list(apps)}]
        },
        "topologyKey": "kubernetes.io/hostname",
    }
    if required:
        return {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}
    return {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 50, "podAffinityTerm": term}]
        }
    }


def pod(name: str, node: str, *, namespace: str = "shop", app: str = "web", phase: str = "Running") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/name": app}},
        "spec": {"nodeName": node},
        "status": {"phase": phase},
    }


NODES = [
    {"metadata": {"name": "n1", "labels": {"edgefleet.io/host-group": "general"}}},
    {"metadata": {"name": "n3", "labels": {"edgefleet.io/host-group": "bigdata"}}},
]


@pytest.mark.parametrize(
    ("objects", "expected"),
    [
        pytest.param([workload("web", limits={"cpu": "2"}, requests={"cpu": "200m"})], [], id="on-ratio"),
        pytest.param([workload("web", limits={"cpu": "2"}, requests={"cpu": "201m"})], [], id="within-a-unit"),
        pytest.param(
            [workload("web", limits={"cpu": "2"}, requests={"cpu": "1"})], [("web", "off-ratio")], id="cpu-off-ratio"
        ),
        pytest.param(
            [workload("web", limits={"memory": "3Gi"})], [("web", "off-ratio")], id="no-request-counts-as-the-limit"
        ),
        pytest.param([workload("web", requests={"cpu": "1"})], [], id="no-limit-no-ratio-to-hold"),
        pytest.param(
            [workload("job", namespace="batch", limits={"cpu": "2"}, requests={"cpu": "500m"})],
            [],
            id="namespace-ratio",
        ),
        pytest.param(
            [workload("job", namespace="batch", limits={"cpu": "2"}, requests={"cpu": "200m"})],
            [("job", "off-ratio")],
            id="cluster-ratio-is-not-the-namespaces",
        ),
        pytest.param(
            [workload("dns", namespace="kube-system", limits={"cpu": "2"}, requests={"cpu": "2"})],
            [],
            id="unaudited-namespace",
        ),
        pytest.param([workload("recognizer")], [("recognizer", "no-anti-affinity")], id="missing-anti-affinity"),
        pytest.param([workload("recognizer", affinity=avoid("transcoder"))], [], id="preferred-anti-affinity"),
        pytest.param(
            [workload("recognizer", affinity=avoid("transcoder", required=True))], [], id="required-counts-too"
        ),
        pytest.param(
            [workload("recognizer", affinity=avoid("web"))], [("recognizer", "no-anti-affinity")], id="avoids-another"
        ),
        pytest.param([pod("web-1", "n3")], [("web-1", "exclusive-host")], id="intruder-on-exclusive-host"),
        pytest.param([pod("spark-1", "n3", namespace="bigdata")], [], id="granted-namespace"),
        pytest.param([pod("web-1", "n1")], [], id="ordinary-host"),
        pytest.param([pod("web-1", "n3", phase="Succeeded")], [], id="finished-pod"),
        pytest.param([pod("dns-1", "n3", namespace="kube-system")], [], id="unaudited-pod"),
    ],
)
def test_findings_table(objects: list[dict[str, Any]], expected: list[tuple[str, str]]) -> None:
    workloads = [("Deployment", o) for o in objects if o.get("kind") == "Deployment"]
    pods = [o for o in objects if "kind" not in o]
    found = find_violations(POLICY, workloads, pods, NODES, local=NIGHT)
    assert [(f.name, f.rule) for f in found] == expected


OFF_RATIO = workload("train", limits={"cpu": "2", "nvidia.com/gpu": "1"}, requests={"cpu": "2", "nvidia.com/gpu": "1"})


@pytest.mark.parametrize("kind", WORKLOAD_KINDS)
def test_every_workload_kind_is_judged_by_its_pod_template(kind: str) -> None:
    found = find_violations(POLICY, [(kind, as_kind(kind, OFF_RATIO))], [], [], local=DAY)
    assert [(f.kind, f.name, f.rule) for f in found] == [(kind, "train", "off-ratio")]
    found = find_violations(POLICY, [(kind, as_kind(kind, workload("recognizer")))], [], [], local=DAY)
    assert [(f.kind, f.rule) for f in found] == [(kind, "no-anti-affinity")]


@pytest.mark.parametrize("finished", ["Complete", "Failed"])
def test_a_finished_job_breaks_nothing_any_more(finished: str) -> None:
    done = as_kind("Job", OFF_RATIO, finished=finished)
    assert find_violations(POLICY, [("Job", done)], [], [], local=DAY) == []
    # A condition that is not True does not finish it.
    done["status"]["conditions"][0]["status"] = "False"
    assert [f.rule for f in find_violations(POLICY, [("Job", done)], [], [], local=DAY)] == ["off-ratio"]


@given(
    kind=st.sampled_from(WORKLOAD_KINDS),
    app=st.sampled_from(["recognizer", "transcoder", "web"]),
    namespace=st.sampled_from(["shop", "batch", "kube-system"]),
    limits=st.fixed_dictionaries({}, optional={"cpu": st.integers(1, 8000).map(lambda m: f"{m}m")}),
    requests=st.fixed_dictionaries({}, optional={"cpu": st.integers(1, 8000).map(lambda m: f"{m}m")}),
)
def test_a_template_breaks_the_policy_alike_whatever_its_kind(
    kind: str, app: str, namespace: str, limits: dict[str, str], requests: dict[str, str]
) -> None:
    deployment = workload(app, namespace=namespace, limits=limits, requests=requests)
    as_deployment = find_violations(POLICY, [("Deployment", deployment)], [], [], local=DAY)
    as_other = find_violations(POLICY, [(kind, as_kind(kind, deployment))], [], [], local=DAY)
    assert [(f.name, f.rule, f.message) for f in as_other] == [(f.name, f.rule, f.message) for f in as_deployment]
    assert {f.kind for f in as_other} <= {kind}


def test_the_intruder_is_one_only_while_the_window_is_open() -> None:
    [finding] = find_violations(POLICY, [], [pod("web-1", "n3")], NODES, local=NIGHT)
    assert finding.message == (
        "runs on n3, of host group bigdata, kept from 00:00-06:00 (03:00 now) for namespaces bigdata"
    )
    assert find_violations(POLICY, [], [pod("web-1", "n3")], NODES, local=DAY) == []


def test_an_off_ratio_finding_says_what_the_request_should_be() -> None:
    [finding] = find_violations(
        POLICY, [("Deployment", workload("web", limits={"cpu": "2"}, requests={"cpu": "1"}))], [], [], local=DAY
    )
    assert finding == Finding(
        "shop", "Deployment", "web", "off-ratio", "container web: cpu request 1 is not its limit 2 / 10 (about 200m)"
    )


apps = st.sampled_from(["recognizer", "transcoder", "web", "spark"])
cpu = st.integers(1, 64_000).map(lambda m: f"{m}m")
memory = st.integers(1, 256 * 1024).map(lambda m: f"{m}Mi")


@given(
    app=apps,
    namespace=st.sampled_from(["shop", "batch", "bigdata"]),
    limits=st.fixed_dictionaries({}, optional={"cpu": cpu, "memory": memory}),
    requests=st.fixed_dictionaries({}, optional={"cpu": cpu, "memory": memory}),
)
def test_what_edgefleet_renders_under_a_policy_never_breaks_it(
    app: str, namespace: str, limits: dict[str, str], requests: dict[str, str]
) -> None:
    rendered = with_policy(workload(app, namespace=namespace, limits=limits, requests=requests), POLICY)
    assert find_violations(POLICY, [("Deployment", rendered)], [], NODES, local=NIGHT) == []


def test_no_policy_no_findings() -> None:
    objects = [("Deployment", workload("recognizer", limits={"cpu": "2"}, requests={"cpu": "2"}))]
    assert find_violations(ClusterPolicy(), objects, [pod("web-1", "n3")], NODES, local=NIGHT) == []


# --- against a simulated central cluster ------------------------------------------------------------------------


@pytest.fixture
def inventory(tmp_path: Path) -> Inventory:
    (tmp_path / "sites").mkdir()
    return load_inventory(write_central(tmp_path / "sites"))


@pytest.fixture
def central(inventory: Inventory) -> Iterator[BackgroundCluster]:
    boxes = site_boxes(inventory, SiteId(CLUSTER))
    running = start_cluster_in_background(CLUSTER, boxes, controllers=True, pod_timing=PodTiming().scaled(0.05))
    yield running
    running.stop()


@pytest.fixture
def gateway(central: BackgroundCluster, tmp_path: Path) -> Iterator[KubernetesGateway]:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", {ClusterId(CLUSTER): central.url})
    built = KubernetesGateway(
        ClusterClients({ClusterId(CLUSTER): CLUSTER}, kubeconfig), clock=FakeClock(), timeouts=TEST_TIMEOUTS
    )
    yield built
    built.close()


def test_an_audit_of_a_simulated_central_cluster_finds_exactly_the_planted_violations(
    inventory: Inventory, gateway: KubernetesGateway
) -> None:
    cluster = inventory.clusters[ClusterId(CLUSTER)]
    c = cluster.id
    for name in ("shop", "media", "kube-system", "bigdata"):
        gateway.apply(c, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    general = {"edgefleet.io/host-group": "general"}
    # Compliant: edgefleet's own release (on the bigdata hosts it is granted), and a workload on ratio.
    release = load_release_text(RELEASE, "scan-upload-2.0.0.yaml", inventory)
    planted = [namespace(), *render(release, SiteId(CLUSTER), inventory, rollout_id="r1")]
    planted.append(workload("api", limits={"cpu": "2", "memory": "3Gi"}, requests={"cpu": "200m", "memory": "2Gi"},
                            node_selector=general))  # fmt: skip
    # Planted: requests off the ratio; an app of an anti-affinity group that avoids nobody; a pod on the exclusive
    # hosts at night; and in an unaudited namespace something that would be off-ratio.
    planted.append(workload("web", limits={"cpu": "2"}, requests={"cpu": "1"}, node_selector=general))
    planted.append(workload("video-transcode", namespace="media", node_selector=general))
    planted.append(workload("report", node_selector={"kubernetes.io/hostname": "central-x-node-03"}))
    planted.append(workload("dns", namespace="kube-system", limits={"cpu": "1"}, node_selector=general))
    # A Job off its ratio whose pod runs, and one that ran to completion long ago: only the first breaks anything.
    trainer = as_kind("Job", workload("train", limits={"cpu": "2"}, requests={"cpu": "2"}, node_selector=general))
    trainer["spec"]["template"]["metadata"]["annotations"] = {"sim.edgefleet.io/run-seconds": "3600"}
    quick = as_kind("Job", workload("quick", limits={"cpu": "2"}, requests={"cpu": "2"}, node_selector=general))
    quick["spec"]["template"]["metadata"]["annotations"] = {"sim.edgefleet.io/run-seconds": "0"}
    planted += [trainer, quick]
    for manifest in planted:
        gateway.apply(c, manifest)

    def all_running() -> bool:
        pods = gateway.list_pods(c).items
        phases = sorted(p["status"].get("phase", "") for p in pods)
        jobs = {j["metadata"]["name"]: j for j in gateway.list_objects(c, "Job").items}
        done = any(x.get("type") == "Complete" for x in (jobs["quick"].get("status") or {}).get("conditions") or [])
        return done and phases == ["Running"] * 7 + ["Succeeded"]

    wait_for(all_running, timeout=30, what="the planted workloads' pods to run")
    before = {(d["metadata"]["name"], d["metadata"]["resourceVersion"]) for d in gateway.list_deployments(c).items}
    night = FakeClock(NIGHT.timestamp())
    audit = audit_cluster(gateway, cluster, clock=night)
    found = [(f.namespace, f.kind, f.name, f.rule) for f in audit.findings]
    report_pod = next(
        p["metadata"]["name"] for p in gateway.list_pods(c).items if p["metadata"]["name"].startswith("report-")
    )
    assert found == [
        ("media", "Deployment", "video-transcode", "no-anti-affinity"),
        ("shop", "Deployment", "web", "off-ratio"),
        ("shop", "Job", "train", "off-ratio"),
        ("shop", "Pod", report_pod, "exclusive-host"),
    ]
    assert (audit.workloads, audit.pods, audit.has_policy) == (8, 8, True)
    # By day the bigdata hosts are anyone's.
    day = audit_cluster(gateway, cluster, clock=FakeClock(DAY.timestamp()))
    assert [f.rule for f in day.findings] == ["no-anti-affinity", "off-ratio", "off-ratio"]
    # The audit changed nothing.
    assert {
        (d["metadata"]["name"], d["metadata"]["resourceVersion"]) for d in gateway.list_deployments(c).items
    } == before
