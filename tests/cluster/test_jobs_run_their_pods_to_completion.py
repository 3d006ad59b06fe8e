"""batch/v1 Jobs in a simulated cluster: the API server's defaults, generated selector and labels, and its refusal
of a template that restarts Always; the pure Job controller step (``jobs.plan_job``, table- and property-tested);
and the controllers' shell on a fake clock, where a Job's pods run for their run time, Succeed, and the Job turns
Complete, a failing one stops at its backoff limit, and deleting a Job deletes its pods. Deployments' pods keep
running as before."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgefleet.clock import FakeClock, format_utc
from simulator.cluster import admission
from simulator.cluster.admission import FieldsInvalid
from simulator.cluster.controlling import WorkloadControllers
from simulator.cluster.jobs import backoff, finished, plan_job
from simulator.cluster.matching import condition
from simulator.cluster.nodes import ClusterBox, seed_cluster
from simulator.cluster.pods import EXIT_CODE_ANNOTATION, RUN_SECONDS_ANNOTATION, PodTiming
from simulator.cluster.resources import DEPLOYMENTS, EVENTS, JOBS, PODS
from simulator.cluster.store import Store
from simulator.cluster.tables import table

NOW = 1_800_000_000.0
TIMING = PodTiming(pull_s=2.0, crash_after_s=1.0, backoff_s=10.0, max_backoff_s=40.0, run_s=5.0)


def job(
    name: str = "train",
    *,
    restart: str | None = "Never",
    annotations: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    pod_spec: dict[str, Any] = {"containers": [{"name": "train", "image": "registry.example/train:1"}]}
    if restart is not None:
        pod_spec["restartPolicy"] = restart
    template: dict[str, Any] = {"spec": pod_spec}
    if annotations:
        template["metadata"] = {"annotations": annotations}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}, "spec": {**spec, "template": template}}


# --- the API server ---------------------------------------------------------------------------------------------


def test_a_job_is_stored_with_the_api_servers_defaults_selector_and_labels() -> None:
    store = Store(FakeClock(NOW), cluster="test", admit=admission.admit)
    stored = store.create(JOBS, job(), "ml")
    uid = stored["metadata"]["uid"]
    spec = stored["spec"]
    assert (spec["completions"], spec["parallelism"], spec["backoffLimit"]) == (1, 1, 6)
    assert spec["completionMode"] == "NonIndexed"
    assert spec["suspend"] is False
    assert spec["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    generated = {
        "batch.kubernetes.io/controller-uid": uid,
        "batch.kubernetes.io/job-name": "train",
        "controller-uid": uid,
        "job-name": "train",
    }
    assert spec["template"]["metadata"]["labels"] == generated
    assert stored["metadata"]["labels"] == generated  # a Job without labels takes its template's
    assert stored["metadata"]["generation"] == 1
    # A work queue (parallelism without completions) keeps completions unset.
    queue = store.create(JOBS, job("queue", parallelism=3), "ml")
    assert "completions" not in queue["spec"]
    assert queue["spec"]["parallelism"] == 3


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        (
            job(restart=None),
            'Job.batch "train" is invalid: spec.template.spec.restartPolicy: Unsupported value: "Always": '
            'supported values: "OnFailure", "Never"',
        ),
        (
            job(restart="Always"),
            'Job.batch "train" is invalid: spec.template.spec.restartPolicy: Unsupported value: "Always": '
            'supported values: "OnFailure", "Never"',
        ),
        (
            {"metadata": {"name": "train"}, "spec": {"template": {"spec": {"restartPolicy": "Never"}}}},
            'Job.batch "train" is invalid: spec.template.spec.containers: Required value',
        ),
        (
            job(backoffLimit=-1),
            'Job.batch "train" is invalid: spec.backoffLimit: Invalid value: -1: must be greater than or equal to 0',
        ),
    ],
)
def test_the_api_server_refuses_a_job_it_cannot_run(manifest: dict[str, Any], message: str) -> None:
    store = Store(FakeClock(NOW), cluster="test", admit=admission.admit)
    with pytest.raises(FieldsInvalid) as refused:
        store.create(JOBS, manifest, "ml")
    assert refused.value.message == message
    assert refused.value.status()["code"] == 422
    assert not store.list_objects(JOBS).items


# --- the pure step ----------------------------------------------------------------------------------------------


def stored_job(**spec: Any) -> dict[str, Any]:
    store = Store(FakeClock(NOW), cluster="test", admit=admission.admit)
    return store.create(JOBS, job(**spec), "ml")


def pod(name: str, phase: str, *, ready: bool = False, restarts: int = 0, finished_at: float = NOW) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase}
    if ready:
        status["conditions"] = [{"type": "Ready", "status": "True", "lastTransitionTime": format_utc(NOW - 60)}]
    state: dict[str, Any] = {"running": {}}
    if phase in ("Succeeded", "Failed"):
        state = {"terminated": {"exitCode": 0 if phase == "Succeeded" else 1, "finishedAt": format_utc(finished_at)}}
    status["containerStatuses"] = [{"name": "train", "restartCount": restarts, "state": state}]
    return {
        "metadata": {"name": name, "creationTimestamp": format_utc(NOW - 120)},
        "spec": {"nodeName": "gpu-01"},
        "status": status,
    }


@pytest.mark.parametrize(
    ("spec", "pods", "create", "deleted", "counts", "verdict"),
    [
        # A new Job starts its one pod.
        ({}, [], 1, 0, {"active": 1, "ready": 0}, None),
        # Parallel, with completions left: no more than the completions still wanted.
        ({"completions": 5, "parallelism": 3}, [pod("a", "Succeeded")] * 3, 2, 0, {"active": 2, "succeeded": 3}, None),
        (
            {"completions": 3, "parallelism": 2},
            [pod("a", "Running", ready=True)],
            1,
            0,
            {"active": 2, "ready": 1},
            None,
        ),
        # Enough succeeded: Complete, nothing more started.
        ({"completions": 2}, [pod("a", "Succeeded"), pod("b", "Succeeded")], 0, 0, {"succeeded": 2}, "Complete"),
        # A work queue: complete when one succeeded and none runs; no new pod once one succeeded.
        ({"parallelism": 2}, [pod("a", "Succeeded"), pod("b", "Running")], 0, 0, {"active": 1}, None),
        ({"parallelism": 2}, [pod("a", "Succeeded"), pod("b", "Succeeded")], 0, 0, {"succeeded": 2}, "Complete"),
        # Failures past backoffLimit: Failed, the running pods deleted.
        (
            {"backoffLimit": 1, "parallelism": 2, "completions": 4},
            [pod("a", "Failed"), pod("b", "Failed"), pod("c", "Running")],
            0,
            1,
            {"failed": 2},
            "Failed",
        ),
        # Under OnFailure container restarts count against the limit.
        ({"backoffLimit": 2}, [pod("a", "Running", restarts=3)], 0, 1, {}, "Failed"),
        # Within the limit, a failed pod is replaced only after the back-off.
        ({"backoffLimit": 3}, [pod("a", "Failed", finished_at=NOW - 5)], 0, 0, {"failed": 1}, None),
        ({"backoffLimit": 3}, [pod("a", "Failed", finished_at=NOW - 11)], 1, 0, {"failed": 1, "active": 1}, None),
        # Suspended: its pods go.
        ({"suspend": True}, [pod("a", "Running")], 0, 1, {}, None),
        # Past its active deadline.
        ({"activeDeadlineSeconds": 0}, [pod("a", "Running")], 0, 1, {}, "Failed"),
    ],
)
def test_the_job_step(
    spec: dict[str, Any],
    pods: list[dict[str, Any]],
    create: int,
    deleted: int,
    counts: dict[str, int],
    verdict: str | None,
) -> None:
    restart = "OnFailure" if any(p["status"]["containerStatuses"][0]["restartCount"] for p in pods) else "Never"
    made = stored_job(restart=restart, **spec)
    named = [copy.deepcopy(p) | {"metadata": {**p["metadata"], "name": f"p{i}"}} for i, p in enumerate(pods)]
    plan = plan_job(made, named, now=NOW)
    assert (plan.create, len(plan.delete)) == (create, deleted)
    for key, value in counts.items():
        assert plan.status.get(key, 0) == value, key
    types = [c["type"] for c in plan.status.get("conditions", [])]
    if verdict == "Complete":
        assert types == ["SuccessCriteriaMet", "Complete"]
        assert plan.status["completionTime"] == format_utc(NOW)
        assert plan.events == (("Normal", "Completed", "Job completed"),)
    elif verdict == "Failed":
        assert types == ["FailureTarget", "Failed"]
        assert plan.events[0][0] == "Warning"
        assert "completionTime" not in plan.status
    else:
        assert types == []


def test_a_failed_pod_is_replaced_once_the_back_off_is_over() -> None:
    made = stored_job(backoffLimit=3)
    plan = plan_job(made, [pod("a", "Failed", finished_at=NOW - 5)], now=NOW)
    assert plan.create == 0
    assert plan.wake_at == NOW - 5 + backoff(1)


phases = st.sampled_from(["Pending", "Running", "Succeeded", "Failed"])


@settings(max_examples=200, deadline=None)
@given(
    completions=st.none() | st.integers(0, 6),
    parallelism=st.integers(0, 5),
    backoff_limit=st.integers(0, 4),
    shown=st.lists(phases, max_size=10),
    later=st.floats(0, 1000),
)
def test_the_job_step_keeps_its_bounds(
    completions: int | None, parallelism: int, backoff_limit: int, shown: list[str], later: float
) -> None:
    spec: dict[str, Any] = {"parallelism": parallelism, "backoffLimit": backoff_limit}
    if completions is not None:
        spec["completions"] = completions
    made = stored_job(**spec)
    pods = [pod(f"p{i}", phase, finished_at=NOW - 400) for i, phase in enumerate(shown)]
    plan = plan_job(made, pods, now=NOW + later)
    active = sum(1 for phase in shown if phase in ("Pending", "Running"))
    succeeded = shown.count("Succeeded")
    # Never more running than parallelism allows, never more than the completions still wanted.
    after = active - len(plan.delete) + plan.create
    assert after == plan.status.get("active", 0)
    assert plan.create == 0 or after <= parallelism
    if completions is not None:
        assert plan.create == 0 or after <= completions - succeeded
    verdict = finished({**made, "status": plan.status})
    if verdict is not None:
        # A finished Job runs nothing: every pod still running goes, none starts.
        assert plan.create == 0
        assert len(plan.delete) == active
        assert plan_job({**made, "status": plan.status}, pods, now=NOW + later + 1).create == 0
    if shown.count("Failed") > backoff_limit:
        assert verdict == "Failed"
    # Running the step again on what it wrote changes nothing (level-triggered).
    again = plan_job({**made, "status": plan.status}, pods, now=NOW + later)
    if plan.create == 0 and not plan.delete:
        assert again.status == plan.status
        assert not again.events


# --- the controllers on a fake clock -------------------------------------------------------------------------


class Cluster:
    def __init__(self) -> None:
        self.clock = FakeClock(NOW)
        self.store = Store(self.clock, cluster="test", admit=admission.admit)
        boxes = [ClusterBox(f"site-a-gpu-0{i}", "site-a", 2, node_group="site-a") for i in (1, 2)]
        seed_cluster(self.store, boxes, now=self.clock.now())
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

    def job(self, name: str) -> dict[str, Any]:
        return self.store.get(JOBS, "ml", name)

    def pods(self, name: str) -> list[dict[str, Any]]:
        return [
            p
            for p in self.store.list_objects(PODS).items
            if (p["metadata"].get("labels") or {}).get("job-name") == name
        ]


def test_a_jobs_pods_run_for_their_run_time_and_the_job_completes() -> None:
    cluster = Cluster()
    cluster.store.create(JOBS, job(completions=2, parallelism=2, annotations={RUN_SECONDS_ANNOTATION: "30"}), "ml")
    cluster.run(10)
    running = cluster.pods("train")
    assert len(running) == 2
    assert {p["status"]["phase"] for p in running} == {"Running"}
    owner = running[0]["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("Job", "train", True)
    assert running[0]["metadata"]["name"].startswith("train-")
    status = cluster.job("train")["status"]
    assert (status["active"], status["ready"]) == (2, 2)
    assert "completionTime" not in status
    row = table(JOBS, [cluster.job("train")], now=cluster.clock.now())["rows"][0]["cells"]
    assert row[:4] == ["train", "Running", "0/2", "10s"]

    cluster.run(30)
    done = cluster.pods("train")
    assert {p["status"]["phase"] for p in done} == {"Succeeded"}
    terminated = done[0]["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (0, "Completed")
    assert (condition(done[0], "Ready") or {}).get("reason") == "PodCompleted"
    assert table(PODS, done, now=cluster.clock.now())["rows"][0]["cells"][1:3] == ["0/1", "Completed"]
    finished_job = cluster.job("train")
    assert (condition(finished_job, "Complete") or {}).get("status") == "True"
    assert finished_job["status"]["succeeded"] == 2
    assert "active" not in finished_job["status"]
    row = table(JOBS, [finished_job], now=cluster.clock.now() + 3600)["rows"][0]["cells"]
    assert row[:4] == ["train", "Complete", "2/2", "32s"]  # 2 s to pull, 30 s to run
    reasons = [e["reason"] for e in cluster.store.list_objects(EVENTS).items if e["involvedObject"]["kind"] == "Job"]
    assert reasons.count("SuccessfulCreate") == 2
    assert reasons[-1] == "Completed"
    # Nothing more happens to a finished Job or its pods.
    versions = (finished_job["metadata"]["resourceVersion"], [p["metadata"]["resourceVersion"] for p in done])
    cluster.run(60)
    assert versions == (
        cluster.job("train")["metadata"]["resourceVersion"],
        [p["metadata"]["resourceVersion"] for p in cluster.pods("train")],
    )


def test_a_failing_job_stops_at_its_backoff_limit() -> None:
    cluster = Cluster()
    failing = job(backoffLimit=1, annotations={RUN_SECONDS_ANNOTATION: "1", EXIT_CODE_ANNOTATION: "3"})
    cluster.store.create(JOBS, failing, "ml")
    cluster.run(60)
    pods = cluster.pods("train")
    assert [p["status"]["phase"] for p in pods] == ["Failed", "Failed"]
    assert pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3
    failed = cluster.job("train")
    assert (condition(failed, "Failed") or {}).get("reason") == "BackoffLimitExceeded"
    assert failed["status"]["failed"] == 2
    assert table(JOBS, [failed], now=cluster.clock.now())["rows"][0]["cells"][1:3] == ["Failed", "0/1"]


def test_deleting_a_job_deletes_its_pods_and_deployments_pods_keep_running() -> None:
    cluster = Cluster()
    cluster.store.create(JOBS, job(annotations={RUN_SECONDS_ANNOTATION: "600"}), "ml")
    web = {
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}, "annotations": {RUN_SECONDS_ANNOTATION: "1"}},
                "spec": {"containers": [{"name": "web", "image": "web:1"}]},
            },
        },
    }
    cluster.store.create(DEPLOYMENTS, web, "ml")
    cluster.run(20)
    assert len(cluster.pods("train")) == 1
    cluster.store.delete(JOBS, "ml", "train")
    cluster.run(120)
    assert cluster.pods("train") == []
    (web_pod,) = [p for p in cluster.store.list_objects(PODS).items if p["metadata"]["labels"].get("app") == "web"]
    assert web_pod["status"]["phase"] == "Running"  # restartPolicy Always: the annotation does not end it
