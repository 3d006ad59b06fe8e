"""kubectl's ``rollout status`` rule and messages, on Deployments and DaemonSets as plain dicts."""

from __future__ import annotations

from typing import Any

import pytest

from edgefleet.cloud.k8s.rollout import RolloutStatus, daemonset_rollout, deployment_rollout


def deployment(generation: int = 2, wanted: int | None = 3, **status: Any) -> dict[str, Any]:
    spec = {} if wanted is None else {"replicas": wanted}
    return {"metadata": {"name": "app", "generation": generation}, "spec": spec, "status": status}


DONE = {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}
TIMED_OUT = [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]
WAITING = 'Waiting for deployment "app" rollout to finish: '


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (deployment(**DONE), RolloutStatus("complete", 'deployment "app" successfully rolled out')),
        (
            deployment(**{**DONE, "observedGeneration": 1}),
            RolloutStatus("waiting", "Waiting for deployment spec update to be observed..."),
        ),
        (
            deployment(**{**DONE, "observedGeneration": 3}),
            RolloutStatus("complete", 'deployment "app" successfully rolled out'),
        ),
        (
            deployment(**{**DONE, "conditions": TIMED_OUT}),
            RolloutStatus("failed", 'deployment "app" exceeded its progress deadline'),
        ),
        (
            deployment(**{**DONE, "updatedReplicas": 1}),
            RolloutStatus("waiting", WAITING + "1 out of 3 new replicas have been updated..."),
        ),
        (
            deployment(**{**DONE, "replicas": 4}),
            RolloutStatus("waiting", WAITING + "1 old replicas are pending termination..."),
        ),
        (
            deployment(**{**DONE, "availableReplicas": 2}),
            RolloutStatus("waiting", WAITING + "2 of 3 updated replicas are available..."),
        ),
        # No spec.replicas: kubectl skips that check (a nil pointer); the others still hold.
        (
            deployment(wanted=None, observedGeneration=2),
            RolloutStatus("complete", 'deployment "app" successfully rolled out'),
        ),
        # Nothing observed at all: generation 2 > observedGeneration 0.
        (deployment(), RolloutStatus("waiting", "Waiting for deployment spec update to be observed...")),
        # A scaled-to-zero deployment is rolled out.
        (
            deployment(wanted=0, observedGeneration=2),
            RolloutStatus("complete", 'deployment "app" successfully rolled out'),
        ),
    ],
)
def test_deployment(obj: dict[str, Any], expected: RolloutStatus) -> None:
    assert deployment_rollout(obj) == expected


def daemonset(strategy: str | None = "RollingUpdate", **status: Any) -> dict[str, Any]:
    spec = {"updateStrategy": {"type": strategy}} if strategy else {}
    return {"metadata": {"name": "agent", "generation": 5}, "spec": spec, "status": status}


DS_DONE = {"observedGeneration": 5, "desiredNumberScheduled": 4, "updatedNumberScheduled": 4, "numberAvailable": 4}
DS_WAITING = 'Waiting for daemon set "agent" rollout to finish: '


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (daemonset(**DS_DONE), RolloutStatus("complete", 'daemon set "agent" successfully rolled out')),
        (daemonset(None, **DS_DONE), RolloutStatus("complete", 'daemon set "agent" successfully rolled out')),
        (
            daemonset("OnDelete", **DS_DONE),
            RolloutStatus("untracked", "rollout status is only available for RollingUpdate strategy type"),
        ),
        (
            daemonset(**{**DS_DONE, "observedGeneration": 4}),
            RolloutStatus("waiting", "Waiting for daemon set spec update to be observed..."),
        ),
        (
            daemonset(**{**DS_DONE, "updatedNumberScheduled": 1}),
            RolloutStatus("waiting", DS_WAITING + "1 out of 4 new pods have been updated..."),
        ),
        (
            daemonset(**{**DS_DONE, "numberAvailable": 3}),
            RolloutStatus("waiting", DS_WAITING + "3 of 4 updated pods are available..."),
        ),
    ],
)
def test_daemonset(obj: dict[str, Any], expected: RolloutStatus) -> None:
    assert daemonset_rollout(obj) == expected


def test_only_complete_is_done() -> None:
    assert deployment_rollout(deployment(**DONE)).done
    assert not deployment_rollout(deployment(**{**DONE, "conditions": TIMED_OUT})).done
