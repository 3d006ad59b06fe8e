"""The batch restarts the controller runs (``POST /api/v1/clusters/{name}/restart``): each in a thread of its own,
its steps kept in memory for ``GET /api/v1/clusters/{name}/restarts/{id}`` (what ``edgefleet restart`` shows as
progress), and every action written to the audit log (``access.audit_log``: who, when, what). The restart itself is
``restarting.restart_deployments``. Restarts are not resumed after a controller restart: they are an emergency
tool run by a person who watches them, and the audit says how far one got.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Literal

from edgefleet.clock import Clock
from edgefleet.cloud.access.audit_log import Actor
from edgefleet.cloud.k8s.gateway import ClusterGateway
from edgefleet.cloud.restarting import Outcome, Step, Target, restart_deployments, select
from edgefleet.cloud.rollouts.store import AuditEntry
from edgefleet.ids import ClusterId

log = logging.getLogger(__name__)

RestartState = Literal["running", "done", "failed"]
# Finished restarts kept for their progress to be read; older ones are dropped first.
KEPT: Final = 100


@dataclass(slots=True)
class RestartJob:
    id: str
    cluster: ClusterId
    who: str
    started_at: float
    targets: list[Target]
    max_in_flight: int
    steps: list[Step] = field(default_factory=list)
    outcome: Outcome | None = None
    # An error the restart did not expect (never a cluster's: those stop it as a failed step).
    error: str | None = None
    # Who the audit names (None: ``who``, without role or source).
    actor: Actor | None = None

    @property
    def state(self) -> RestartState:
        if self.outcome is None and self.error is None:
            return "running"
        return "done" if self.outcome is not None and self.outcome.ok else "failed"


class Restarts:
    def __init__(
        self,
        gateway: ClusterGateway,
        *,
        clock: Clock,
        audit: Callable[[AuditEntry], None] | None,
        sleep: Callable[[float], None] = time.sleep,
        poll_s: float | None = None,
    ) -> None:
        self._gateway = gateway
        self._clock = clock
        self._audit = audit
        self._sleep = sleep
        self._poll_s = poll_s
        self._jobs: dict[str, RestartJob] = {}
        self._lock = threading.Lock()

    def select(self, cluster: ClusterId, *, namespace: str | None, selector: str | None) -> list[Target]:
        """The Deployments a restart of this selection would touch now; raises the gateway's ClusterError."""
        listed = self._gateway.list_objects(cluster, "Deployment", namespace=namespace, label_selector=selector)
        return select(listed.items)

    def start(
        self, cluster: ClusterId, targets: list[Target], *, max_in_flight: int, who: str, actor: Actor | None = None
    ) -> RestartJob:
        job = RestartJob(uuid.uuid4().hex[:12], cluster, who, self._clock.now(), list(targets), max_in_flight)
        job.actor = actor
        with self._lock:
            self._jobs[job.id] = job
            for old in [j for j in self._jobs.values() if j.state != "running"][: max(0, len(self._jobs) - KEPT)]:
                del self._jobs[old.id]
        self._record(job, f"batch restart {job.id}: {len(targets)} Deployment(s) of cluster {cluster}, "
                     f"at most {max_in_flight} in flight")  # fmt: skip
        threading.Thread(target=self._run, args=(job,), name=f"restart-{job.id}", daemon=True).start()
        return job

    def get(self, job_id: str) -> RestartJob | None:
        with self._lock:
            return self._jobs.get(job_id)

    def _run(self, job: RestartJob) -> None:
        def report(step: Step) -> None:
            with self._lock:
                job.steps.append(step)
            if step.state == "restarting":
                self._record(job, f"restart Deployment {step.target} of cluster {job.cluster}")
            elif step.state == "failed":
                self._record(job, f"batch restart {job.id} stopped at Deployment {step.target}: {step.message}")

        try:
            outcome = restart_deployments(
                self._gateway,
                job.cluster,
                job.targets,
                max_in_flight=job.max_in_flight,
                clock=self._clock,
                sleep=self._sleep,
                report=report,
                **({"poll_s": self._poll_s} if self._poll_s is not None else {}),
            )
        except Exception as exc:  # the thread must say why it ended, whatever it was
            log.exception("Batch restart ended on an error", extra={"restart": job.id, "cluster": job.cluster})
            with self._lock:
                job.error = f"{type(exc).__name__}: {exc}"
            return
        with self._lock:
            job.outcome = outcome
        if outcome.ok:
            self._record(job, f"batch restart {job.id} done: {len(outcome.restarted)} Deployment(s) rolled out")

    def _record(self, job: RestartJob, what: str) -> None:
        log.info("Batch restart step", extra={"restart": job.id, "cluster": job.cluster, "who": job.who, "what": what})
        if self._audit is None:
            return
        try:
            actor = job.actor or Actor(job.who)
            what += "" if job.who == actor.name else f" (as {job.who!r})"
            self._audit(
                AuditEntry(
                    self._clock.now(), actor.name, what,
                    action="restart-cluster", role=actor.role, source=actor.source,
                    target_kind="cluster", target_id=job.cluster,
                )
            )  # fmt: skip
        except Exception:  # the database may be down; the restart goes on, the log above keeps the step
            log.exception("Could not write a batch restart step to the audit", extra={"restart": job.id})
