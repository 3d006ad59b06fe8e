"""Simulated cluster at fleet scale (issue 14, item 8): one KubeEdge host cluster holding every box of the
inventory as a node (1,977 for ``sites/``) and two pods per node (~4,000), served by the simulator's API server
in a process of its own while its kubelets renew their leases (a node every 10 s / n, as under ``sim run``).

Measured from this (client) process, against a baseline run in the same script:
- **list**: ``GET /api/v1/pods`` across namespaces in one response, as JSON and as kubectl's Table, and in pages
  of 500 as client-go lists; and the real ``kubectl get pods -A`` (process start included). Baseline: a
  ``GET /version`` round trip, the fixed cost of any request.
- **watch latency**: a watcher on every pod; the time from sending a label patch of one pod to its MODIFIED
  event arriving, over ``--changes`` patches. Baseline: the same patch's own round trip.
- **memory**: the server process's resident memory before the cluster is built, after its nodes and after its
  pods (``ru_maxrss`` and /proc VmRSS; the figure ``docs/performance.md`` records beside the fleet simulation).

Pods are created through the store (bound to their node, Running and Ready, with the fields a kubelet reports)
rather than by the workload controllers, so the figure is the API server's, not the controllers'.

    .venv/bin/python bench/cluster_scale.py [--sites sites] [--pods-per-node 2] [--changes 200]

Targets (issue 14): listing all pods under 1 s; a watcher sees a change within 100 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

TABLE = "application/json;as=Table;g=meta.k8s.io;v=v1"


# --- the server process ------------------------------------------------------------------------------------------


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def pod_manifest(node: str, site: str, app: str, index: int, *, now: str) -> dict[str, Any]:
    """A pod as a DaemonSet's pod reads on a real cluster once its kubelet reported it Running."""
    name = f"{app}-{node}"[:58] + f"-{index:04x}"[-5:]
    image = f"registry.local:5000/edgefleet/{app}:2.4.0"
    return {
        "metadata": {
            "name": name,
            "namespace": "edgefleet",
            "labels": {
                "app.kubernetes.io/name": app,
                "app.kubernetes.io/managed-by": "edgefleet",
                "edgefleet.io/site": site,
                "controller-revision-hash": "6d8f9c7b5d",
                "pod-template-generation": "3",
            },
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "DaemonSet",
                    "name": f"{app}-{site}",
                    "uid": "0f6a8f4e-5c1e-4b7e-9d5a-3c2b1a0f9e8d",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "nodeName": node,
            "containers": [
                {
                    "name": app,
                    "image": image,
                    "ports": [{"containerPort": 8080, "name": "metrics", "protocol": "TCP"}],
                    "env": [{"name": "EDGEFLEET_SITE", "value": site}, {"name": "LOG_LEVEL", "value": "info"}],
                    "resources": {
                        "limits": {"cpu": "2", "memory": "2Gi"},
                        "requests": {"cpu": "200m", "memory": "1Gi"},
                    },
                    "volumeMounts": [{"name": "models", "mountPath": "/models", "readOnly": True}],
                }
            ],
            "volumes": [{"name": "models", "hostPath": {"path": "/var/lib/edgefleet/models", "type": "Directory"}}],
            "tolerations": [
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
            ],
            "restartPolicy": "Always",
            "schedulerName": "default-scheduler",
        },
        "status": {
            "phase": "Running",
            "hostIP": "10.1.2.3",
            "podIP": f"172.16.{index // 250}.{index % 250 + 1}",
            "startTime": now,
            "conditions": [
                {"type": kind, "status": "True", "lastTransitionTime": now}
                for kind in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")
            ],
            "containerStatuses": [
                {
                    "name": app,
                    "image": image,
                    "imageID": f"{image}@sha256:{'ab' * 32}",
                    "containerID": f"containerd://{'cd' * 32}",
                    "ready": True,
                    "started": True,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": now}},
                }
            ],
        },
    }


def _renew(store: Any, *, name: str, now: float) -> None:
    from simulator.cluster.nodes import renew_lease

    renew_lease(store, name, now=now)


