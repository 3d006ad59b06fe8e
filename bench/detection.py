"""Detection: from the moment a box goes silent to the moment its notification reaches a webhook (issue 3, item 7).

Everything real, each in a process of its own, on one machine: Mosquitto (started here on a free loopback port),
the simulator playing ``--sites`` x ``--boxes-per-site`` boxes (``edgefleet sim run``, a heartbeat every 10 s
with ``--jitter`` and ``--loss``), the controller (``edgefleet cloud serve``, SQLite, a notification file that
sends lost-contact alerts to a recording webhook receiver in this process). The inventory is generated in a
temporary directory with the sites' default heartbeat settings (3 x 10 s). Phases, each on sites of its own:

1. false alarms: ``--quiet-minutes`` without any fault; every lost-contact alert fired meanwhile is a false
   alarm (the issue's target is zero over 10 minutes with 20% jitter and 1% loss);
2. silent boxes: ``--samples`` boxes (one per site) stop heartbeating (fault ``stop``, the connection stays up),
   one every ``--stagger`` seconds; latency = webhook receive time - stop time (target p99 <= timeout + 2 s);
3. TCP drops: ``--samples`` boxes lose their connection (fault ``drop``, the broker sends the Last Will at once,
   the box reconnects by itself); latency as above (target p99 <= 2 s);
4. site cuts: ``--cuts`` sites lose their network (fault ``cut``) for ``--cut-seconds``; each must give exactly
   one notification when it goes down (site-unreachable, no box of it told alone) and one resolve notice.

Prints the figures and a JSON line; exit status 1 when a target is missed. The timeout is the controller's own,
``fleet.heartbeat_timeout``: 3 x 10 s plus its 20% jitter allowance, 36 s.

    .venv/bin/python bench/detection.py                      # about 6 minutes, 2 quiet minutes
    .venv/bin/python bench/detection.py --quiet-minutes 10   # the issue's 10-minute false-alarm run

Results and how to read them: docs/performance.md, section "Detection".
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from edgefleet.cloud.fleet import heartbeat_timeout  # noqa: E402
from tests.support.peers import free_port, mosquitto  # noqa: E402
from tests.support.receivers import RecordingReceiver, recording_receiver  # noqa: E402

INTERVAL_S: Final = 10.0
MISSED_BEATS: Final = 3
# The targets: a silent box within its timeout + 2 s, a dropped connection within 2 s.
SILENT_MARGIN_S: Final = 2.0
DROP_TARGET_S: Final = 2.0
# The agent's default keepalive: a cut box's will comes ~1.5 x this after its last packet.
KEEPALIVE_S: Final = 10
WEBHOOK_PATH: Final = "/hooks/edgefleet"
LOST_CONTACT: Final = ("box-lost", "box-flapping", "site-unreachable")
# How long a phase waits for a notice beyond its target before calling it missing.
GRACE_S: Final = 20.0
POLL_S: Final = 0.2


# --- the fleet ----------------------------------------------------------------------------------------------


def write_inventory(directory: Path, sites: int, boxes_per_site: int, interval_s: float = INTERVAL_S) -> list[str]:
    """``sites`` transfer centers ``tc-001``..., each one edge node and GPU boxes, heartbeat 3 x ``interval_s``."""
    directory.mkdir(parents=True, exist_ok=True)
    ids = []
    for number in range(1, sites + 1):
        site = f"tc-{number:03d}"
        ids.append(site)
        boxes = [f"    - {{name: {site}-edge-01, role: edge-node, model: Dell PowerEdge XR11}}\n"]
        boxes += [
            f"    - {{name: {site}-gpu-{i:02d}, role: gpu-box, model: Dell PowerEdge R750xa,\n"
            '       gpu: {model: NVIDIA L4, count: 1, driverVersion: "550.90.07"}}\n'
            for i in range(1, boxes_per_site)
        ]
        (directory / f"{site}.yaml").write_text(
            "apiVersion: edgefleet.io/v1\nkind: Site\n"
            f"metadata: {{name: {site}}}\n"
            f'spec:\n  kind: transfer-center\n  displayName: "Center {number}"\n  region: east\n'
            "  timezone: Asia/Shanghai\n  cluster: bench-edge\n"
            f"  heartbeat: {{intervalSeconds: {interval_s:g}, missedBeats: {MISSED_BEATS}}}\n"
            "  boxes:\n" + "".join(boxes)
        )
    # Every site names the cluster that holds its nodes (docs/inventory.md): one KubeEdge host for them all.
    (directory / "clusters.yaml").write_text(
        "apiVersion: edgefleet.io/v1\nkind: Cluster\nmetadata: {name: bench-edge}\n"
        "spec: {role: kubeedge-host, context: bench-edge, region: east}\n"
    )
    return ids


def write_notifications(path: Path, webhook: str) -> Path:
    """Lost-contact alerts to the webhook with the default timing (one message per site per 30 s)."""
    path.write_text(
        "apiVersion: edgefleet.io/v1\nkind: Notifications\nmetadata: {name: detection-bench}\nspec:\n"
        f"  channels:\n    - {{name: bench, kind: webhook, url: '{webhook}{WEBHOOK_PATH}'}}\n"
        f"  routes:\n    - kinds: [{', '.join(LOST_CONTACT)}]\n      channels: [bench]\n"
    )
    return path


@contextlib.contextmanager
def process(args: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m edgefleet.cli ARGS`` with its output in ``log``; SIGTERM (then SIGKILL) at the end."""
    with log.open("wb") as output:
        child = subprocess.Popen(
            [sys.executable, "-m", "edgefleet.cli", *args], cwd=REPO, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        yield child
    finally:
        child.terminate()
        try:
            child.wait(30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def wait(check: Callable[[], Any], *, timeout: float, what: str, alive: list[subprocess.Popen[bytes]]) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        for child in alive:
            if child.poll() is not None:
                raise SystemExit(f"a process exited while waiting for {what}: {child.args!r}; see its log")
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(POLL_S)


@dataclass
class Bench:
    receiver: RecordingReceiver
    sim_url: str
    api_url: str
    alive: list[subprocess.Popen[bytes]]
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30, trust_env=False))

    def inject(self, **body: object) -> float:
        """Inject a fault; returns the wall time just before the request."""
        at = time.time()
        response = self.http.post(f"{self.sim_url}/faults", json=body)
        if response.status_code != 201:
            raise SystemExit(f"the simulator refused {body}: {response.text}")
        return at

    def clear_all(self) -> None:
        self.http.delete(f"{self.sim_url}/faults").raise_for_status()

    def notices(self) -> list[tuple[float, dict[str, Any]]]:
        """(receive time, alert) of every alert in every webhook message so far."""
        out = []
        for request in self.receiver.received:
            if request.path == WEBHOOK_PATH:
                out += [(request.at, alert) for alert in request.json()["alerts"]]
        return out

    def first_notice(self, box: str, kind: str) -> float | None:
        for at, alert in self.notices():
            if alert["box"] == box and alert["kind"] == kind and alert["notice"] == "firing":
                return at
        return None

    def stored_lost(self, box: str, *, after: float) -> list[dict[str, Any]]:
        """The box-lost alerts of ``box`` fired after ``after``, as stored: muted by what, resolved when."""
        site = box.rsplit("-", 2)[0]
        alerts = self.http.get(f"{self.api_url}/api/v1/alerts", params={"site": site, "kind": "box-lost"}).json()
        keys = ("id", "state", "muted", "muted_by", "fired_at", "resolved_at")
        return [{k: a[k] for k in keys} for a in alerts if a["box"] == box and _epoch(a["fired_at"]) >= after]

    def fired_between(self, start: float, end: float) -> list[dict[str, Any]]:
        """Lost-contact alerts the controller fired (stored, told or not) between ``start`` and ``end``."""
        found = []
        for kind in LOST_CONTACT:
            alerts = self.http.get(f"{self.api_url}/api/v1/alerts", params={"kind": kind, "limit": 1000}).json()
            found += [a for a in alerts if start <= _epoch(a["fired_at"]) < end]
        return found


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


