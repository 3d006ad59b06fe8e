"""The company's own workloads in the simulated central clusters (issue 18): what a central cluster runs that
edgefleet did not deploy - an order API, billing, big-data jobs, monitoring, GPU jobs - so ``edgefleet clusters
audit``, ``clusters gpus``, batch restarts and event forwarding have something real to read in the demo.

``central_workloads(inventory, cluster, seed=...)`` (pure) returns the Namespaces, Deployments,
HorizontalPodAutoscalers, StatefulSets (``STATEFUL_APPS``: Kafka in ``bigdata``) and batch Jobs of one central
cluster; ``deploy_central_workloads`` creates them in its
store, as workloads that were there before the simulation began. Deterministic from the seed (replicas and versions are
drawn from ``random.Random`` seeded with the seed and the cluster), and only on clusters of role ``central``.

Every workload follows the cluster's policy (``edgefleet.policies``: requests from limits by the namespace's
ratio, the namespace's host group as a node selector, tolerations of the exclusive groups it may use,
anti-affinity against the other apps of its groups), except the planted violations (``PLANTED``), each planted
only where the policy has the rule it breaks:

- ``off-ratio``: ``billing/ledger`` requests its limits (a ratio above 1 is set);
- ``no-anti-affinity``: ``ml/video-transcode`` does not avoid the other apps of its anti-affinity group;
- ``exclusive-host``: ``order-api/report-export`` is pinned to the first exclusive host group that does not
  admit it, without the toleration; its pod breaks the policy while the group's window is open;
- ``job-off-ratio`` (``PLANTED_JOB``): the GPU training Job ``ml-training/llm-finetune`` requests its limits.

GPU and batch Jobs (``BATCHES``, in ``ml-training`` and ``bigdata``): some run (their pods run for hours, the
``sim.edgefleet.io/run-seconds`` annotation), some finished before the simulation began: those are stored with
the Complete or Failed status their controller left, dated before the seeding, and without their pods, as after
the team's clean-up. Not only for brevity: each box's agent reports every pod of its node as an app, and a
finished pod as an app not running, which the controller alerts on after a minute (``app_down_for_s``), so
finished pods left on the central nodes would fire alerts in every demo. GPU Jobs are seeded only where the
boxes have GPUs; running ones take theirs before the GPU Deployments do, so the planted one always runs there.

GPU Deployments (``ml``) are only seeded where the cluster's boxes have GPUs, at most as many GPUs as they have,
so every pod of them is scheduled. The images are ``harbor.central.local/platform/<app>:<version>`` (a registry the simulator does not
serve, so no pull fails): a crash-loop
fault with ``site`` the central site, ``app`` and ``version`` crashes their pods started after it (``sim fault
crash-loop --site central-sh-dc1 --app order-api --version 3.2.1``, then a restart of the Deployment).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Final

from edgefleet.clock import format_utc
from edgefleet.ids import ClusterId
from edgefleet.inventory import Inventory
from edgefleet.policies import (
    APP_LABEL,
    EXCLUSIVE_EFFECT,
    EXCLUSIVE_TAINT,
    ClusterPolicy,
    Ratios,
    requests_from_limits,
)
from simulator.cluster.nodes import GPU_RESOURCE
from simulator.cluster.pods import RUN_SECONDS_ANNOTATION
from simulator.cluster.resources import DEPLOYMENTS, HORIZONTAL_POD_AUTOSCALERS, JOBS, NAMESPACES, STATEFUL_SETS
from simulator.cluster.store import Store

# The company's own registry, which the simulator does not serve: its pulls are not simulated (no pull error).
REGISTRY: Final = "harbor.central.local/platform"
HOSTNAME_KEY: Final = "kubernetes.io/hostname"
OWNER_LABEL: Final = "team"
# What the teams request of their limits where no policy says: the platform's old overcommit, so a cluster without a
# policy holds the same pods.
TEAMS_RATIOS: Final = Ratios(cpu=Fraction(10), memory=Fraction(3, 2))


@dataclass(frozen=True, slots=True)
class App:
    name: str
    namespace: str
    cpu: str
    memory: str
    # Replicas are drawn from this range (inclusive); an autoscaled app's HPA spans it.
    replicas: tuple[int, int] = (1, 3)
    gpus: int = 0
    autoscaled: bool = False


# The company's apps, by namespace: limits as their teams set them; requests come from the policy.
APPS: Final[tuple[App, ...]] = (
    App("order-api", "order-api", "2", "3Gi", (2, 4), autoscaled=True),
    App("order-query", "order-api", "1", "1536Mi", (2, 3), autoscaled=True),
    App("order-writer", "order-api", "1", "1536Mi"),
    App("cart", "order-api", "500m", "768Mi", autoscaled=True),
    App("checkout", "order-api", "1", "1536Mi", autoscaled=True),
    App("payment-gateway", "order-api", "1", "1536Mi", (2, 2)),
    App("coupon", "order-api", "500m", "768Mi"),
    App("report-export", "order-api", "500m", "768Mi", (1, 1)),
    App("invoice", "billing", "1", "1536Mi"),
    App("ledger", "billing", "2", "3Gi", (1, 2)),
    App("settlement", "billing", "1", "1536Mi"),
    App("tax-calc", "billing", "500m", "768Mi", autoscaled=True),
    App("billing-report", "billing", "500m", "768Mi", (1, 1)),
    App("spark-driver", "bigdata", "2", "3Gi", (1, 1)),
    App("spark-executor", "bigdata", "2", "3Gi", (2, 3)),
    App("flink-jobmanager", "bigdata", "1", "1536Mi", (1, 1)),
    App("flink-taskmanager", "bigdata", "2", "3Gi", (2, 3)),
    App("hive-metastore", "bigdata", "1", "1536Mi", (1, 1)),
    App("prometheus", "monitoring", "2", "6Gi", (1, 1)),
    App("alertmanager", "monitoring", "500m", "768Mi", (1, 2)),
    App("grafana", "monitoring", "500m", "768Mi", (1, 1)),
    App("loki", "monitoring", "1", "3Gi", (1, 2)),
    App("blackbox-exporter", "monitoring", "250m", "384Mi", (1, 1)),
    App("video-transcode", "ml", "4", "6Gi", (2, 2), gpus=1),
    App("model-train", "ml", "4", "12Gi", (1, 1), gpus=2),
    App("feature-serving", "ml", "2", "3Gi", (1, 2), gpus=1),
    App("embedding", "ml", "2", "3Gi", (1, 1), gpus=1),
)
# The company's stateful apps (StatefulSets, a fixed number of replicas): the big-data team's Kafka brokers.
STATEFUL_APPS: Final[tuple[App, ...]] = (App("kafka", "bigdata", "1", "3Gi", (3, 3)),)
# What each planted violation is, as (namespace, app): the audit of a seeded cluster finds these and no other.
PLANTED: Final = {
    "off-ratio": ("billing", "ledger"),
    "no-anti-affinity": ("ml", "video-transcode"),
    "exclusive-host": ("order-api", "report-export"),
}
# The Job planted off its ratio (rule ``off-ratio``, kind Job): a GPU training run whose team asked for its limits.
PLANTED_JOB: Final = ("ml-training", "llm-finetune")

HOUR: Final = 3600.0


@dataclass(frozen=True, slots=True)
class Batch:
    """A batch Job: its limits per pod, GPUs per pod, and how it stands when the simulation begins: ``running``
    (its pods run ``run_hours`` from their start), or ``complete`` / ``failed``, having started ``started_hours``
    before the seeding and run ``run_hours``."""

    name: str
    namespace: str
    cpu: str
    memory: str
    state: str  # running, complete, failed
    gpus: int = 0
    completions: int = 1
    parallelism: int = 1
    run_hours: float = 1.0
    started_hours: float = 0.0


BATCHES: Final[tuple[Batch, ...]] = (
    Batch("llm-finetune", "ml-training", "2", "8Gi", "running", gpus=1, run_hours=12),
    Batch("embedding-refresh", "ml-training", "1", "4Gi", "running", gpus=1, completions=4, run_hours=6),
    Batch("resnet-nightly", "ml-training", "4", "12Gi", "complete", gpus=2, run_hours=3, started_hours=9),
    Batch(
        "batch-inference", "ml-training", "2", "4Gi", "complete", gpus=1, completions=4, parallelism=2,
        run_hours=0.5, started_hours=5,
    ),
    Batch("tokenizer-build", "ml-training", "2", "4Gi", "failed", gpus=1, run_hours=0.2, started_hours=4),
    Batch("daily-etl", "bigdata", "2", "3Gi", "complete", completions=3, run_hours=2, started_hours=7),
)  # fmt: skip


def image(app: str, version: str) -> str:
    return f"{REGISTRY}/{app}:{version}"


def central_workloads(inventory: Inventory, cluster: ClusterId, *, seed: int, now: float = 0.0) -> list[dict[str, Any]]:
    """The Namespaces, then the Deployments, HorizontalPodAutoscalers and StatefulSets, then the Jobs of
    ``cluster`` (the finished ones' times before ``now``); none unless it is a central cluster. Pure."""
    found = inventory.clusters.get(cluster)
    if found is None or found.role != "central":
        return []
    policy = found.policy
    boxes = [box for site in inventory.cluster_sites(cluster) for box in inventory.site_boxes(site.id)]
    gpus_left = sum(box.gpu.count for box in boxes if box.gpu is not None)
    draw = random.Random(f"{seed}:{cluster}")
    namespaces: list[str] = []
    out: list[dict[str, Any]] = []
    batches: list[dict[str, Any]] = []
    # GPU Jobs only where the boxes have GPUs; running ones take theirs first.
    for batch in BATCHES:
        if batch.gpus and (not gpus_left or (batch.state == "running" and batch.gpus * batch.parallelism > gpus_left)):
            continue
        if batch.state == "running":
            gpus_left -= batch.gpus * batch.parallelism
        batches.append(_job(batch, policy, now=now))
    for app in APPS:
        replicas = draw.randint(*app.replicas)
        version = f"{draw.randint(1, 4)}.{draw.randint(0, 9)}.{draw.randint(0, 9)}"
        if app.gpus:
            if replicas * app.gpus > gpus_left:
                continue
            gpus_left -= replicas * app.gpus
        if app.namespace not in namespaces:
            namespaces.append(app.namespace)
        out.append(_deployment(app, policy, replicas, version))
        if app.autoscaled:
            out.append(_autoscaler(app, replicas))
    for app in STATEFUL_APPS:
        # Drawn after every Deployment's, so adding one changes none of theirs.
        version = f"{draw.randint(1, 4)}.{draw.randint(0, 9)}.{draw.randint(0, 9)}"
        if app.namespace not in namespaces:
            namespaces.append(app.namespace)
        out.append(_stateful_set(app, policy, app.replicas[0], version))
    for job in batches:
        if job["metadata"]["namespace"] not in namespaces:
            namespaces.append(job["metadata"]["namespace"])
    return [_namespace(ns) for ns in namespaces] + out + batches


def deploy_central_workloads(store: Store, inventory: Inventory, cluster: ClusterId, *, seed: int) -> int:
    """Create ``cluster``'s own workloads in its store; returns how many Deployments."""
    deployments = 0
    for obj in central_workloads(inventory, cluster, seed=seed, now=store.now()):
        namespace = obj["metadata"].get("namespace")
        if obj["kind"] == "Namespace":
            store.create(NAMESPACES, obj)
        elif obj["kind"] == "Deployment":
            store.create(DEPLOYMENTS, obj, namespace)
            deployments += 1
        elif obj["kind"] == "Job":
            store.create(JOBS, obj, namespace)
        elif obj["kind"] == "StatefulSet":
            store.create(STATEFUL_SETS, obj, namespace)
        else:
            store.create(HORIZONTAL_POD_AUTOSCALERS, obj, namespace)
    return deployments


def _namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {OWNER_LABEL: name}}}


