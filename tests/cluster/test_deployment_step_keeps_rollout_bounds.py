"""The Deployment controller's pure step (``deployments.plan_deployment``) rolls out as Kubernetes' does: maxSurge
rounds up and maxUnavailable down, both 0 meaning 1; during a rolling update all ReplicaSets' replicas never
exceed ``replicas + maxSurge`` and available pods never drop below ``replicas - maxUnavailable``, whatever order
pods become available in, and the rollout completes; Recreate never runs old and new pods together; status and
conditions read as ``kubectl rollout status`` expects; the progress deadline and history limit hold."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.cluster import admission
from simulator.cluster.deployments import REVISION, fenceposts, plan_deployment, replicas_of
from simulator.cluster.matching import condition, template_hash
from simulator.cluster.resources import DEPLOYMENTS

NOW = 1_800_000_000.0


def _deployment(
    replicas: int, surge: Any = "25%", unavailable: Any = "25%", strategy: str = "RollingUpdate"
) -> dict[str, Any]:
    rolling = {"maxSurge": surge, "maxUnavailable": unavailable}
    return admission.admit(
        DEPLOYMENTS,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "uid": "d-uid", "generation": 1},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": strategy, **({"rollingUpdate": rolling} if strategy == "RollingUpdate" else {})},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "w", "image": "w:1"}]},
                },
            },
        },
        creating=True,
    )


@pytest.mark.parametrize(
    ("replicas", "surge", "unavailable", "expected"),
    [
        (10, "25%", "25%", (3, 2)),  # 2.5 up, 2.5 down
        (3, "25%", "25%", (1, 0)),
        (4, 0, 0, (0, 1)),  # both 0: one may be unavailable
        (1, "10%", "10%", (1, 0)),
        (5, 2, 10, (2, 5)),  # never more unavailable than replicas
        (0, "25%", "25%", (0, 0)),
        (7, "50%", "0%", (4, 0)),
    ],
)
def test_fenceposts_round_as_kubernetes(replicas: int, surge: Any, unavailable: Any, expected: tuple[int, int]) -> None:
    assert fenceposts(_deployment(replicas, surge, unavailable)) == expected


def test_recreate_has_no_fenceposts() -> None:
    assert fenceposts(_deployment(5, strategy="Recreate")) == (0, 0)


class Rollout:
    """A Deployment and its ReplicaSets as the store would hold them, pods standing in as counts: a ReplicaSet's
    pods exist as soon as it is scaled, unavailable ones go first when it is scaled down."""

    def __init__(self, deployment: dict[str, Any]) -> None:
        self.deployment = deployment
        self.sets: dict[str, dict[str, Any]] = {}
        self.clock = NOW
        self.created = 0

    def step(self) -> Any:
        self.clock += 1
        plan = plan_deployment(self.deployment, list(self.sets.values()), now=self.clock)
        if plan.create is not None:
            rs = copy.deepcopy(plan.create)
            self.created += 1
            rs["metadata"].update(
                uid=f"rs-{self.created}", generation=1, creationTimestamp=f"2027-01-01T00:00:{self.created:02d}Z"
            )
            rs["status"] = {
                "replicas": replicas_of(rs),
                "availableReplicas": 0,
                "readyReplicas": 0,
                "observedGeneration": 1,
            }
            self.sets[rs["metadata"]["name"]] = rs
        for written in plan.scale:
            rs = self.sets[written["metadata"]["name"]]
            kept = rs["status"]
            rs = copy.deepcopy(written)
            rs["status"] = {
                "replicas": replicas_of(rs),
                "availableReplicas": min(kept["availableReplicas"], replicas_of(rs)),
                "readyReplicas": min(kept["availableReplicas"], replicas_of(rs)),
                "observedGeneration": 1,
            }
            self.sets[rs["metadata"]["name"]] = rs
        for name in plan.delete:
            del self.sets[name]
        if plan.annotations is not None:
            self.deployment["metadata"]["annotations"] = plan.annotations
        self.deployment["status"] = plan.status
        return plan

    def make_available(self, name: str, count: int) -> None:
        status = self.sets[name]["status"]
        status["availableReplicas"] = status["readyReplicas"] = min(
            status["replicas"], status["availableReplicas"] + count
        )

    def total(self) -> int:
        return sum(replicas_of(rs) for rs in self.sets.values())

    def available(self) -> int:
        return sum(rs["status"]["availableReplicas"] for rs in self.sets.values())

    def settle(self) -> None:
        """Run to a fixed point with every pod available at once."""
        for _ in range(50):
            for name in self.sets:
                self.make_available(name, 1000)
            plan = self.step()
            if not plan.create and not plan.scale:
                return


def _change_image(rollout: Rollout, image: str) -> None:
    rollout.deployment["spec"]["template"]["spec"]["containers"][0]["image"] = image
    rollout.deployment["metadata"]["generation"] += 1


INT_OR_PERCENT = st.one_of(st.integers(0, 4), st.sampled_from(["0%", "10%", "25%", "33%", "50%", "100%"]))


@settings(max_examples=150, deadline=None)
@given(
    replicas=st.integers(1, 10),
    surge=INT_OR_PERCENT,
    unavailable=INT_OR_PERCENT,
    becoming_available=st.lists(st.tuples(st.booleans(), st.integers(0, 3)), max_size=60),
)
def test_a_rolling_update_stays_within_surge_and_unavailability_and_finishes(
    replicas: int, surge: Any, unavailable: Any, becoming_available: list[tuple[bool, int]]
) -> None:
    rollout = Rollout(_deployment(replicas, surge, unavailable))
    rollout.settle()
    max_surge, max_unavailable = fenceposts(rollout.deployment)
    assert rollout.available() == replicas
    _change_image(rollout, "w:2")
    for newest, count in becoming_available:
        rollout.step()
        assert rollout.total() <= replicas + max_surge
        assert rollout.available() >= replicas - max_unavailable
        # Pods become available in any order: the new ReplicaSet's or an old one's that had been scaled.
        names = sorted(rollout.sets, key=lambda n: rollout.sets[n]["metadata"]["uid"])
        rollout.make_available(names[-1] if newest else names[0], count)
    rollout.settle()
    status = rollout.deployment["status"]
    assert (status["replicas"], status["updatedReplicas"], status["availableReplicas"]) == (
        replicas,
        replicas,
        replicas,
    )
    assert (condition(rollout.deployment, "Progressing") or {}).get("reason") == "NewReplicaSetAvailable"
    new_hash = template_hash(rollout.deployment["spec"]["template"])
    assert {n: replicas_of(rs) for n, rs in rollout.sets.items() if replicas_of(rs)} == {f"web-{new_hash}": replicas}


@settings(max_examples=50, deadline=None)
@given(replicas=st.integers(1, 8), delays=st.lists(st.booleans(), max_size=20))
def test_recreate_never_runs_old_and_new_pods_together(replicas: int, delays: list[bool]) -> None:
    rollout = Rollout(_deployment(replicas, strategy="Recreate"))
    rollout.settle()
    _change_image(rollout, "w:2")
    for available_now in delays:
        rollout.step()
        running = [n for n, rs in rollout.sets.items() if rs["status"]["replicas"]]
        assert len(running) <= 1
        if available_now:
            for name in running:
                rollout.make_available(name, 1000)
    rollout.settle()
    assert rollout.deployment["status"]["updatedReplicas"] == replicas


def test_status_counts_and_conditions_read_as_kubectl_expects() -> None:
    rollout = Rollout(_deployment(4))
    plan = rollout.step()
    assert plan.create is not None
    assert plan.events == (
        ("Normal", "ScalingReplicaSet", f"Scaled up replica set {plan.create['metadata']['name']} to 4 from 0"),
    )
    assert rollout.deployment["metadata"]["annotations"][REVISION] == "1"
    progressing = condition(rollout.deployment, "Progressing") or {}
    assert (progressing.get("status"), progressing.get("reason")) == ("True", "NewReplicaSetCreated")
    available = condition(rollout.deployment, "Available") or {}
    assert (available.get("status"), available.get("reason")) == ("False", "MinimumReplicasUnavailable")
    rollout.make_available(plan.create["metadata"]["name"], 3)
    rollout.step()
    status = rollout.deployment["status"]
    assert (status["availableReplicas"], status["unavailableReplicas"]) == (3, 1)
    assert (condition(rollout.deployment, "Available") or {}).get("reason") == "MinimumReplicasAvailable"
    assert (condition(rollout.deployment, "Progressing") or {}).get("reason") == "ReplicaSetUpdated"
    assert (condition(rollout.deployment, "Progressing") or {}).get(
        "message"
    ) == f'ReplicaSet "{plan.create["metadata"]["name"]}" is progressing.'
    rollout.settle()
    assert (condition(rollout.deployment, "Progressing") or {}).get(
        "message"
    ) == f'ReplicaSet "{plan.create["metadata"]["name"]}" has successfully progressed.'


def test_no_progress_for_the_deadline_is_progress_deadline_exceeded() -> None:
    deployment = _deployment(2)
    deployment["spec"]["progressDeadlineSeconds"] = 30
    rollout = Rollout(deployment)
    rollout.step()
    plan = rollout.step()  # the new ReplicaSet's pods exist: progress, and the deadline counts from here
    assert plan.wake_at is not None
    rollout.clock += 28
    rollout.step()
    assert (condition(rollout.deployment, "Progressing") or {}).get("status") == "True"
    rollout.clock += 5
    rollout.step()
    stuck = condition(rollout.deployment, "Progressing") or {}
    assert (stuck.get("status"), stuck.get("reason")) == ("False", "ProgressDeadlineExceeded")
    assert stuck["message"].endswith("has timed out progressing.")


def test_a_paused_deployment_does_not_roll_out_a_new_template() -> None:
    rollout = Rollout(_deployment(3))
    rollout.settle()
    rollout.deployment["spec"]["paused"] = True
    _change_image(rollout, "w:2")
    plan = rollout.step()
    assert plan.create is None
    assert (condition(rollout.deployment, "Progressing") or {}).get("reason") == "DeploymentPaused"
    rollout.deployment["spec"]["paused"] = False
    assert rollout.step().create is not None


def test_old_replica_sets_beyond_the_history_limit_are_deleted() -> None:
    deployment = _deployment(1)
    deployment["spec"]["revisionHistoryLimit"] = 2
    rollout = Rollout(deployment)
    rollout.settle()
    for version in range(2, 7):
        _change_image(rollout, f"w:{version}")
        rollout.settle()
        rollout.step()
    revisions = sorted(int(rs["metadata"]["annotations"][REVISION]) for rs in rollout.sets.values())
    assert revisions == [4, 5, 6]


def test_a_change_cause_added_later_reaches_the_new_replica_set() -> None:
    rollout = Rollout(_deployment(2))
    rollout.settle()
    rollout.deployment["metadata"]["annotations"]["kubernetes.io/change-cause"] = "kubectl set image web w=w:2"
    rollout.step()
    (only,) = rollout.sets.values()
    assert only["metadata"]["annotations"]["kubernetes.io/change-cause"] == "kubectl set image web w=w:2"
    assert only["metadata"]["annotations"][REVISION] == "1"