# --- phases -------------------------------------------------------------------------------------------------


def quiet(bench: Bench, minutes: float) -> dict[str, Any]:
    start = time.time()
    print(f"false alarms: {minutes:g} min without faults ...", flush=True)
    time.sleep(minutes * 60)
    fired = bench.fired_between(start, time.time())
    told = [a for at, a in bench.notices() if at >= start and a["notice"] == "firing"]
    return {
        "minutes": minutes,
        "fired": len(fired),
        "told": len(told),
        "alerts": [
            {"kind": a["kind"], "box": a["box"] or a["site"], "reason": a["details"].get("reason")} for a in fired
        ],
    }


def latencies(bench: Bench, kind: str, boxes: list[str], stagger_s: float, target_s: float) -> dict[str, Any]:
    print(f"{kind}: {len(boxes)} boxes, one every {stagger_s:g} s ...", flush=True)
    started: dict[str, float] = {}
    for box in boxes:
        started[box] = bench.inject(kind=kind, box=box)
        time.sleep(stagger_s)
    deadline = max(started.values()) + target_s + GRACE_S
    while time.time() < deadline and any(bench.first_notice(b, "box-lost") is None for b in boxes):
        time.sleep(POLL_S)
    measured = {b: at - started[b] for b in boxes if (at := bench.first_notice(b, "box-lost")) is not None}
    values = list(measured.values())
    bench.clear_all()
    missing = sorted(set(boxes) - set(measured))
    return {
        "boxes": len(boxes),
        "told": len(values),
        "missing": missing,
        # What the controller stored of each box that was not told: muted by what, resolved when.
        "missing_stored": [bench.stored_lost(box, after=started[box]) for box in missing],
        "p50_s": round(statistics.median(values), 2) if values else None,
        "p99_s": round(percentile(values, 0.99), 2) if values else None,
        "max_s": round(max(values), 2) if values else None,
        "min_s": round(min(values), 2) if values else None,
        "target_s": target_s,
    }


