"""Has a Deployment or DaemonSet rolled out? kubectl's rule (``kubectl rollout status``), on the objects as the
API serves them (plain dicts, camelCase), with kubectl's messages. Pure: no I/O, no clock. Rollouts (issue 14)
read a workload through the gateway and ask here.

Deployment (kubectl's ``DeploymentStatusViewer``), once ``status.observedGeneration >= metadata.generation``:
failed when its ``Progressing`` condition's reason is ``ProgressDeadlineExceeded``; waiting while
``updatedReplicas < spec.replicas``, while ``status.replicas > updatedReplicas`` (old replicas terminating), or
while ``availableReplicas < updatedReplicas``; else complete. Before that: waiting for the spec to be observed.

DaemonSet (``DaemonSetStatusViewer``): only a ``RollingUpdate`` strategy has a rollout to follow (``OnDelete``
is ``untracked``); once observed, waiting while ``updatedNumberScheduled`` or ``numberAvailable`` is below
``desiredNumberScheduled``; else complete.

Where the API server defaults a field kubectl reads (``updateStrategy.type`` RollingUpdate) a missing one is taken
as the default; a missing ``spec.replicas`` skips that check, as kubectl does with a nil pointer; missing counts
are 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

RolloutState = Literal["waiting", "complete", "failed", "untracked"]

TIMED_OUT_REASON: Final = "ProgressDeadlineExceeded"
ROLLING_UPDATE: Final = "RollingUpdate"


@dataclass(frozen=True, slots=True)
class RolloutStatus:
    state: RolloutState
    message: str

    @property
    def done(self) -> bool:
        return self.state == "complete"


def deployment_rollout(deployment: Mapping[str, Any]) -> RolloutStatus:
    name = _name(deployment)
    spec, status = _part(deployment, "spec"), _part(deployment, "status")
    if _int(_part(deployment, "metadata"), "generation") > _int(status, "observedGeneration"):
        return RolloutStatus("waiting", "Waiting for deployment spec update to be observed...")
    if _progressing_reason(status) == TIMED_OUT_REASON:
        return RolloutStatus("failed", f'deployment "{name}" exceeded its progress deadline')
    wanted = spec.get("replicas")
    updated = _int(status, "updatedReplicas")
    waiting = f'Waiting for deployment "{name}" rollout to finish: '
    if isinstance(wanted, int) and updated < wanted:
        return RolloutStatus("waiting", f"{waiting}{updated} out of {wanted} new replicas have been updated...")
    replicas = _int(status, "replicas")
    if replicas > updated:
        return RolloutStatus("waiting", f"{waiting}{replicas - updated} old replicas are pending termination...")
    available = _int(status, "availableReplicas")
    if available < updated:
        return RolloutStatus("waiting", f"{waiting}{available} of {updated} updated replicas are available...")
    return RolloutStatus("complete", f'deployment "{name}" successfully rolled out')


def daemonset_rollout(daemonset: Mapping[str, Any]) -> RolloutStatus:
    name = _name(daemonset)
    spec, status = _part(daemonset, "spec"), _part(daemonset, "status")
    strategy = _part(spec, "updateStrategy").get("type") or ROLLING_UPDATE
    if strategy != ROLLING_UPDATE:
        return RolloutStatus("untracked", f"rollout status is only available for {ROLLING_UPDATE} strategy type")
    if _int(_part(daemonset, "metadata"), "generation") > _int(status, "observedGeneration"):
        return RolloutStatus("waiting", "Waiting for daemon set spec update to be observed...")
    desired = _int(status, "desiredNumberScheduled")
    updated = _int(status, "updatedNumberScheduled")
    waiting = f'Waiting for daemon set "{name}" rollout to finish: '
    if updated < desired:
        return RolloutStatus("waiting", f"{waiting}{updated} out of {desired} new pods have been updated...")
    available = _int(status, "numberAvailable")
    if available < desired:
        return RolloutStatus("waiting", f"{waiting}{available} of {desired} updated pods are available...")
    return RolloutStatus("complete", f'daemon set "{name}" successfully rolled out')


def _part(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = obj.get(key)
    return value if isinstance(value, Mapping) else {}


def _int(obj: Mapping[str, Any], key: str) -> int:
    value = obj.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _name(obj: Mapping[str, Any]) -> str:
    return str(_part(obj, "metadata").get("name") or "")


def _progressing_reason(status: Mapping[str, Any]) -> str | None:
    for condition in status.get("conditions") or []:
        if isinstance(condition, Mapping) and condition.get("type") == "Progressing":
            reason = condition.get("reason")
            return reason if isinstance(reason, str) else None
    return None
