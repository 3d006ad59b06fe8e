"""``sim run`` serves the inventory's clusters: the real kubectl, through the kubeconfig the simulator writes, lists
the host cluster's nodes with KubeEdge's roles and the central cluster's without; a Deployment pinned to a site
rolls out (``kubectl rollout status``); a cut site's nodes go NotReady with the unreachable taints once the
(shortened) node-monitor grace has passed while its pods keep running, marked not Ready, and the nodes come back
when the cut is cleared through the control API; the kubeconfig is gone once the simulator stops."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from simulator.running import SimulatorOptions, start_in_background
from tests.simulator.conftest import CENTRAL, SITE_A, SITE_B_BOXES
from tests.support.clusters import TEST_HOST, pinned_deployment
from tests.support.kubectls import ON_PATH, kubectl_binary
from tests.support.peers import wait_for

# Short enough for a test; the kubelets then renew every 0.2 s and the controller looks every 0.1 s.
GRACE_S = 1.0


def _kubectl(kubeconfig: Path, home: Path, *args: str) -> str:
    binary, missing = kubectl_binary(ON_PATH)
    if binary is None:
        pytest.skip(missing)
    done = subprocess.run(
        [str(binary), "--kubeconfig", str(kubeconfig), *args],
        env={**os.environ, "HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, f"kubectl {' '.join(args)} failed: {done.stderr}"
    return done.stdout


def _rows(table: str) -> dict[str, list[str]]:
    return {line.split()[0]: line.split() for line in table.splitlines()[1:]}


def test_kubectl_sees_the_clusters_and_a_cut_sites_nodes_go_unreachable(
    options: SimulatorOptions, tmp_path: Path
) -> None:
    kubeconfig = tmp_path / "sim.kubeconfig"
    home = tmp_path / "home"
    home.mkdir()
    sim = start_in_background(replace(options, kubeconfig=kubeconfig, node_grace_s=GRACE_S))
    try:
        contexts = _kubectl(kubeconfig, home, "config", "get-contexts", "-o", "name").split()
        assert sorted(contexts) == sorted([TEST_HOST, CENTRAL])
        status = httpx.get(f"{sim.url}/status", timeout=10).json()
        assert status["kubeconfig"] == str(kubeconfig)
        assert {(c["context"], c["role"], c["nodes"]) for c in status["clusters"]} == {
            (TEST_HOST, "kubeedge-host", 6),
            (CENTRAL, "central", 2),
        }

        host = _rows(_kubectl(kubeconfig, home, "--context", TEST_HOST, "get", "nodes"))
        assert len(host) == 6
        assert {row[1] for row in host.values()} == {"Ready"}
        assert {row[2] for row in host.values()} == {"agent,edge"}
        site_a = _rows(
            _kubectl(
                kubeconfig,
                home,
                "--context",
                TEST_HOST,
                "get",
                "nodes",
                "-l",
                f"apps.kubeedge.io/belonging-to={SITE_A}",
            )
        )
        assert sorted(site_a) == [f"{SITE_A}-edge-01", f"{SITE_A}-gpu-01", f"{SITE_A}-gpu-02"]
        central = _rows(_kubectl(kubeconfig, home, "--context", CENTRAL, "get", "nodes"))
        assert {row[2] for row in central.values()} == {"<none>"}
        leases = _rows(_kubectl(kubeconfig, home, "--context", TEST_HOST, "get", "leases", "-n", "kube-node-lease"))
        assert sorted(leases) == sorted(host)

        # A workload pinned to the site, tolerating unreachable and not-ready forever, as edgefleet's are.
        manifest = tmp_path / "web.yaml"
        manifest.write_text(pinned_deployment(SITE_A, replicas=2))
        _kubectl(kubeconfig, home, "--context", TEST_HOST, "apply", "--validate=false", "-f", str(manifest))
        rolled = _kubectl(kubeconfig, home, "--context", TEST_HOST, "rollout", "status", "deploy/web", "--timeout=25s")
        assert 'deployment "web" successfully rolled out' in rolled

        def pods() -> dict[str, dict[str, Any]]:
            found = json.loads(
                _kubectl(kubeconfig, home, "--context", TEST_HOST, "get", "pods", "-l", "app=web", "-o", "json")
            )
            return {p["metadata"]["name"]: p for p in found["items"]}

        running = pods()
        assert len(running) == 2
        assert {p["spec"]["nodeName"] for p in running.values()} <= set(site_a)

        httpx.post(
            f"{sim.url}/faults", json={"kind": "cut", "site": SITE_A, "seconds": 600}, timeout=10
        ).raise_for_status()

        def nodes() -> dict[str, dict[str, Any]]:
            found = json.loads(_kubectl(kubeconfig, home, "--context", TEST_HOST, "get", "nodes", "-o", "json"))
            return {n["metadata"]["name"]: n for n in found["items"]}

        def ready(node: dict[str, Any]) -> dict[str, Any]:
            return next(c for c in node["status"]["conditions"] if c["type"] == "Ready")

        def taints(node: dict[str, Any]) -> set[tuple[str, str]]:
            return {(t["key"], t["effect"]) for t in node["spec"].get("taints") or []}

        unreachable = {
            ("node.kubernetes.io/unreachable", "NoExecute"),
            ("node.kubernetes.io/unreachable", "NoSchedule"),
        }

        def cut_off() -> dict[str, dict[str, Any]] | None:
            now = nodes()
            lost = {
                name for name, node in now.items() if ready(node)["status"] == "Unknown" and taints(node) == unreachable
            }
            return now if lost == set(site_a) else None

        marked = wait_for(cut_off, timeout=20, interval=0.2, what=f"the nodes of {SITE_A} to go unreachable")
        assert {ready(marked[name])["reason"] for name in site_a} == {"NodeStatusUnknown"}
        assert {ready(marked[name])["message"] for name in site_a} == {"Kubelet stopped posting node status."}
        # The other site's kubelets still reach the API server.
        assert {ready(marked[name])["status"] for name in SITE_B_BOXES} == {"True"}
        shown = _rows(_kubectl(kubeconfig, home, "--context", TEST_HOST, "get", "nodes"))
        assert {shown[name][1] for name in site_a} == {"NotReady"}

        def marked_not_ready() -> dict[str, dict[str, Any]] | None:
            now = pods()
            flags = {next(c["status"] for c in p["status"]["conditions"] if c["type"] == "Ready") for p in now.values()}
            return now if flags == {"False"} else None

        # The pods keep running at the edge: the same pods, Running, only marked not Ready (the kubelet is silent).
        kept = wait_for(marked_not_ready, timeout=20, interval=0.2, what="the cut site's pods to be marked not Ready")
        assert sorted(kept) == sorted(running)
        assert {p["status"]["phase"] for p in kept.values()} == {"Running"}

        httpx.delete(f"{sim.url}/faults", params={"site": SITE_A}, timeout=10).raise_for_status()

        def recovered() -> bool:
            now = nodes()
            return all(ready(node)["status"] == "True" and not taints(node) for node in now.values())

        wait_for(recovered, timeout=20, interval=0.2, what=f"the nodes of {SITE_A} to be Ready again")

        def pods_ready_again() -> bool:
            return all(
                next(c["status"] for c in p["status"]["conditions"] if c["type"] == "Ready") == "True"
                for p in pods().values()
            )

        wait_for(pods_ready_again, timeout=20, interval=0.2, what="the site's pods to be reported Ready again")
        assert sorted(pods()) == sorted(running)  # tolerated forever: never evicted, never replaced
    finally:
        sim.stop()
    assert not kubeconfig.exists()