def _planted(rule: str, app: App) -> bool:
    return PLANTED[rule] == (app.namespace, app.name)


def _deployment(app: App, policy: ClusterPolicy, replicas: int, version: str) -> dict[str, Any]:
    limits: dict[str, str] = {"cpu": app.cpu, "memory": app.memory}
    if _planted("off-ratio", app) and any(policy.ratios_in(app.namespace).of(r) for r in ("cpu", "memory")):
        requests = dict(limits)
    else:
        # The teams' own requests where the policy sets no ratio; the policy's where it does.
        own = requests_from_limits(limits, {}, TEAMS_RATIOS)
        requests = requests_from_limits(limits, own, policy.ratios_in(app.namespace))
    if app.gpus:
        limits[GPU_RESOURCE] = requests[GPU_RESOURCE] = str(app.gpus)
    labels = {APP_LABEL: app.name}
    pod: dict[str, Any] = {
        "containers": [
            {"name": app.name, "image": image(app.name, version), "resources": {"requests": requests, "limits": limits}}
        ]
    }
    node_selector, tolerations, kept_off = _placement(app, policy)
    if node_selector:
        pod["nodeSelector"] = node_selector
    if tolerations:
        pod["tolerations"] = tolerations
    affinity: dict[str, Any] = {}
    if kept_off:
        term = {"matchExpressions": [{"key": k, "operator": "NotIn", "values": [v]} for k, v in kept_off]}
        affinity["nodeAffinity"] = {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}
    avoided = [] if _planted("no-anti-affinity", app) else policy.avoided_by(app.name)
    if avoided:
        affinity["podAntiAffinity"] = {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "podAffinityTerm": {
                        "labelSelector": {
                            "matchExpressions": [{"key": APP_LABEL, "operator": "In", "values": avoided}]
                        },
                        "topologyKey": HOSTNAME_KEY,
                    },
                }
            ]
        }
    if affinity:
        pod["affinity"] = affinity
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": app.name, "namespace": app.namespace, "labels": {**labels, OWNER_LABEL: app.namespace}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }


