"""The simulated kubelet's pure step (``pods.plan_kubelet``): a pod pulls for the timing's (or its fate's) pull
time, then runs with every container ready; a crashing container restarts after the kubelet's back-off, 10 s
doubling to the cap, with ``restartCount`` climbing and CrashLoopBackOff worded as the kubelet words it; a node
that stopped reporting has its pods marked not Ready and nothing else (``mark_not_ready``)."""

from __future__ import annotations

from typing import Any

from simulator.cluster.matching import condition
from simulator.cluster.nodes import ClusterBox, node_manifest
from simulator.cluster.pods import (
    Fate,
    KubeletProgress,
    PodTiming,
    admit_pod,
    format_backoff,
    mark_not_ready,
    plan_kubelet,
)

NOW = 1_800_000_000.0
TIMING = PodTiming(pull_s=2.0, crash_after_s=1.0, backoff_s=10.0, max_backoff_s=40.0)
NODE = {**node_manifest(ClusterBox("n1", "s"), now=NOW), "apiVersion": "v1", "kind": "Node"}


def _pod() -> dict[str, Any]:
    return admit_pod(
        {
            "metadata": {"name": "web-1", "namespace": "default", "uid": "u1"},
            "spec": {"nodeName": "n1", "containers": [{"name": "web", "image": "web:1"}]},
        }
    )


def _walk(
    fate: Fate, until: float, written: list[dict[str, Any]] | None = None
) -> tuple[dict[str, Any], KubeletProgress | None, list[str]]:
    """Run the kubelet at every time it asks to be woken, up to ``until``; ``written`` collects its statuses."""
    pod, progress, now, reasons = _pod(), None, NOW, []
    while now <= NOW + until:
        step = plan_kubelet(pod, NODE, progress, fate=fate, timing=TIMING, now=now)
        progress = step.progress
        if step.status is not None:
            pod = {**pod, "status": step.status}
            if written is not None:
                written.append(step.status)
        reasons += [e.reason for e in step.events]
        if step.wake_at is None:
            break
        now = step.wake_at
    return pod, progress, reasons


def test_a_healthy_pod_pulls_then_runs_ready() -> None:
    first = plan_kubelet(_pod(), NODE, None, fate=Fate(), timing=TIMING, now=NOW)
    assert first.status is not None
    assert first.status["phase"] == "Pending"
    assert first.status["containerStatuses"][0]["state"] == {"waiting": {"reason": "ContainerCreating"}}
    assert first.wake_at == NOW + 2.0
    pod, _, reasons = _walk(Fate(), 10)
    assert reasons == ["Pulling", "Pulled", "Created", "Started"]
    assert pod["status"]["phase"] == "Running"
    assert (condition(pod, "Ready") or {}).get("status") == "True"
    slow = plan_kubelet(_pod(), NODE, None, fate=Fate(pull_s=30.0), timing=TIMING, now=NOW)
    assert slow.wake_at == NOW + 30.0


def test_a_crashing_container_backs_off_doubling_to_the_cap() -> None:
    written: list[dict[str, Any]] = []
    pod, progress, reasons = _walk(Fate(crashes=True), 200, written)
    assert progress is not None
    assert progress.restarts >= 5
    assert reasons.count("BackOff") == progress.restarts
    assert pod["status"]["containerStatuses"][0]["restartCount"] == progress.restarts
    backing_off = [s["containerStatuses"][0] for s in written if "waiting" in s["containerStatuses"][0]["state"]]
    delays = [c["state"]["waiting"]["message"].split()[1] for c in backing_off if c["restartCount"]]
    assert delays[:4] == ["10s", "20s", "40s", "40s"]
    assert backing_off[-1]["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert "restarting failed container=web pod=web-1_default(u1)" in backing_off[-1]["state"]["waiting"]["message"]
    assert backing_off[-1]["lastState"]["terminated"]["reason"] == "Error"
    assert TIMING.backoff(1) == 10
    assert TIMING.backoff(2) == 20
    assert TIMING.backoff(4) == 40  # capped
    assert format_backoff(300) == "5m0s"
    assert format_backoff(10) == "10s"


def test_a_silent_nodes_pods_are_marked_not_ready_and_nothing_else() -> None:
    pod, _, _ = _walk(Fate(), 10)
    status = mark_not_ready(pod, now=NOW + 100)
    assert status is not None
    assert (condition({"status": status}, "Ready") or {}).get("status") == "False"
    assert status["phase"] == "Running"
    assert status["containerStatuses"] == pod["status"]["containerStatuses"]
    assert mark_not_ready({**pod, "status": status}, now=NOW + 200) is None
