"""Rollouts at fleet scale (issue 15, item 8): how long the real controller takes to take a release to the whole
simulated fleet, to roll it back, and to stop a bad one.

The demo's setup: Mosquitto (started here on a free loopback port), ``edgefleet sim run`` over every site of
``sites/`` (1,977 boxes beating every 10 s, the clusters served with the fleet's apps at their seeded releases)
in a process of its own, and the real ``Controller`` in this process (SQLite in a temporary directory, the
rollout reconciler on its own 2 s schedule, the gateway built from the simulator's kubeconfig). Nothing is ticked
by hand: the rollouts are started and commanded through ``RolloutService``, as the API does.

1. **Full-fleet rollout**: ``releases/scan-upload-1.14.0.yaml`` with its canary and waves (10%, 50%, 100%) and
   failure threshold, but no soak, no approval, no blackout, and ``maxInFlight`` as given (``--max-in-flight``,
   every site of a wave by default): the time from start to ``done``. Kubernetes API calls: every call the
   reconciler makes through its gateway (a counting wrapper around it: list, apply, delete), per site.
2. **Rollback**: ``rollback`` of that rollout: the time to ``rolled-back`` (every site's previous release
   applied) and until every box's heartbeat reports its previous version again.
3. **Auto-abort latency**: scan-upload 1.15.0 (the same release, renamed), a threshold of 0 failed sites and a
   soak of 60 s, with the simulator's ``crash-loop`` fault for 1.15.0 at the canary site; the controller's alert
   rules say an app is down after 5 s. The latency is from the ``app-down`` alert at that site (its start: the
   moment it fired: from then the site's alerts gate fails) to the rollout being seen ``aborting``/``aborted``
   (polled every 0.1 s).
4. **Baseline**: one site's release applied directly through the gateway (no rollout, no gate), timed until its
   edge node's heartbeat reports the version: the floor every wave pays (image pull plus up to one heartbeat).

    .venv/bin/python bench/rollout.py [--max-in-flight 100] [--settle 40]

Targets (issue 15): time to done <= 60 s; rollback <= 60 s; abort <= 5 s (one tick) after the crossing. Results
and how to read them: docs/performance.md, section "Rollouts".
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from edgefleet.clock import SystemClock  # noqa: E402
from edgefleet.cloud.controller import Controller  # noqa: E402
from edgefleet.cloud.k8s.gateway import ClusterGateway  # noqa: E402
from edgefleet.cloud.rollouts import rendering  # noqa: E402
from edgefleet.cloud.rollouts.store import StoredRollout  # noqa: E402
from edgefleet.cloud.settings import Settings  # noqa: E402
from edgefleet.ids import SiteId  # noqa: E402
from edgefleet.releases import load_release_text  # noqa: E402
from tests.support.peers import free_port, mosquitto, wait_for  # noqa: E402

APP = "scan-upload"
# The controller's alert rules: an app not running for 5 s is down; the simulator's now-and-then GPU noise
# (corrected ECC errors, warm GPUs) raises nothing that would fail a site of the rollout being measured.
NOTIFICATIONS = """\
apiVersion: edgefleet.io/v1
kind: Notifications
metadata: {name: rollout-bench}
spec:
  channels:
    - {name: nowhere, kind: webhook, url: "http://127.0.0.1:9/hooks"}
  routes:
    - {kinds: [clock-skew], channels: [nowhere]}
  rules:
    defaults: {appDownFor: 5s, eccCorrectedRise: 1000000, gpuTemperatureC: 120}