def cuts(bench: Bench, sites: list[str], seconds: float) -> dict[str, Any]:
    print(f"cuts: {len(sites)} sites for {seconds:g} s ...", flush=True)
    start = time.time()
    cut_at = {site: bench.inject(kind="cut", site=site, seconds=seconds) for site in sites}
    end = start + seconds + 60.0  # the boxes reconnect, then the resolve waits for the site's group interval

    def resolved(site: str) -> bool:
        return any(
            a["site"] == site and a["kind"] == "site-unreachable" and a["notice"] == "resolved"
            for _, a in bench.notices()
        )

    while time.time() < end and not all(resolved(s) for s in sites):
        time.sleep(POLL_S)
    out = []
    for site in sites:
        about = [(at, a) for at, a in bench.notices() if a["site"] == site and at >= start]
        messages = [
            r for r in bench.receiver.received if r.path == WEBHOOK_PATH and r.at >= start and site in r.json()["sites"]
        ]
        firing = [at for at, a in about if a["kind"] == "site-unreachable" and a["notice"] == "firing"]
        out.append(
            {
                "site": site,
                "messages": len(messages),
                "site_firing": len(firing),
                "site_resolved": sum(
                    1 for _, a in about if a["kind"] == "site-unreachable" and a["notice"] == "resolved"
                ),
                "box_notices": sum(1 for _, a in about if a["kind"] != "site-unreachable"),
                "told_after_s": round(firing[0] - cut_at[site], 2) if firing else None,
            }
        )
    return {"seconds": seconds, "sites": out}


def pass_cost(sites_dir: Path, rounds: int) -> dict[str, float]:
    """The alert loop's pass over the whole fleet, in this process: every box with a fresh heartbeat (as after the
    ingest took it), no alert firing - the common pass. Times the copy under the fleet lock and the whole pass."""
    from edgefleet.agent.reporting import BoxReporter
    from edgefleet.clock import SystemClock
    from edgefleet.cloud.alerting.looping import AlertLoop
    from edgefleet.cloud.fleet import FleetState, apply_heartbeat, copy_box
    from edgefleet.cloud.migrating import upgrade_schema
    from edgefleet.cloud.store import Store
    from edgefleet.inventory import load_inventory
    from edgefleet.messages import AppReport, AppState, GpuReport, GpuSample, HostSample

    clock = SystemClock()
    state = FleetState.for_inventory(load_inventory(sites_dir))
    host = HostSample(cpu_percent=30.0, memory_total_bytes=2**36, memory_available_bytes=2**35)
    gpu = GpuReport(available=True, gpus=[GpuSample(index=0, name="NVIDIA L4", uuid="GPU-0", temperature_c=55.0)])
    apps = AppReport(source="file:/etc/edgefleet/apps.json", apps=[AppState(name="a", version="1", state="running")])
    for box in state.inventory.boxes.values():
        reporter = BoxReporter(box.id, box.site, interval_s=INTERVAL_S, clock=clock)
        apply_heartbeat(state.boxes[box.id], reporter.heartbeat(host, gpu, apps), received_at=clock.now())
    store = Store("sqlite:///:memory:")
    try:
        upgrade_schema(store)
        loop = AlertLoop(state, store, clock=clock, config=None)
        copies, passes = [], []
        for _ in range(rounds):
            started = time.perf_counter()
            with state.lock:
                {box: copy_box(live) for box, live in state.boxes.items()}
            copies.append(time.perf_counter() - started)
            passes.append(loop.run_pass().seconds)
    finally:
        store.close()
    return {
        "lock_held_ms": round(statistics.median(copies) * 1000, 1),
        "pass_ms_p50": round(statistics.median(passes) * 1000, 1),
        "pass_ms_max": round(max(passes) * 1000, 1),
    }


