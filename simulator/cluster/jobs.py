"""The Job controller's decision, as kube-controller-manager's for a NonIndexed Job: how many pods to start, which
to delete, and the status (``active``, ``ready``, ``succeeded``, ``failed``, ``terminating``, ``startTime``,
``completionTime``, ``conditions``).

- Up to ``parallelism`` pods run at once, never more than the completions still wanted; a Job without
  ``completions`` (a work queue) starts no more once one pod succeeded and is Complete when one has and none runs.
- A pod that fails (phase Failed under ``restartPolicy: Never``; under ``OnFailure`` each container restart) counts
  against ``backoffLimit``: past it the Job is Failed (``BackoffLimitExceeded``) and its running pods are deleted. A
  failed pod is replaced after the controller's back-off (10 s doubling, at most 6 minutes).
- ``activeDeadlineSeconds`` after ``startTime`` the Job is Failed (``DeadlineExceeded``) likewise.
- A finished Job carries ``SuccessCriteriaMet`` then ``Complete`` (or ``FailureTarget`` then ``Failed``), as the
  controller of Kubernetes 1.31+ writes them, and never starts a pod again. ``suspend: true`` deletes the running pods.

Counts never go down: a finished pod deleted later stays counted (the real controller tracks them with a
finalizer; here the previous status is the memory). Indexed Jobs, pod failure policies and success policies are
not simulated. Pure; ``controlling`` lists the pods, applies the plan and records the events.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from edgefleet.clock import format_utc
from simulator.cluster.matching import Obj, condition, pod_active, pod_ready_since
from simulator.cluster.nodes import parse_time

# The labels the API server puts on a Job's template (and so its pods), the prefixed first: the selector uses it.
CONTROLLER_UID_LABELS: Final = ("batch.kubernetes.io/controller-uid", "controller-uid")
JOB_NAME_LABELS: Final = ("batch.kubernetes.io/job-name", "job-name")
COMPONENT: Final = "job-controller"
# The Job controller's pod failure back-off (DefaultJobPodFailureBackOff, MaxJobPodFailureBackOff).
BACKOFF_S: Final = 10.0
MAX_BACKOFF_S: Final = 360.0

EventType = Literal["Normal", "Warning"]


@dataclass(frozen=True, slots=True)
class JobPlan:
    create: int
    delete: tuple[str, ...]
    status: Obj
    events: tuple[tuple[EventType, str, str], ...] = ()
    # When the controller must look again: a failed pod's back-off over, the active deadline reached.
    wake_at: float | None = None


def finished(job: Obj) -> str | None:
    """``Complete`` or ``Failed`` for a finished Job, else None."""
    for kind in ("Complete", "Failed"):
        if (condition(job, kind) or {}).get("status") == "True":
            return kind
    return None


def _restarts(pod: Obj) -> int:
    return sum(int(c.get("restartCount", 0)) for c in (pod.get("status") or {}).get("containerStatuses") or [])


def _finished_at(pod: Obj) -> float:
    """When a pod's containers last exited (its creation if it never ran)."""
    found = [
        parse_time(str(((c.get("state") or {}).get("terminated") or {}).get("finishedAt") or ""))
        for c in (pod.get("status") or {}).get("containerStatuses") or []
    ]
    times = [t for t in found if t is not None]
    return max(times) if times else parse_time(str(pod["metadata"].get("creationTimestamp", ""))) or 0.0


def _deletion_rank(pod: Obj) -> tuple[object, ...]:
    """Lower ranks are deleted first: unscheduled, then not ready, then the newest."""
    created = parse_time(str(pod["metadata"].get("creationTimestamp", ""))) or 0.0
    return (
        1 if (pod.get("spec") or {}).get("nodeName") else 0,
        0 if pod_ready_since(pod) is None else 1,
        -created,
        pod["metadata"]["name"],
    )


def _condition(kind: str, reason: str, message: str, stamp: str) -> Obj:
    return {
        "type": kind,
        "status": "True",
        "lastProbeTime": stamp,
        "lastTransitionTime": stamp,
        "reason": reason,
        "message": message,
    }


def backoff(failures: int) -> float:
    """How long after its latest pod failure the controller waits before it starts a replacement."""
    return float(min(MAX_BACKOFF_S, BACKOFF_S * 2 ** max(0, failures - 1)))