"""


class CountingGateway:
    """The controller's gateway, counting each call the reconciler makes through it, by method."""

    def __init__(self, inner: ClusterGateway) -> None:
        self._inner = inner
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if not callable(value):
            return value

        def counted(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.calls[name] += 1
            return value(*args, **kwargs)

        return counted

    def reset(self) -> Counter[str]:
        with self._lock:
            taken, self.calls = self.calls, Counter()
        return taken


def strategy(text: str, *, version: str, soak: str, max_in_flight: int, failed_sites: int) -> str:
    """The shipped release as this run takes it: no approval, no blackout; soak, sites in flight and threshold
    as given; another version when asked (a copy of the same release)."""
    document = yaml.safe_load(text)
    spec = document["spec"]
    old = spec["version"]
    spec["version"] = version
    document["metadata"]["name"] = f"{APP}-{version}"
    spec["images"] = {k: v.replace(f":{old}", f":{version}") for k, v in spec["images"].items()}
    plan = spec["strategy"]
    plan.pop("approvalBefore", None)
    plan.pop("blackouts", None)
    plan["soak"] = soak
    plan["maxInFlight"] = max_in_flight
    plan["failureThreshold"] = {"sites": failed_sites, "percentOfWave": 100}
    return str(yaml.safe_dump(document, sort_keys=False))


def bad_release(shipped: str, max_in_flight: int) -> str:
    """The release the abort is measured with: 1.15.0, a soak of 60 s and no failed site allowed."""
    return strategy(shipped, version="1.15.0", soak="60s", max_in_flight=max_in_flight, failed_sites=0)


def reported(controller: Controller) -> dict[str, str]:
    """The version of scan-upload each box's latest heartbeat reports running."""
    found = {}
    for box, live in controller.state.boxes.items():
        if live.heartbeat is None:
            continue
        for app in live.heartbeat.apps.apps:
            if app.name == APP and app.state == "running":
                found[str(box)] = app.version
    return found


def until(controller: Controller, rollout_id: str, states: set[str], *, timeout: float) -> tuple[float, StoredRollout]:
    """Poll the store every 0.1 s; (when the rollout was first seen in one of ``states``, the rollout)."""
    store = controller.rollout_store

    def check() -> StoredRollout | None:
        current = store.get(rollout_id)
        return current if current.status.state in states else None

    found = wait_for(check, timeout=timeout, interval=0.1, what=f"rollout {rollout_id} to be {states}")
    return time.time(), found


def wave_times(rollout: StoredRollout, started: float) -> list[dict[str, float | None]]:
    """Per wave, seconds from the rollout's start to the tick that applied its sites and to the tick that saw the
    gates of its last site pass (with no soak: when it passed). Ticks date their decisions when they begin."""

    def since(times: list[float]) -> float | None:
        return round(max(times) - started, 1) if times else None

    out = []
    for wave in rollout.spec.waves:
        sites = [rollout.status.site(s) for s in wave.sites]
        applied = since([s.started_at for s in sites if s.started_at is not None])
        passed = since([s.soaking_since for s in sites if s.soaking_since is not None])
        out.append({"applied": applied, "passed": passed})
    return out


def timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-in-flight", type=int, default=100, help="the release's maxInFlight (sites)")
    parser.add_argument("--settle", type=float, default=40.0, help="seconds for every box to come online")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    load = os.getloadavg()
    figures: dict[str, Any] = {"load_before": [round(x, 2) for x in load], "max_in_flight": args.max_in_flight}
    shipped = (REPO / "releases" / "scan-upload-1.14.0.yaml").read_text()
    with (
        tempfile.TemporaryDirectory() as name,
        mosquitto(Path(name), extra_config="max_connections -1\n") as broker,
    ):
        directory = Path(name)
        kubeconfig = directory / "sim.kubeconfig"
        # The simulated registry serves the images of these releases: the shipped ones and the bench's bad 1.15.0
        # (a tag no registry has would fail every pull, not only the crash-looping canary's).
        releases = directory / "releases"
        shutil.copytree(REPO / "releases", releases)
        (releases / f"{APP}-1.15.0.yaml").write_text(bad_release(shipped, args.max_in_flight))
        registries = directory / "registries"
        control = f"127.0.0.1:{free_port()}"
        sim_log = (directory / "simulator.log").open("wb")
        simulator = subprocess.Popen(
            [
                *(sys.executable, "-m", "edgefleet.cli", "sim", "run", "--sites", str(REPO / "sites")),
                *("--broker", broker.url, "--listen", control, "--kubeconfig", str(kubeconfig)),
                *("--releases", str(releases), "--registry-hosts", str(registries)),
            ],
            cwd=REPO,
            stdout=sim_log,
            stderr=subprocess.STDOUT,
        )
        controller: Controller | None = None
        try:
            wait_for(kubeconfig.exists, timeout=120, interval=0.5, what="the simulator's kubeconfig")
            (directory / "notifications.yaml").write_text(NOTIFICATIONS)
            settings = Settings(
                broker_url=broker.url,
                database_url=f"sqlite:///{directory}/edgefleet.db",
                sites_dir=REPO / "sites",
                kubeconfig=kubeconfig,
                releases_dir=REPO / "releases",  # what an abort or rollback goes back to
                registry_config=registries,  # images pinned by digest at each start, as in the demo
                notifications_file=directory / "notifications.yaml",
            )
            controller = Controller(settings, clock=SystemClock())
            gateway = controller.gateway
            assert gateway is not None
            assert controller.rollouts is not None
            running = controller
            counting = CountingGateway(gateway)
            controller.reconciler.gateway = counting
            controller.start()
            boxes = len(controller.state.boxes)
            edge = {
                str(b.id)
                for s in controller.state.inventory.sites.values()
                if s.kind == "transfer-center"
                for b in controller.state.inventory.site_boxes(s.id)
                if b.role == "edge-node"
            }

            def every_edge_node() -> dict[str, str] | None:
                now = reported(running)
                return now if edge <= set(now) else None

            before = wait_for(
                every_edge_node,
                timeout=args.settle + 60,
                interval=0.5,
                what="every edge node to report scan-upload",
            )
            time.sleep(args.settle)  # the rest of the fleet online, its first heartbeats heard
            figures["boxes"] = boxes
            figures["edge_nodes"] = len(edge)

            # 1. The full-fleet rollout.
            good = strategy(shipped, version="1.14.0", soak="0s", max_in_flight=args.max_in_flight, failed_sites=3)
            counting.reset()
            started = time.time()
            rollout, _ = controller.rollouts.start(good, by="bench")
            ended, done = until(controller, rollout.id, {"done", "aborted", "aborting"}, timeout=600)
            calls = counting.reset()
            sites = len(done.status.sites)
            failed = {s: v.reason for s, v in done.status.sites.items() if v.state == "failed"}
            figures["rollout"] = {
                "state": done.status.state,
                "reason": done.status.reason,
                "sites": sites,
                "waves": [len(w.sites) for w in done.spec.waves],
                "seconds": round(ended - started, 1),
                "gateway_calls": dict(calls),
                "gateway_calls_per_site": round(sum(calls.values()) / max(1, sites), 2),
                "ticks": controller.reconciler.ticks,
                "wakes": controller.reconciler.wakes,
                "failed": failed,
                "waves_s": wave_times(done, started),
            }
            print("rollout:", json.dumps(figures["rollout"]), flush=True)

            # 2. Its rollback.
            started = time.time()
            controller.rollouts.command(rollout.id, "rollback", by="bench")
            ended, back = until(controller, rollout.id, {"rolled-back"}, timeout=600)
            calls = counting.reset()
            changed = {b: v for b, v in before.items() if b in edge}

            def reverted() -> bool:
                now = reported(running)
                return all(now.get(b) == v for b, v in changed.items())

            wait_for(reverted, timeout=300, interval=0.2, what="every edge node to report its previous version")
            figures["rollback"] = {
                "state": back.status.state,
                "seconds_to_rolled_back": round(ended - started, 1),
                "seconds_to_heartbeats": round(time.time() - started, 1),
                "gateway_calls": dict(calls),
                "gateway_calls_per_site": round(sum(calls.values()) / max(1, sites), 2),
            }
            print("rollback:", json.dumps(figures["rollback"]), flush=True)

            # 3. A bad release: auto-abort latency.
            bad = bad_release(shipped, args.max_in_flight)
            canary_site = "bj-daxing"
            httpx.post(
                f"http://{control}/faults",
                json={"kind": "crash-loop", "version": "1.15.0", "app": APP, "site": canary_site},
                timeout=10,
            ).raise_for_status()
            started = time.time()
            rollout, _ = controller.rollouts.start(bad, by="bench")
            seen, stopped = until(controller, rollout.id, {"aborting", "aborted"}, timeout=600)
            alerting = controller.alerting
            assert alerting is not None
            downs = [
                a
                for state in ("firing", "acknowledged", "resolved")
                for a in alerting.list_alerts(state=state, limit=10_000)
                if str(a.key.kind) == "app-down" and a.key.site == canary_site and a.fired_at >= started
            ]
            # When the alert fired: from then the site's alerts gate fails, and the threshold is crossed.
            crossing = min(a.fired_at for a in downs) if downs else None
            figures["abort"] = {
                "state": stopped.status.state,
                "stopped_because": stopped.status.stopped_because,
                "failing_gates": {
                    str(site): [
                        g.reason
                        for g in (gates.kubernetes, gates.agents, gates.alerts, gates.health)
                        if g.verdict == "fail"
                    ]
                    for site, gates in stopped.gates.items()
                },
                "seconds_from_start": round(seen - started, 1),
                "seconds_after_alert": round(seen - crossing, 2) if crossing is not None else None,
            }
            print("abort:", json.dumps(figures["abort"]), flush=True)
            until(controller, rollout.id, {"aborted"}, timeout=300)

            # 4. Baseline: one site applied directly, until its edge node reports the version.
            inventory = controller.state.inventory
            release = load_release_text(good, "release", inventory)
            site = SiteId("sh-pudong")
            cluster = inventory.sites[site].cluster
            counting.reset()
            started = time.time()
            for manifest in rendering.render(release, site, inventory, rollout_id=None):
                gateway.apply(cluster, manifest, force=True)
            box = f"{site}-edge-01"
            applied = time.time() - started
            wait_for(
                lambda: reported(running).get(box) == "1.14.0",
                timeout=120,
                interval=0.1,
                what=f"{box} to report 1.14.0",
            )
            one_site = time.time() - started
            figures["baseline_one_site"] = {
                "seconds_to_apply": round(applied, 3),
                "seconds_to_report": round(one_site, 1),
            }
            figures["ratios"] = {
                "rollout_over_one_site": round(figures["rollout"]["seconds"] / one_site, 1),
                "rollback_over_one_site": round(figures["rollback"]["seconds_to_heartbeats"] / one_site, 1),
            }
            print("baseline:", json.dumps(figures["baseline_one_site"]), flush=True)
        finally:
            if controller is not None:
                controller.stop()
            simulator.terminate()
            simulator.wait(60)
    figures["load_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(figures))
    missed = [
        what
        for what, value, target in (
            ("time to done", figures["rollout"]["seconds"], 60.0),
            ("rollback", figures["rollback"]["seconds_to_heartbeats"], 60.0),
            ("abort after the crossing", figures["abort"]["seconds_after_alert"] or 1e9, 5.0),
        )
        if value > target
    ]
    for what in missed:
        print(f"target missed: {what}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