def _placement(app: App, policy: ClusterPolicy) -> tuple[dict[str, str], list[dict[str, str]], list[tuple[str, str]]]:
    """The node selector (the namespace's host group), the tolerations (the exclusive groups it may use) and the
    labels of the exclusive groups it may not use, to keep off (what their taint does once the controller puts
    it on; the seeded pods are placed before it runs). The planted intruder is pinned to an exclusive group that
    does not admit it, without a toleration."""
    if _planted("exclusive-host", app):
        for entry in policy.exclusive:
            if not entry.admits(app.namespace, app.name) and policy.host_groups.get(entry.host_group):
                return dict(policy.host_groups[entry.host_group]), [], []
    group = policy.host_group_in(app.namespace)
    selector = dict(policy.host_groups.get(group, {})) if group is not None else {}
    tolerations = [
        {"key": EXCLUSIVE_TAINT, "operator": "Equal", "value": e.host_group, "effect": EXCLUSIVE_EFFECT}
        for e in policy.exclusive_for(app.namespace, app.name)
    ]
    kept_off = sorted(
        {
            # One label of the group is enough to keep off it (a superset of its nodes).
            min(policy.host_groups[e.host_group].items())
            for e in policy.exclusive
            if not e.admits(app.namespace, app.name) and policy.host_groups.get(e.host_group)
        }
    )
    return selector, tolerations, kept_off