def serve(sites_dir: Path, pods_per_node: int) -> None:
    """The server process: build the cluster, print one JSON line (url, counts, memory), renew leases until stdin
    closes."""
    import gc
    import resource

    from edgefleet.clock import SystemClock, format_utc
    from edgefleet.inventory import load_inventory
    from simulator.cluster.nodes import site_boxes
    from simulator.cluster.resources import NAMESPACES, PODS
    from simulator.cluster.server import start_cluster_in_background
    from simulator.cluster.store import Store

    gc.collect()
    rss_start = _rss_bytes()
    inventory = load_inventory(sites_dir)
    boxes = [box for site in inventory.sites for box in site_boxes(inventory, site)]
    clock = SystemClock()
    cluster = start_cluster_in_background("fleet-host", boxes, clock=clock)
    gc.collect()
    rss_nodes = _rss_bytes()
    now = format_utc(clock.now())

    def seed(store: Store) -> int:
        store.create(NAMESPACES, {"metadata": {"name": "edgefleet"}})
        apps = ("sorting-recognition", "edge-exporter", "scan-upload", "log-shipper")
        created = 0
        for index, box in enumerate(boxes):
            for n in range(pods_per_node):
                app = apps[(n + (0 if box.gpus else 2)) % len(apps)]
                store.create(
                    PODS, pod_manifest(box.name, box.site, app, index * pods_per_node + n, now=now), "edgefleet"
                )
                created += 1
        return created

    pods = cluster.call(seed)
    gc.collect()
    rss_pods = _rss_bytes()
    print(
        json.dumps(
            {
                "url": cluster.url,
                "nodes": len(boxes),
                "pods": pods,
                "rss_start": rss_start,
                "rss_nodes": rss_nodes,
                "rss_pods": rss_pods,
                "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            }
        ),
        flush=True,
    )
    # The kubelets' load under ``sim run``: every node's lease renewed every 10 s, spread out.
    stop = threading.Event()

    def wait_for_stdin_to_close() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=wait_for_stdin_to_close, daemon=True).start()
    renew_every_s = 10.0 / max(1, len(boxes))
    index = 0
    while not stop.is_set():
        box = boxes[index % len(boxes)]
        cluster.call(partial(_renew, name=box.name, now=clock.now()))
        index += 1
        stop.wait(renew_every_s)
    cluster.stop()


# --- the client (this process) -----------------------------------------------------------------------------------


def timed(call: Any, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


def list_all(client: httpx.Client, *, table: bool = False, limit: int | None = None) -> int:
    headers = {"Accept": TABLE} if table else {}
    params: dict[str, Any] = {}
    if limit:
        params["limit"] = limit
    count = 0
    while True:
        answer = client.get("/api/v1/pods", params=params, headers=headers)
        answer.raise_for_status()
        body = answer.json()
        count += len(body["rows"] if table else body["items"])
        token = body["metadata"].get("continue")
        if not token:
            return count
        params["continue"] = token


def watch_latency(client: httpx.Client, url: str, changes: int) -> tuple[list[float], list[float]]:
    """Patch ``changes`` pods one after another; per change, the patch's round trip and the time until the
    watcher saw it."""
    listed = client.get("/api/v1/namespaces/edgefleet/pods").json()
    version = listed["metadata"]["resourceVersion"]
    names = [(p["metadata"]["namespace"], p["metadata"]["name"]) for p in listed["items"]]
    seen: dict[str, float] = {}
    arrived = threading.Condition()
    ready = threading.Event()

    def watch() -> None:
        with (
            httpx.Client(base_url=url, timeout=None) as watcher,
            watcher.stream(
                "GET",
                "/api/v1/pods",
                params={"watch": "true", "resourceVersion": version, "allowWatchBookmarks": "true"},
            ) as stream,
        ):
            ready.set()
            for line in stream.iter_lines():
                if not line:
                    continue
                event = json.loads(line)
                mark = (event["object"].get("metadata", {}).get("labels") or {}).get("bench-mark")
                if event["type"] == "MODIFIED" and mark:
                    with arrived:
                        seen[mark] = time.perf_counter()
                        arrived.notify_all()
                    if mark == f"m{changes - 1}":
                        return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    ready.wait(10)
    time.sleep(0.5)
    round_trips: list[float] = []
    latencies: list[float] = []
    for n in range(changes):
        namespace, name = names[(n * 37) % len(names)]
        mark = f"m{n}"
        start = time.perf_counter()
        client.patch(
            f"/api/v1/namespaces/{namespace}/pods/{name}",
            content=json.dumps({"metadata": {"labels": {"bench-mark": mark}}}),
            headers={"Content-Type": "application/merge-patch+json"},
        ).raise_for_status()
        round_trips.append(time.perf_counter() - start)
        with arrived:
            arrived.wait_for(partial(seen.__contains__, mark), timeout=5)
        if mark in seen:
            latencies.append(seen[mark] - start)
        time.sleep(0.05)  # 20 changes a second: a busy rollout's pace, not a flood
    watcher.join(5)
    return round_trips, latencies


def kubectl_get_pods(url: str, runs: int) -> tuple[list[float], list[float]] | None:
    binary = shutil.which("kubectl")
    if binary is None:
        return None
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "HOME": home}
        base = [binary, "--server", url, "--insecure-skip-tls-verify"]

        def run(*args: str) -> None:
            subprocess.run([*base, *args], env=env, capture_output=True, check=True, timeout=60)

        run("get", "pods", "-A")  # discovery cached once, as for a user's second command
        pods = timed(lambda: run("get", "pods", "-A"), runs)
        baseline = timed(lambda: run("get", "--raw", "/version"), runs)
    return pods, baseline