def plan_job(job: Obj, pods: list[Obj], *, now: float) -> JobPlan:
    """``pods``: the pods the Job controls (active or not)."""
    spec = job.get("spec") or {}
    old = job.get("status") or {}
    parallelism = int(spec.get("parallelism", 1))
    completions = spec.get("completions")
    backoff_limit = int(spec.get("backoffLimit", 6))
    deadline = spec.get("activeDeadlineSeconds")
    on_failure = ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy") == "OnFailure"
    active = [p for p in pods if pod_active(p)]
    phase = [str((p.get("status") or {}).get("phase")) for p in pods]
    succeeded = max(int(old.get("succeeded", 0)), phase.count("Succeeded"))
    failed_pods = [p for p in pods if (p.get("status") or {}).get("phase") == "Failed"]
    failed = max(int(old.get("failed", 0)), len(failed_pods))
    # Under OnFailure the kubelet restarts the container in place: each restart is a failure against the limit.
    restarts = sum(_restarts(p) for p in active) if on_failure else 0
    start = parse_time(str(old.get("startTime") or "")) if old.get("startTime") else None
    stamp = format_utc(now)
    status: Obj = {}
    events: list[tuple[EventType, str, str]] = []
    create = 0
    delete: list[str] = []
    wake_at: float | None = None
    done = finished(job)

    if done is not None:
        conditions = list(old.get("conditions") or [])
        delete = [p["metadata"]["name"] for p in active]
    else:
        conditions = [c for c in old.get("conditions") or [] if c.get("type") not in ("Suspended",)]
        suspended = bool(spec.get("suspend"))
        if start is None and not suspended:
            start = now
        verdict: tuple[str, str, str] | None = None  # the terminal condition, its reason and message
        if failed + restarts > backoff_limit:
            verdict = ("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
        elif deadline is not None and start is not None and now >= start + float(deadline):
            verdict = ("Failed", "DeadlineExceeded", "Job was active longer than specified deadline")
        elif (completions is not None and succeeded >= int(completions)) or (
            completions is None and succeeded > 0 and not active
        ):
            verdict = ("Complete", "CompletionsReached", "Reached expected number of succeeded pods")
        if verdict is not None:
            kind, reason, message = verdict
            interim = "SuccessCriteriaMet" if kind == "Complete" else "FailureTarget"
            conditions += [_condition(interim, reason, message, stamp), _condition(kind, reason, message, stamp)]
            delete = [p["metadata"]["name"] for p in active]
            if kind == "Complete":
                events.append(("Normal", "Completed", "Job completed"))
            else:
                events.append(("Warning", reason, message))
            done = kind
        elif suspended:
            delete = [p["metadata"]["name"] for p in active]
        else:
            if completions is None:
                wanted = len(active) if succeeded > 0 else parallelism
            else:
                wanted = min(parallelism, int(completions) - succeeded)
            if len(active) > wanted:
                doomed = sorted(active, key=_deletion_rank)[: len(active) - wanted]
                delete = [p["metadata"]["name"] for p in doomed]
            elif len(active) < wanted:
                latest_failure = max((_finished_at(p) for p in failed_pods), default=None)
                ready_at = None if latest_failure is None else latest_failure + backoff(len(failed_pods))
                if ready_at is not None and now < ready_at:
                    wake_at = ready_at
                else:
                    create = wanted - len(active)
            if deadline is not None and start is not None:
                ends = start + float(deadline)
                wake_at = ends if wake_at is None else min(wake_at, ends)

    status["conditions"] = conditions
    if start is not None:
        status["startTime"] = format_utc(start)
    if done == "Complete":
        status["completionTime"] = old.get("completionTime") or stamp
    status["active"] = len(active) - len(delete) + create
    status["ready"] = sum(1 for p in active if pod_ready_since(p) is not None and p["metadata"]["name"] not in delete)
    status["succeeded"] = succeeded
    status["failed"] = failed
    status["terminating"] = 0
    status["uncountedTerminatedPods"] = {}
    # The API server drops zero counts (omitempty); ready and terminating are pointers, so their zeros stay.
    status = {k: v for k, v in status.items() if v or k in ("ready", "terminating", "uncountedTerminatedPods")}
    return JobPlan(create, tuple(delete), status, tuple(events), wake_at)
