"""Batch restart (``edgefleet restart --cluster C``, ``POST /api/v1/clusters/{name}/restart``): every Deployment of a
cluster (or of a namespace, or matching a label selector) restarted the way ``kubectl rollout restart`` does it
(the gateway's ``restart``: a new ``restartedAt`` annotation on the pod template), in batches of at most
``max_in_flight``, each batch waited for until every Deployment in it has rolled out by kubectl's rule
(``rollout_progress``). The first Deployment that fails - its controller reports ``ProgressDeadlineExceeded``, or
it is not complete within its ``progressDeadlineSeconds`` plus a margin - stops the restart: no further batch is
started, and the rest are reported as not started. An emergency tool, so it never retries on its own.

``select`` and ``batches`` are pure; ``restart_deployments`` is the shell: it reads and writes through the gateway,
reads time from the injected clock and waits with the injected ``sleep``, and tells each step to ``report`` as it
happens (the API keeps them for the command's progress; the audit records them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from edgefleet.clock import Clock
from edgefleet.cloud.k8s.errors import ClusterError
from edgefleet.cloud.k8s.gateway import ClusterGateway
from edgefleet.ids import ClusterId

# kube-controller-manager's default progressDeadlineSeconds, for a Deployment that does not say.
DEFAULT_PROGRESS_DEADLINE_S: Final = 600.0
# Past the Deployment's own deadline, how long to wait for its controller to say so before calling it failed
# ourselves: the controller checks progress on its resync, not to the second.
DEADLINE_MARGIN_S: Final = 30.0
# How often a batch's Deployments are read while they roll out (kubectl rollout status watches; a poll a second
# costs a GET per Deployment in flight).
POLL_S: Final = 1.0

StepState = Literal["restarting", "rolled-out", "failed"]


@dataclass(frozen=True, slots=True, order=True)
class Target:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class Step:
    """One thing that happened to one Deployment: restarted, rolled out, or failed (with kubectl's message)."""

    target: Target
    state: StepState
    at: float
    message: str


@dataclass(slots=True)
class Outcome:
    restarted: list[Target] = field(default_factory=list)
    failed: Target | None = None
    reason: str | None = None
    not_started: list[Target] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed is None


def select(deployments: Iterable[Mapping[str, Any]]) -> list[Target]:
    """The Deployments listed (already filtered by namespace and selector by the API server), in a stable order:
    by namespace, then name."""
    return sorted(
        Target(str(d["metadata"].get("namespace") or "default"), str(d["metadata"]["name"])) for d in deployments
    )


def batches(targets: list[Target], max_in_flight: int) -> list[list[Target]]:
    """``targets`` in order, at most ``max_in_flight`` at a time; raises ValueError for fewer than 1."""
    if max_in_flight < 1:
        raise ValueError(f"max in flight is {max_in_flight}; restart at least 1 Deployment at a time")
    return [targets[i : i + max_in_flight] for i in range(0, len(targets), max_in_flight)]


def _deadline_s(deployment: Mapping[str, Any]) -> float:
    value = (deployment.get("spec") or {}).get("progressDeadlineSeconds")
    return float(value) if isinstance(value, int) and value > 0 else DEFAULT_PROGRESS_DEADLINE_S


def restart_deployments(
    gateway: ClusterGateway,
    cluster: ClusterId,
    targets: list[Target],
    *,
    max_in_flight: int,
    clock: Clock,
    sleep: Callable[[float], None],
    report: Callable[[Step], None],
    poll_s: float = POLL_S,
    margin_s: float = DEADLINE_MARGIN_S,
) -> Outcome:
    """Restart ``targets`` in batches; stops at the first that fails. A Deployment that cannot be read or
    patched fails the restart as well (its gateway error is the reason)."""
    outcome = Outcome()
    planned = batches(targets, max_in_flight)
    for number, batch in enumerate(planned):
        deadlines: dict[Target, float] = {}
        for target in batch:
            try:
                restarted = gateway.restart(cluster, "Deployment", target.namespace, target.name, at=clock.now())
            except ClusterError as exc:
                return _stop(outcome, target, f"cannot restart: {exc}", planned, number, batch, clock, report)
            deadlines[target] = clock.monotonic() + _deadline_s(restarted) + margin_s
            outcome.restarted.append(target)
            report(Step(target, "restarting", clock.now(), f"deployment.apps/{target.name} restarted"))
        waiting = list(batch)
        while waiting:
            for target in list(waiting):
                try:
                    progress = gateway.rollout_progress(cluster, "Deployment", target.namespace, target.name)
                except ClusterError as exc:
                    return _stop(outcome, target, f"cannot read it: {exc}", planned, number, batch, clock, report)
                if progress.done:
                    waiting.remove(target)
                    report(Step(target, "rolled-out", clock.now(), progress.message))
                elif progress.state == "failed":
                    return _stop(outcome, target, progress.message, planned, number, batch, clock, report)
                elif clock.monotonic() > deadlines[target]:
                    why = f"not rolled out within its progress deadline: {progress.message}"
                    return _stop(outcome, target, why, planned, number, batch, clock, report)
            if waiting:
                sleep(poll_s)
    return outcome


def _stop(
    outcome: Outcome,
    target: Target,
    reason: str,
    planned: list[list[Target]],
    number: int,
    batch: list[Target],
    clock: Clock,
    report: Callable[[Step], None],
) -> Outcome:
    outcome.failed, outcome.reason = target, reason
    outcome.not_started = [t for t in batch if t not in outcome.restarted] + [
        t for b in planned[number + 1 :] for t in b
    ]
    report(Step(target, "failed", clock.now(), reason))
    return outcome