def ms(values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"median {statistics.median(values) * 1000:7.1f} ms, p99 {p99 * 1000:7.1f} ms (n={len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sites", type=Path, default=REPO / "sites")
    parser.add_argument("--pods-per-node", type=int, default=2)
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.sites, args.pods_per_node)
        return

    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--sites", str(args.sites), "--pods-per-node", str(args.pods_per_node)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        built = json.loads(server.stdout.readline())
        url = built["url"]
        mib = 1024 * 1024
        print(f"cluster: {built['nodes']} nodes, {built['pods']} pods at {url}")
        print(
            f"memory (server process, VmRSS): {built['rss_start'] / mib:.0f} MiB before the cluster, "
            f"+{(built['rss_nodes'] - built['rss_start']) / mib:.0f} MiB with its nodes and leases, "
            f"+{(built['rss_pods'] - built['rss_nodes']) / mib:.0f} MiB with its pods "
            f"(= {(built['rss_pods'] - built['rss_start']) / mib:.0f} MiB added; peak {built['maxrss'] / mib:.0f} MiB)"
        )
        with httpx.Client(base_url=url, timeout=60) as client:
            baseline = timed(lambda: client.get("/version").raise_for_status(), args.runs * 5)
            print(f"baseline GET /version:               {ms(baseline)}")
            base = statistics.median(baseline)
            for label, kwargs in (
                ("list all pods, JSON, one response", {}),
                ("list all pods, Table, one response", {"table": True}),
                ("list all pods, JSON, pages of 500", {"limit": 500}),
            ):
                assert list_all(client, **kwargs) == built["pods"]
                times = timed(lambda kwargs=kwargs: list_all(client, **kwargs), args.runs)
                verdict = "under 1 s" if statistics.median(times) < 1 else "OVER 1 s"
                print(f"{label + ':':37s}{ms(times)}  = {statistics.median(times) / base:6.0f} x baseline  ({verdict})")
            round_trips, latencies = watch_latency(client, url, args.changes)
            missed = args.changes - len(latencies)
            late = sum(1 for latency in latencies if latency >= 0.1)
            verdict = f"max {max(latencies) * 1000:.1f} ms; {late} of {len(latencies)} at 100 ms or more"
            print(f"patch round trip (baseline):         {ms(round_trips)}")
            print(
                f"watch latency (patch sent -> event): {ms(latencies)}  = "
                f"{statistics.median(latencies) / statistics.median(round_trips):4.1f} x the round trip "
                f"({verdict}; {missed} never seen)"
            )
        measured = kubectl_get_pods(url, max(3, args.runs // 2))
        if measured is None:
            print("kubectl: not on PATH, skipped")
        else:
            pods, kubectl_base = measured
            print(f"kubectl get --raw /version (baseline): {ms(kubectl_base)}")
            print(
                f"kubectl get pods -A:                 {ms(pods)}  = "
                f"{statistics.median(pods) / statistics.median(kubectl_base):4.1f} x baseline"
            )
    finally:
        if server.stdin:
            server.stdin.close()
        server.wait(30)


if __name__ == "__main__":
    main()