# --- main ---------------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sites", type=int, default=100)
    parser.add_argument("--boxes-per-site", type=int, default=20)
    parser.add_argument("--samples", type=int, default=40, help="boxes per latency phase (one per site)")
    parser.add_argument("--stagger", type=float, default=0.5, help="seconds between two faults of a phase")
    parser.add_argument("--cuts", type=int, default=3, help="sites cut in the cut phase")
    parser.add_argument("--cut-seconds", type=float, default=45.0)
    parser.add_argument("--quiet-minutes", type=float, default=2.0, help="the false-alarm phase (issue: 10)")
    parser.add_argument("--jitter", type=float, default=0.2)
    parser.add_argument("--loss", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep-logs", type=Path, help="copy the controller's and simulator's logs here on a miss")
    args = parser.parse_args()
    if 2 * args.samples + args.cuts > args.sites:
        parser.error(f"--samples x 2 + --cuts must fit in --sites ({args.sites}): every box of a phase has a site")

    with tempfile.TemporaryDirectory(prefix="edgefleet-detection-") as tmp:
        directory = Path(tmp)
        sites = write_inventory(directory / "sites", args.sites, args.boxes_per_site)
        timeout_s = heartbeat_timeout(INTERVAL_S, MISSED_BEATS)
        boxes = args.sites * args.boxes_per_site
        cost = pass_cost(directory / "sites", rounds=20)
        with mosquitto(directory) as broker, recording_receiver() as receiver:
            notifications = write_notifications(directory / "notifications.yaml", receiver.url)
            sim_port, api_port = free_port(), free_port()
            common = ["--sites", str(directory / "sites"), "--broker", broker.url]
            sim_args = ["sim", "run", *common, "--listen", f"127.0.0.1:{sim_port}", "--keepalive", str(KEEPALIVE_S)]
            sim_args += ["--jitter", str(args.jitter), "--loss", str(args.loss), "--seed", str(args.seed)]
            api_args = ["cloud", "serve", *common, "--listen", f"127.0.0.1:{api_port}"]
            api_args += ["--database", f"sqlite:///{directory / 'edgefleet.db'}", "--notifications", str(notifications)]
            controller_log = directory / "controller.log"
            with (
                process(sim_args, directory / "simulator.log") as sim,
                process(api_args, controller_log) as controller,
            ):
                alive = [sim, controller]
                bench = Bench(receiver, f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{api_port}", alive)
                began = time.monotonic()
                print(f"starting {boxes} boxes and the controller ...", flush=True)
                wait(lambda: _online(bench) == boxes, timeout=120, what=f"{boxes} boxes online", alive=alive)
                wait(
                    lambda: "Started alert evaluation" in controller_log.read_text(errors="replace"),
                    timeout=120,
                    what="alert evaluation to start (one heartbeat timeout after the controller hears the broker)",
                    alive=alive,
                )
                print(f"ready after {time.monotonic() - began:.0f} s", flush=True)
                # The alert lists need a token (docs/security.md): a viewer's, made at the migrated database.
                bench.http.headers["Authorization"] = f"Bearer {_viewer_token(directory / 'edgefleet.db')}"
                results: dict[str, Any] = {
                    "pass": cost,
                    "boxes": boxes,
                    "sites": args.sites,
                    "jitter": args.jitter,
                    "loss": args.loss,
                    "timeout_s": timeout_s,
                }
                results["false_alarms"] = quiet(bench, args.quiet_minutes)
                silent_boxes = [f"{s}-gpu-01" for s in sites[: args.samples]]
                dropped_boxes = [f"{s}-gpu-02" for s in sites[args.samples : 2 * args.samples]]
                results["silent"] = latencies(bench, "stop", silent_boxes, args.stagger, timeout_s + SILENT_MARGIN_S)
                results["drop"] = latencies(bench, "drop", dropped_boxes, args.stagger, DROP_TARGET_S)
                cut_sites = sites[2 * args.samples : 2 * args.samples + args.cuts]
                results["cut"] = cuts(bench, cut_sites, args.cut_seconds)
                results["controller_process"] = _process_figures(controller.pid)
            code = report(results)
            if code and args.keep_logs:
                args.keep_logs.mkdir(parents=True, exist_ok=True)
                for log in ("controller.log", "simulator.log"):
                    shutil.copy(directory / log, args.keep_logs / log)
                print(f"logs kept in {args.keep_logs}")
        return code


def _viewer_token(database: Path) -> str:
    from edgefleet.cloud.access.token_store import TokenStore
    from edgefleet.cloud.store import Store

    store = Store(f"sqlite:///{database}")
    try:
        secret, _ = TokenStore(store).create("bench", "viewer", None, now=time.time(), expires_in_s=None)
    finally:
        store.close()
    return secret


def _online(bench: Bench) -> int:
    try:
        return int(bench.http.get(f"{bench.api_url}/healthz").json()["boxes_online"])
    except (httpx.HTTPError, ValueError, KeyError):
        return 0


def _process_figures(pid: int) -> dict[str, float]:
    """CPU seconds and resident memory of the controller since it started."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    after = stat[stat.rindex(")") + 2 :].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return {
        "cpu_s": round((int(after[11]) + int(after[12])) / ticks, 1),
        "rss_mb": round(int(after[21]) * os.sysconf("SC_PAGE_SIZE") / 2**20, 1),
    }


def report(results: dict[str, Any]) -> int:
    missed = []
    quiet_phase = results["false_alarms"]
    print(
        f"\n{results['boxes']} boxes beating every {INTERVAL_S:g} s, jitter {results['jitter']:.0%}, "
        f"loss {results['loss']:.0%}, timeout {results['timeout_s']:g} s"
    )
    print(f"false alarms in {quiet_phase['minutes']:g} min: {quiet_phase['fired']} fired, {quiet_phase['told']} told")
    for alert in quiet_phase["alerts"]:
        print(f"  {alert['kind']} {alert['box']} ({alert['reason']})")
    if quiet_phase["fired"]:
        missed.append("false alarms")
    for name, label in (("silent", "silent box (stop)"), ("drop", "TCP drop")):
        phase = results[name]
        print(
            f"{label}: {phase['told']}/{phase['boxes']} told, p50 {phase['p50_s']} s, p99 {phase['p99_s']} s, "
            f"min {phase['min_s']} s, max {phase['max_s']} s (target p99 <= {phase['target_s']:g} s)"
        )
        for box, stored in zip(phase["missing"], phase["missing_stored"], strict=True):
            print(f"  not told: {box}; stored as {stored or 'nothing'}")
        if phase["missing"] or phase["p99_s"] is None or phase["p99_s"] > phase["target_s"]:
            missed.append(label)
    for site in results["cut"]["sites"]:
        print(
            f"cut {site['site']}: {site['messages']} messages ({site['site_firing']} firing, "
            f"{site['site_resolved']} resolved, {site['box_notices']} box notices), told after {site['told_after_s']} s"
        )
        if (site["site_firing"], site["site_resolved"], site["box_notices"]) != (1, 1, 0):
            missed.append(f"cut {site['site']}")
    cost = results["pass"]
    print(
        f"alert pass over {results['boxes']} boxes: {cost['pass_ms_p50']} ms (max {cost['pass_ms_max']} ms), "
        f"fleet lock held {cost['lock_held_ms']} ms for the copy"
    )
    print(f"controller: {results['controller_process']['cpu_s']} s CPU, {results['controller_process']['rss_mb']} MB")
    print(json.dumps(results))
    if missed:
        print(f"MISSED: {', '.join(missed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