def _stateful_set(app: App, policy: ClusterPolicy, replicas: int, version: str) -> dict[str, Any]:
    """A StatefulSet under the policy: the Deployment's template and selector, with a headless service's name."""
    made = _deployment(app, policy, replicas, version)
    made["kind"] = "StatefulSet"
    made["spec"]["serviceName"] = f"{app.name}-headless"
    return made


def _job(batch: Batch, policy: ClusterPolicy, *, now: float) -> dict[str, Any]:
    """A batch Job under the policy (the planted one off its ratio); a finished one with the status its controller
    left, dated before ``now``."""
    app = App(batch.name, batch.namespace, batch.cpu, batch.memory, (1, 1), gpus=batch.gpus)
    template = _deployment(app, policy, 1, "1.0.0")["spec"]["template"]
    if (batch.namespace, batch.name) == PLANTED_JOB and any(
        policy.ratios_in(batch.namespace).of(r) for r in ("cpu", "memory")
    ):
        resources = template["spec"]["containers"][0]["resources"]
        resources["requests"] = {**resources["limits"]}
    template["spec"]["restartPolicy"] = "Never"
    run_seconds = batch.run_hours * HOUR
    template["metadata"]["annotations"] = {RUN_SECONDS_ANNOTATION: f"{run_seconds:g}"}
    job: dict[str, Any] = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": batch.name,
            "namespace": batch.namespace,
            "labels": {APP_LABEL: batch.name, OWNER_LABEL: batch.namespace},
        },
        "spec": {
            "completions": batch.completions,
            "parallelism": batch.parallelism,
            "backoffLimit": 2,
            "template": template,
        },
    }
    if batch.state != "running":
        job["status"] = _finished_status(batch, backoff_limit=job["spec"]["backoffLimit"], now=now)
    return job


def _finished_status(batch: Batch, *, backoff_limit: int, now: float) -> dict[str, Any]:
    """The status the Job controller left on a Job that finished: Complete after all its completions, or Failed
    past its backoff limit, ``started_hours`` before ``now`` and ``run_hours`` long."""
    started = now - batch.started_hours * HOUR
    ended = started + batch.run_hours * HOUR
    if batch.state == "complete":
        kinds, reason, message = (
            ("SuccessCriteriaMet", "Complete"),
            "CompletionsReached",
            "Reached expected number of succeeded pods",
        )
    else:
        kinds, reason, message = (
            ("FailureTarget", "Failed"),
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        )
    stamp = format_utc(ended)
    status: dict[str, Any] = {
        "conditions": [
            {
                "type": kind,
                "status": "True",
                "lastProbeTime": stamp,
                "lastTransitionTime": stamp,
                "reason": reason,
                "message": message,
            }
            for kind in kinds
        ],
        "startTime": format_utc(started),
        "ready": 0,
        "terminating": 0,
        "uncountedTerminatedPods": {},
    }
    if batch.state == "complete":
        status["completionTime"] = stamp
        status["succeeded"] = batch.completions
    else:
        status["failed"] = backoff_limit + 1
    return status


def _autoscaler(app: App, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": app.name, "namespace": app.namespace, "labels": {OWNER_LABEL: app.namespace}},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": app.name},
            "minReplicas": replicas,
            "maxReplicas": replicas * 3,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
                }
            ],
        },
    }
