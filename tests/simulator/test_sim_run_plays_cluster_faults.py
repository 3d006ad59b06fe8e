"""``sim run``'s cluster faults through its control API: edgecore down on one box makes only that node NotReady
while the box's agent stays connected; a cluster's API server down refuses connections and, back on the same
URL, has not marked any node NotReady for its own outage; api-errors fail requests as the API server would; a
slow version reports worse figures while the fault lasts; its registry serves the fleet's images through the hosts
directory it writes, and a pod whose image the registry lacks fails its pull as containerd says."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from edgefleet.cloud.registry import load_registry_hosts
from simulator.running import BackgroundSimulator, SimulatorOptions, start_in_background
from tests.simulator.conftest import ALL_BOXES, EDGE_A, GPU2_A, GPU_A, SITE_A
from tests.simulator.fleets import Watcher
from tests.support.clusters import TEST_HOST
from tests.support.peers import wait_for

GRACE_S = 1.0
GPUS_A = (GPU_A, GPU2_A)


@pytest.fixture
def running(options: SimulatorOptions, watcher: Watcher, tmp_path: Path) -> Iterator[BackgroundSimulator]:
    sim = start_in_background(replace(options, kubeconfig=tmp_path / "sim.kubeconfig", node_grace_s=GRACE_S))
    try:
        watcher.wait_online(ALL_BOXES)
        yield sim
    finally:
        sim.stop()


def _host_url(sim: BackgroundSimulator) -> str:
    status = httpx.get(f"{sim.url}/status", timeout=10).json()
    config = yaml.safe_load(Path(status["kubeconfig"]).read_text())
    context = next(c["context"] for c in config["contexts"] if c["name"] == TEST_HOST)
    return str(next(c["cluster"]["server"] for c in config["clusters"] if c["name"] == context["cluster"]))


def _conditions(url: str) -> dict[str, dict[str, str]]:
    nodes = httpx.get(f"{url}/api/v1/nodes", timeout=10).json()["items"]
    return {n["metadata"]["name"]: next(c for c in n["status"]["conditions"] if c["type"] == "Ready") for n in nodes}


def _ready(url: str) -> dict[str, str]:
    return {name: condition["status"] for name, condition in _conditions(url).items()}


def _inject(sim: BackgroundSimulator, **body: Any) -> dict[str, Any]:
    answer = httpx.post(f"{sim.url}/faults", json=body, timeout=10)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def test_edgecore_down_loses_the_node_but_not_the_agent(running: BackgroundSimulator) -> None:
    url = _host_url(running)
    fault = _inject(running, kind="edgecore", box=GPU_A)
    assert (fault["kind"], fault["site"], fault["box"]) == ("edgecore", SITE_A, GPU_A)

    def lost() -> dict[str, str] | None:
        ready = _ready(url)
        return ready if ready[GPU_A] == "Unknown" else None

    ready = wait_for(lost, timeout=20, interval=0.2, what=f"node {GPU_A} to go NotReady")
    assert ready[GPU2_A] == "True", "its neighbour's edgecore still posts"
    box = next(
        b
        for b in httpx.get(f"{running.url}/status", params={"site": SITE_A}, timeout=10).json()["box_list"]
        if b["box"] == GPU_A
    )
    assert (box["connected"], box["stopped"], box["kubelet_silent"]) == (True, False, True), json.dumps(box)

    httpx.delete(f"{running.url}/faults/{fault['id']}", timeout=10).raise_for_status()
    wait_for(lambda: _ready(url)[GPU_A] == "True", timeout=20, interval=0.2, what=f"node {GPU_A} Ready again")


def test_an_api_server_down_refuses_connections_and_comes_back_where_it_was(running: BackgroundSimulator) -> None:
    url = _host_url(running)
    before = _conditions(url)
    fault = _inject(running, kind="api-down", cluster=TEST_HOST, seconds=3 * GRACE_S)
    assert fault["cluster"] == TEST_HOST

    def answer() -> str:
        try:
            httpx.get(f"{url}/version", timeout=2)
        except httpx.ConnectError:
            return "refused"
        except (httpx.RemoteProtocolError, httpx.ReadError):
            # A connection taken as the server stops, then closed without an answer: not refused yet; ask again.
            return "closing"
        return "serving"

    wait_for(lambda: answer() == "refused", timeout=10, interval=0.1, what="the API server to stop")
    wait_for(lambda: answer() == "serving", timeout=20, interval=0.2, what="the API server to serve again")
    # Its kubelets could not post for longer than the grace period, yet no node was judged for the server's outage:
    # every Ready condition is the one from before (a flip to Unknown and back would move its transition time).
    after = _conditions(url)
    assert {n: (c["status"], c["lastTransitionTime"]) for n, c in after.items()} == {
        n: (c["status"], c["lastTransitionTime"]) for n, c in before.items()
    }
    assert _host_url(running) == url, "the kubeconfig still holds"


def test_api_errors_fail_requests_until_cleared(running: BackgroundSimulator) -> None:
    url = _host_url(running)
    fault = _inject(running, kind="api-errors", cluster=TEST_HOST, rate=1, errors="503")
    assert (fault["rate"], fault["errors"]) == (1.0, ["503"])
    answer = httpx.get(f"{url}/api/v1/nodes", timeout=10)
    assert answer.status_code == 503
    assert answer.json()["reason"] == "ServiceUnavailable"
    listed = httpx.get(f"{running.url}/faults", timeout=10).json()["faults"]
    assert [f["kind"] for f in listed] == ["api-errors"]
    httpx.delete(f"{running.url}/faults/{fault['id']}", timeout=10).raise_for_status()
    assert httpx.get(f"{url}/api/v1/nodes", timeout=10).status_code == 200


def _latest_apps(watcher: Watcher, box: str) -> list[tuple[str, str, str]]:
    beats = watcher.heartbeats(box)
    return [(a.name, a.version, a.state) for a in beats[-1].apps.apps] if beats else []


def test_a_bad_version_crash_loops_where_the_fault_says_and_its_agent_says_so(
    running: BackgroundSimulator, watcher: Watcher
) -> None:
    url = _host_url(running)
    daemonset = f"{url}/apis/apps/v1/namespaces/edgefleet/daemonsets/sorting-recognition-{SITE_A}"
    old_image = httpx.get(daemonset, timeout=10).json()["spec"]["template"]["spec"]["containers"][0]["image"]
    old_version = old_image.rsplit(":", 1)[1]
    wait_for(
        lambda: all(_latest_apps(watcher, b) == [("sorting-recognition", old_version, "running")] for b in GPUS_A),
        timeout=20,
        what="both GPU boxes running the site's release",
    )
    _inject(running, kind="crash-loop", version="9.9.9", app="sorting-recognition", site=SITE_A)
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [{"name": "sorting-recognition", "image": old_image.rsplit(":", 1)[0] + ":9.9.9"}]
                }
            }
        }
    }
    answer = httpx.patch(
        daemonset, json=patch, headers={"Content-Type": "application/strategic-merge-patch+json"}, timeout=10
    )
    assert answer.status_code == 200, answer.text

    def crashing() -> str | None:
        for box in GPUS_A:
            beats = watcher.heartbeats(box)
            app = beats[-1].apps.apps[0] if beats and beats[-1].apps.apps else None
            if app is not None and (app.version, app.state) == ("9.9.9", "failed"):
                return app.detail
        return None

    detail = wait_for(crashing, timeout=30, interval=0.2, what="a GPU box reporting 9.9.9 failed")
    assert "CrashLoopBackOff" in detail or "exited with code" in detail, detail
    failed = [a for b in GPUS_A for a in watcher.heartbeats(b)[-1].apps.apps if a.state == "failed"]
    assert failed
    assert all(a.figures is None for a in failed), "a crash-looping app reports no figures"
    # The site's edge node runs scan-upload untouched; the agent's view and Kubernetes' agree on the failure.
    assert [(a.name, a.state) for a in watcher.heartbeats(EDGE_A)[-1].apps.apps] == [("scan-upload", "running")]
    status = httpx.get(daemonset, timeout=10).json()["status"]
    assert status["updatedNumberScheduled"] >= 1


def test_edgecore_down_takes_the_metaserver_with_it(running: BackgroundSimulator, watcher: Watcher) -> None:
    _inject(running, kind="edgecore", box=GPU_A)

    def unreadable() -> bool:
        beats = watcher.heartbeats(GPU_A)
        return bool(beats) and beats[-1].apps.error is not None and not beats[-1].apps.apps

    wait_for(unreadable, timeout=10, what=f"{GPU_A} reporting its MetaServer unreachable")
    assert "is edgecore running" in (watcher.heartbeats(GPU_A)[-1].apps.error or "")


def _latest_figures(watcher: Watcher, box: str) -> dict[str, float] | None:
    beats = watcher.heartbeats(box)
    apps = beats[-1].apps.apps if beats else []
    return apps[0].figures if apps and apps[0].state == "running" else None


def test_a_slow_version_reports_lower_fps_until_cleared(running: BackgroundSimulator, watcher: Watcher) -> None:
    """Every box reports its site's figures; a slow fault on the version the site runs makes its fps drop (a
    release twice as slow: half the frames) and its latency rise, and clearing it brings them back."""

    def reporting() -> dict[str, float] | None:
        return _latest_figures(watcher, GPU_A) if all(_latest_figures(watcher, b) for b in (*GPUS_A, EDGE_A)) else None

    before = wait_for(reporting, timeout=20, what="the site's boxes reporting figures")
    assert set(before) == {"fps", "inference_latency_ms"}
    scan = _latest_figures(watcher, EDGE_A)
    assert scan is not None
    assert set(scan) == {"upload_backlog", "error_rate_percent"}
    version = _latest_apps(watcher, GPU_A)[0][1]
    fault = _inject(running, kind="slow", version=version, app="sorting-recognition", site=SITE_A, by=100)
    assert (fault["kind"], fault["version"], fault["by"]) == ("slow", version, 100.0)

    def slowed() -> dict[str, float] | None:
        now = _latest_figures(watcher, GPU_A)
        return now if now is not None and now["fps"] < 0.7 * before["fps"] else None

    during = wait_for(slowed, timeout=20, interval=0.2, what=f"{GPU_A} reporting lower fps")
    assert during["inference_latency_ms"] > 1.4 * before["inference_latency_ms"]
    edge = _latest_figures(watcher, EDGE_A)
    assert edge is not None
    assert edge["upload_backlog"] < 1.4 * scan["upload_backlog"], "scan-upload is not the slow app"

    httpx.delete(f"{running.url}/faults/{fault['id']}", timeout=10).raise_for_status()
    wait_for(
        lambda: (now := _latest_figures(watcher, GPU_A)) is not None and now["fps"] > 0.85 * before["fps"],
        timeout=20,
        interval=0.2,
        what=f"{GPU_A} back at its fps",
    )


def test_its_registry_serves_the_fleets_images_through_the_hosts_file_and_a_tag_it_lacks_fails_the_pull(
    running: BackgroundSimulator,
) -> None:
    status = httpx.get(f"{running.url}/status", timeout=10).json()
    hosts = load_registry_hosts(Path(status["registry_hosts"]))
    endpoints = hosts.endpoints("registry.local:5000")
    assert endpoints is not None
    assert endpoints[0].url == status["registries"]["registry.local:5000"]
    url = _host_url(running)
    daemonset = f"{url}/apis/apps/v1/namespaces/edgefleet/daemonsets/sorting-recognition-{SITE_A}"
    old_image = httpx.get(daemonset, timeout=10).json()["spec"]["template"]["spec"]["containers"][0]["image"]
    # What the site runs is in the registry, under the digest a real client computes from the bytes served.
    repository, _, tag = old_image.removeprefix("registry.local:5000/").rpartition(":")
    served = httpx.get(
        f"{endpoints[0].url}/v2/{repository}/manifests/{tag}",
        headers={"Accept": "application/vnd.oci.image.index.v1+json"},
        timeout=10,
    )
    assert served.status_code == 200
    assert served.headers["Docker-Content-Digest"] == "sha256:" + hashlib.sha256(served.content).hexdigest()

    missing = old_image.rsplit(":", 1)[0] + ":9.9.8"
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "sorting-recognition", "image": missing}]}}}}
    answer = httpx.patch(
        daemonset, json=patch, headers={"Content-Type": "application/strategic-merge-patch+json"}, timeout=10
    )
    assert answer.status_code == 200, answer.text

    def refused() -> dict[str, str] | None:
        pods = httpx.get(
            f"{url}/api/v1/namespaces/edgefleet/pods",
            params={"labelSelector": f"edgefleet.io/site={SITE_A}"},
            timeout=10,
        ).json()["items"]
        for pod in pods:
            for container in pod.get("status", {}).get("containerStatuses", []):
                waiting = container.get("state", {}).get("waiting", {})
                if container.get("image") == missing and waiting.get("reason") in ("ErrImagePull", "ImagePullBackOff"):
                    return dict(waiting)
        return None

    waiting = wait_for(refused, timeout=30, interval=0.2, what=f"a pod failing to pull {missing}")
    if waiting["reason"] == "ErrImagePull":
        assert waiting["message"] == (
            f'Failed to pull image "{missing}": rpc error: code = NotFound desc = failed to pull and unpack image '
            f'"{missing}": failed to resolve reference "{missing}": {missing}: not found'
        )
    else:
        assert waiting["message"] == f'Back-off pulling image "{missing}"'
