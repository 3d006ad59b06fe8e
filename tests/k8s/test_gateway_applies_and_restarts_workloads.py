"""The gateway's writes against a simulated cluster: server-side apply as field manager ``edgefleet`` (create,
update, a conflict with another manager that names it and the field, force), ``kubectl rollout restart``'s patch
(a new generation and the ``restartedAt`` annotation at the injected time) and rollout progress by kubectl's rule."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kubernetes import client, config

from edgefleet.clock import FakeClock
from edgefleet.cloud.k8s.errors import ApplyConflictError, ClusterError, PermanentClusterError
from edgefleet.cloud.k8s.gateway import FIELD_MANAGER, RESTARTED_AT, KubernetesGateway, rfc3339
from simulator.cluster.resources import DAEMON_SETS, DEPLOYMENTS
from simulator.cluster.server import BackgroundCluster
from simulator.cluster.store import Store
from tests.k8s.conftest import EAST


def deployment(
    name: str = "sorter", *, image: str = "registry.local/sorter:1.4.2", replicas: int = 2
) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default", "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": name, "image": image}]},
            },
        },
    }


def daemonset(name: str = "gpu-agent", *, strategy: str = "RollingUpdate") -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": labels},
            "updateStrategy": {"type": strategy},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": name, "image": "registry.local/gpu-agent:2.0.0"}]},
            },
        },
    }


def managers(obj: dict[str, Any]) -> list[tuple[str, str]]:
    return sorted((e["manager"], e["operation"]) for e in obj["metadata"].get("managedFields", []))


def test_apply_creates_then_updates_as_field_manager_edgefleet(gateway: KubernetesGateway) -> None:
    created = gateway.apply(EAST, deployment())
    assert created["metadata"]["generation"] == 1
    assert managers(created) == [(FIELD_MANAGER, "Apply")]
    updated = gateway.apply(EAST, deployment(image="registry.local/sorter:1.5.0"))
    assert updated["metadata"]["generation"] == 2
    assert updated["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.local/sorter:1.5.0"
    assert gateway.get_deployment(EAST, "default", "sorter")["metadata"]["uid"] == created["metadata"]["uid"]
    # Applying what is there already changes nothing.
    again = gateway.apply(EAST, deployment(image="registry.local/sorter:1.5.0"))
    assert again["metadata"]["generation"] == 2


def test_a_field_another_manager_owns_is_a_permanent_conflict_naming_both(
    gateway: KubernetesGateway, kubeconfig: Path
) -> None:
    gateway.apply(EAST, deployment())
    # An operator scales it by hand with kubectl's server-side apply.
    other = config.new_client_from_config(config_file=str(kubeconfig), context=EAST)
    try:
        client.AppsV1Api(other).patch_namespaced_deployment(
            "sorter",
            "default",
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "sorter"}, "spec": {"replicas": 5}},
            field_manager="kubectl",
            force=True,
            _content_type="application/apply-patch+yaml",
        )
    finally:
        other.close()
    with pytest.raises(ApplyConflictError) as conflict:
        gateway.apply(EAST, deployment(replicas=3))
    error = conflict.value
    assert isinstance(error, PermanentClusterError)
    assert error.status == 409
    assert error.conflicts == [("kubectl", ".spec.replicas")]
    assert ".spec.replicas is owned by 'kubectl'" in str(error)
    assert "apply with force" in str(error)
    assert gateway.get_deployment(EAST, "default", "sorter")["spec"]["replicas"] == 5
    forced = gateway.apply(EAST, deployment(replicas=3), force=True)
    assert forced["spec"]["replicas"] == 3


def test_a_manifest_without_a_namespace_is_refused_before_any_call(gateway: KubernetesGateway) -> None:
    manifest = deployment()
    del manifest["metadata"]["namespace"]
    with pytest.raises(ValueError, match=r"has no metadata\.namespace"):
        gateway.apply(EAST, manifest)
    with pytest.raises(ValueError, match="cannot apply kind 'Secret'"):
        gateway.apply(EAST, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}})
    with pytest.raises(ValueError, match=r"ConfigMap 'x' to apply has no metadata\.namespace"):
        gateway.apply(EAST, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})


def test_restart_stamps_the_pod_template_like_kubectl(gateway: KubernetesGateway, clock: FakeClock) -> None:
    gateway.apply(EAST, deployment())
    restarted = gateway.restart(EAST, "Deployment", "default", "sorter", at=clock.now())
    assert restarted["metadata"]["generation"] == 2
    stamped = restarted["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT]
    assert stamped == rfc3339(clock.now())
    assert stamped.endswith("Z")
    # The rest of the template stays as applied.
    assert restarted["spec"]["template"]["metadata"]["labels"] == {"app": "sorter"}
    clock.advance(90)
    again = gateway.restart(EAST, "Deployment", "default", "sorter", at=clock.now())
    assert again["metadata"]["generation"] == 3
    assert again["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT] == rfc3339(clock.now())


def test_restarting_a_daemonset_and_a_missing_workload(gateway: KubernetesGateway, clock: FakeClock) -> None:
    gateway.apply(EAST, daemonset())
    restarted = gateway.restart(EAST, "DaemonSet", "default", "gpu-agent", at=clock.now())
    assert restarted["metadata"]["generation"] == 2
    with pytest.raises(ClusterError) as missing:
        gateway.restart(EAST, "Deployment", "default", "nowhere", at=clock.now())
    assert isinstance(missing.value, PermanentClusterError)
    assert missing.value.status == 404


def test_rollout_progress_follows_the_workloads_status(gateway: KubernetesGateway, cluster: BackgroundCluster) -> None:
    gateway.apply(EAST, deployment(replicas=2))

    def set_status(kind: Any, name: str, status: dict[str, Any]) -> None:
        def write(store: Store) -> None:
            current = store.get(kind, "default", name)
            store.update(kind, {**current, "status": status}, "default", subresource="status")

        cluster.call(write)

    set_status(DEPLOYMENTS, "sorter", {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 1})
    waiting = gateway.rollout_progress(EAST, "Deployment", "default", "sorter")
    assert (waiting.state, waiting.message) == (
        "waiting",
        'Waiting for deployment "sorter" rollout to finish: 1 out of 2 new replicas have been updated...',
    )
    set_status(
        DEPLOYMENTS,
        "sorter",
        {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2},
    )
    assert gateway.rollout_progress(EAST, "Deployment", "default", "sorter").done
    # A restart is a new generation: not rolled out until the controller observes it.
    gateway.restart(EAST, "Deployment", "default", "sorter", at=0.0)
    assert gateway.rollout_progress(EAST, "Deployment", "default", "sorter").state == "waiting"

    gateway.apply(EAST, daemonset("on-delete", strategy="OnDelete"))
    assert gateway.rollout_progress(EAST, "DaemonSet", "default", "on-delete").state == "untracked"
    gateway.apply(EAST, daemonset())
    set_status(
        DAEMON_SETS,
        "gpu-agent",
        {"observedGeneration": 1, "desiredNumberScheduled": 3, "updatedNumberScheduled": 3, "numberAvailable": 3},
    )
    assert gateway.rollout_progress(EAST, "DaemonSet", "default", "gpu-agent").done


@given(st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False))
def test_restarted_at_is_rfc3339_utc_to_the_second(at: float) -> None:
    stamped = rfc3339(at)
    assert stamped.endswith("Z")
    assert datetime.fromisoformat(stamped).timestamp() == math.floor(at)
