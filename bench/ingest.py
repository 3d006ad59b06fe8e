"""Ingest throughput: heartbeats/s that reach the controller's live state, against a bare paho subscriber.

Both consumers are measured in the same run, on the same Mosquitto (started here on a free loopback port, with
the settings in ``broker_config``), under the same load: one C publisher per box (``mosquitto_pub -l -q 1``, one
heartbeat per line of a file) floods realistic heartbeats - built by the agent's own ``BoxReporter``, 1 GPU and
two apps, about 1 KB as the agent encodes them - so the publisher is never the limit. Each consumer is a process
of its own, so its CPU time is its own:
- "bare": one paho-mqtt 2.x subscriber (MQTT 5 like the controller, or 3.1.1 with ``--bare-mqtt 3.1.1`` to
  compare with the reference) on the same shared-subscription filter the controller uses; it decodes each
  payload with msgspec and counts, nothing else;
- "ingest": the real controller (``Controller`` with everything its ``start()`` starts: ingest, persister to
  SQLite, alert loop; the whole inventory loaded) counting the heartbeats its live state accepted; first and last
  receive times are the live state's own ``first_seen`` and ``last_seen`` of the publishers' boxes.
A round runs both, in alternating order; medians over rounds are printed with the ratio and the targets of
the issue (ingest >= 60% of the bare rate, aim 80%, never below 2,000 heartbeats/s). A run in which either
consumer missed a heartbeat is invalid and says so (exit status 1), as does a missed target.

The alert loop is part of what the ingest round measures, as in production: a pass every second over the whole
inventory. So before it says "ready" the ingest consumer waits out the loop's warm-up (one heartbeat timeout of
the slowest site: 30 s for ``sites/``; the loop judges nothing before it), then gives every box the publishers do
not play one heartbeat, received now, so the passes judge a fleet that is online, not one never heard of. Each
ingest round prints how many passes ran between its first and its last heartbeat; a round in which none ran did
not measure the loop and makes the run invalid (exit status 1).

    scripts/bench ingest [...]   # installs Mosquitto and .venv if missing, then runs this
    .venv/bin/python bench/ingest.py [--messages 40000] [--publishers 4] [--rounds 3] [--bare-mqtt 5|3.1.1]

``--memory`` measures instead what the live state holds for the whole inventory (the in-memory history and the
latest heartbeat of every box), by tracemalloc; ``--hot-path`` times ``Ingest.handle`` alone, in process.

Results and how to read them: docs/performance.md, section "Ingest".
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, Final, TypedDict

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from edgefleet import messages, topics  # noqa: E402
from edgefleet.agent.reporting import BoxReporter  # noqa: E402
from edgefleet.clock import FakeClock  # noqa: E402
from edgefleet.errors import InventoryError  # noqa: E402
from edgefleet.ids import BoxId  # noqa: E402
from edgefleet.inventory import Box, load_inventory  # noqa: E402
from edgefleet.messages import AppReport, AppState, GpuReport, GpuSample, HostSample  # noqa: E402
from tests.support.peers import mosquitto  # noqa: E402

TARGET_RATIO: Final = 0.60
AIM_RATIO: Final = 0.80
# Ten times the 100-site fleet's steady 200 heartbeats/s (2,000 boxes at a 10 s interval).
FLOOR_PER_S: Final = 2_000
INTERVAL_S: Final = 10.0
# A consumer stops this long after its last message (lost messages end a round this way, not by a hang).
IDLE_END_S: Final = 3.0
# How long a consumer waits for its first message, and the driver for a consumer to say it is subscribed.
START_TIMEOUT_S: Final = 60.0
# Polling only checks "done yet?": receive times come from the consumers themselves, so a coarse poll costs
# the measured process next to nothing and blurs no figure.
POLL_S: Final = 0.05
GIB: Final = 1024**3
# The alert loop waits at most 300 s (its MAX_WARM_UP_S) after the ingest subscribed before its first pass.
WARM_UP_TIMEOUT_S: Final = 360.0
# --hot-path: heartbeats of this many GPU boxes, 20,000 in all; the minimum of a few runs is the figure least
# disturbed by whatever else the machine runs.
HOT_PATH_BOXES: Final = 50
HOT_PATH_HEARTBEATS: Final = 20_000
HOT_PATH_REPEATS: Final = 5


def broker_config(messages_per_round: int) -> str:
    """Mosquitto settings added to the test broker's (anonymous loopback listener, no persistence,
    ``max_inflight_messages 100``) so that a slow consumer gets every message instead of losing some silently."""
    return (
        # Past this many QoS 1 messages queued for one client (online or not) Mosquitto drops the newest
        # without a word (default 1,000). The publishers outrun either consumer, so the queue holds most of a
        # round: let it hold all of it. Memory is bounded by the round (~1 KB a message).
        f"max_queued_messages {messages_per_round}\n"
        # The byte bound must not cut in first (0, its default, is no bound: stated so a changed default shows).
        "max_queued_bytes 0\n"
    )


class Result(TypedDict):
    received: int
    span_s: float
    rate_per_s: float
    cpu_s: float
    outcomes: dict[str, int]
    # Alert passes that ran between the first and the last heartbeat received (ingest only; 0 for bare), their
    # median duration and the alerts they fired (how many, and how many of each kind).
    alert_passes: int
    # Of those, the passes held because the controller judged itself saturated (hearing "behind"): they keep the
    # fleet-level alert, and judge no box silence.
    alert_passes_held: int
    alert_pass_ms: float
    alerts_fired: int
    fired_kinds: dict[str, int]


def round_problems(kind: str, result: Result, expected: int) -> list[str]:
    """Why a consumer's round does not measure what the benchmark prints; empty when it does."""
    problems = []
    missed = expected - result["received"]
    if missed:
        problems.append(f"the {kind} consumer missed {missed} of {expected} heartbeats")
    if kind == "ingest" and result["alert_passes"] < 1:
        problems.append(
            "no alert pass ran while the controller took the heartbeats: the round did not measure the alert loop"
        )
    return problems


# --- heartbeats ---------------------------------------------------------------------------------------------


def heartbeat_lines(box: Box, count: int, *, seed: int) -> bytes:
    """``count`` heartbeats of ``box`` of one fresh boot, one JSON document a line, as the agent encodes them.

    Readings follow a random walk at full float precision, as /proc and NVML give them; the last one is sent
    about now.
    """
    rng = random.Random(f"{seed}:{box.id}")
    clock = FakeClock(time.time() - count * INTERVAL_S)
    reporter = BoxReporter(box.id, box.site, interval_s=INTERVAL_S, clock=clock)
    cpu, utilization, memory_free = 35.0, 60.0, 0.55
    lines = []
    for _ in range(count):
        clock.advance(INTERVAL_S)
        cpu = min(100.0, max(0.0, cpu + rng.gauss(0.0, 4.0)))
        utilization = min(100.0, max(0.0, utilization + rng.gauss(0.0, 5.0)))
        memory_free = min(0.95, max(0.05, memory_free + rng.gauss(0.0, 0.01)))
        host = HostSample(
            cpu_percent=cpu,
            load1=cpu * 0.16,
            load5=cpu * 0.15,
            load15=cpu * 0.14,
            memory_total_bytes=64 * GIB,
            memory_available_bytes=int(64 * GIB * memory_free),
            disk_total_bytes=960 * 10**9,
            disk_free_bytes=412 * 10**9,
            uptime_s=864_000.0 + clock.monotonic(),
        )
        gpu = GpuReport(
            available=True,
            driver_version="550.90.07",
            gpus=[
                GpuSample(
                    index=0,
                    name="NVIDIA T4",
                    uuid="GPU-5f0e1c2a-8d7b-4c3e-9a1f-2b3c4d5e6f70",
                    utilization_percent=utilization,
                    memory_used_bytes=int(16 * GIB * (0.25 + utilization / 200.0)),
                    memory_total_bytes=16 * GIB,
                    temperature_c=32.0 + 0.45 * utilization,
                    power_w=10.0 + 0.6 * utilization,
                    ecc_corrected_errors=2,
                    ecc_uncorrected_errors=0,
                )
            ],
        )
        apps = AppReport(
            source="file:/etc/edgefleet/apps.json",
            apps=[
                AppState(name="sorting-recognition", version="3.5.0", state="running"),
                AppState(name="scan-upload", version="1.13.1", state="running"),
            ],
        )
        lines.append(messages.encode(reporter.heartbeat(host, gpu, apps)))
    return b"\n".join(lines) + b"\n"


# --- consumers (child processes: `bench/ingest.py --consumer bare|ingest`) -------------------------------------


def consume_bare(port: int, expected: int, protocol: str) -> Result:
    import msgspec
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    decoder = msgspec.json.Decoder()
    seen = {"n": 0, "first": 0.0, "last": 0.0}
    clock = time.time  # the controller stamps receive times with the same clock

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        decoder.decode(message.payload)
        now = clock()
        if not seen["n"]:
            seen["first"] = now
        seen["n"] += 1
        seen["last"] = now

    def on_connect(client: mqtt.Client, *args: object) -> None:
        # The controller's filter, shared subscription included: the broker does the same work for both.
        client.subscribe(topics.shared(topics.HEARTBEAT_FILTER), qos=1)

    version = MQTTProtocolVersion.MQTTv5 if protocol == "5" else MQTTProtocolVersion.MQTTv311
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare", protocol=version)
    client.on_message = on_message
    client.on_connect = on_connect
    client.on_subscribe = lambda *args: print("ready", flush=True)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        return _wait_done(lambda: int(seen["n"]), lambda: (seen["first"], seen["last"]), expected)
    finally:
        client.disconnect()
        client.loop_stop()


def consume_ingest(port: int, expected: int, sites: Path, publishing: Collection[str]) -> Result:
    """The controller's round: ``publishing`` are the boxes whose heartbeats the publishers send."""
    from edgefleet.cloud.controller import Controller
    from edgefleet.cloud.settings import Settings

    with tempfile.TemporaryDirectory(prefix="edgefleet-bench-") as workdir:
        settings = Settings.from_env(
            {},
            broker_url=f"mqtt://127.0.0.1:{port}",
            database_url=f"sqlite:///{Path(workdir) / 'edgefleet.db'}",
            sites_dir=sites,
        )
        controller = Controller(settings)
        # The loop keeps no count of its passes: its scheduler job calls ``run_pass`` through the instance, so
        # this wrapper sees every pass, at the cost of one list append each. (evaluation time, seconds, fired)
        passes: list[tuple[float, float, int, bool]] = []
        run_pass = controller.alert_loop.run_pass

        def counted_pass() -> Any:
            report = run_pass()
            passes.append((report.at, report.seconds, report.fired, report.held))
            return report

        controller.alert_loop.run_pass = counted_pass  # type: ignore[method-assign]
        with controller:
            if not controller.ingest.wait_subscribed(START_TIMEOUT_S):
                raise SystemExit(f"the controller did not subscribe at 127.0.0.1:{port} within {START_TIMEOUT_S} s")
            _wait_for_alert_passes(controller.alert_loop)
            _hear_the_rest_of_the_fleet(controller, publishing)
            print("ready", flush=True)
            state = controller.state
            played = [state.boxes[BoxId(box)] for box in publishing]

            def receive_times() -> tuple[float, float]:
                with state.lock:
                    firsts = [b.first_seen for b in played if b.first_seen is not None]
                    lasts = [b.last_seen for b in played if b.last_seen is not None]
                return min(firsts, default=0.0), max(lasts, default=0.0)

            result = _wait_done(lambda: controller.ingest.counters["accepted"], receive_times, expected)
            result["outcomes"] = {k: v for k, v in controller.ingest.counters.items() if v}
            first, last = receive_times()
            during = [p for p in list(passes) if first <= p[0] <= last]
            result["alert_passes"] = len(during)
            result["alert_passes_held"] = sum(1 for p in during if p[3])
            result["alert_pass_ms"] = statistics.median(p[1] for p in during) * 1e3 if during else 0.0
            result["alerts_fired"] = sum(p[2] for p in during)
            fired = [a for a in controller.alerting.list_alerts(limit=100_000) if first <= a.fired_at <= last]
            result["fired_kinds"] = dict(collections.Counter(str(a.key.kind) for a in fired))
            return result


def _wait_for_alert_passes(alerting: Any) -> None:
    """Wait out the alert loop's warm-up: it judges nothing until every site could have been heard."""
    deadline = time.monotonic() + WARM_UP_TIMEOUT_S
    while not alerting.evaluating:
        if time.monotonic() > deadline:
            raise SystemExit(f"the controller's alert loop did not start evaluating within {WARM_UP_TIMEOUT_S:g} s")
        time.sleep(POLL_S)


def _hear_the_rest_of_the_fleet(controller: Any, publishing: Collection[str]) -> None:
    """One heartbeat, received now, for every box of the inventory that the publishers do not play, and saved:
    the passes then judge a fleet that is online (each box's reachability and health), as in production, and the
    one-off save of 2,000 boxes is done before the round. A round is far shorter than a heartbeat timeout, so no
    box goes quiet during it."""
    from edgefleet.cloud.fleet import apply_heartbeat

    state = controller.state
    decoded = [
        (box.id, messages.decode_heartbeat(heartbeat_lines(box, 1, seed=0).strip()))
        for box in state.inventory.boxes.values()
        if box.id not in publishing
    ]
    now = controller.clock.now()
    with state.lock:
        for box_id, heartbeat in decoded:
            apply_heartbeat(state.boxes[box_id], heartbeat, received_at=now)
    if not controller.persister.flush():
        raise SystemExit("the controller's persister could not save the fleet's first heartbeats to SQLite")


def _wait_done(count: Callable[[], int], receive_times: Callable[[], tuple[float, float]], expected: int) -> Result:
    """Wait until ``expected`` messages are in, or none came for a while; the consumer's figures."""
    cpu0 = time.process_time()
    idle_since = time.monotonic()
    last_n = 0
    while True:
        n = count()
        now = time.monotonic()
        if n != last_n:
            last_n, idle_since = n, now
        if n >= expected or (n and now - idle_since > IDLE_END_S) or now - idle_since > START_TIMEOUT_S:
            break
        time.sleep(POLL_S)
    cpu = time.process_time() - cpu0
    first, last = receive_times()
    span = max(last - first, 1e-9)
    return {
        "received": n,
        "span_s": span,
        "rate_per_s": (n - 1) / span if n > 1 else 0.0,
        "cpu_s": cpu,
        "outcomes": {},
        "alert_passes": 0,
        "alert_passes_held": 0,
        "alert_pass_ms": 0.0,
        "alerts_fired": 0,
        "fired_kinds": {},
    }


# --- the hot path alone (`bench/ingest.py --hot-path`) -------------------------------------------------------


def measure_hot_path(sites: Path) -> None:
    """CPU time of ``Ingest.handle`` per heartbeat, in process (no broker, no paho), beside msgspec's decode of
    the same payloads alone: what the controller adds to a bare subscriber, less paho's own cost.

    Uses only ``Ingest(state, url, clock=...)`` and ``handle``, so the same command measures an older checkout.
    """
    from edgefleet.clock import SystemClock
    from edgefleet.cloud.fleet import FleetState
    from edgefleet.cloud.ingesting import Ingest

    inventory = load_inventory(sites)
    boxes = [b for b in inventory.boxes.values() if b.role == "gpu-box"][:HOT_PATH_BOXES]
    per_box = HOT_PATH_HEARTBEATS // len(boxes)
    feeds = [
        (topics.heartbeat_topic(b.id), heartbeat_lines(b, per_box, seed=i).splitlines()) for i, b in enumerate(boxes)
    ]
    # Round-robin over the boxes, the order a fleet's heartbeats arrive in.
    stream = [(topic, lines[k]) for k in range(per_box) for topic, lines in feeds]

    def handle_us() -> float:
        ingest = Ingest(FleetState.for_inventory(inventory), "mqtt://127.0.0.1:1", clock=SystemClock())
        handle = ingest.handle
        cpu0 = time.process_time()
        for topic, payload in stream:
            handle(topic, payload)
        cpu = time.process_time() - cpu0
        if ingest.counters["accepted"] != len(stream):
            raise SystemExit(f"the ingest accepted {ingest.counters['accepted']} of {len(stream)}: {ingest.counters}")
        return cpu / len(stream) * 1e6

    def decode_us() -> float:
        cpu0 = time.process_time()
        for _, payload in stream:
            messages.decode_heartbeat(payload)
        return (time.process_time() - cpu0) / len(stream) * 1e6

    handle = [handle_us() for _ in range(HOT_PATH_REPEATS)]
    decode = [decode_us() for _ in range(HOT_PATH_REPEATS)]
    print(
        f"{len(stream)} heartbeats of {len(boxes)} boxes ({len(stream[0][1])} bytes), CPU time, {HOT_PATH_REPEATS} runs:"
    )
    print(f"Ingest.handle           : {min(handle):5.1f} us a heartbeat (median {statistics.median(handle):5.1f})")
    print(f"decode_heartbeat alone  : {min(decode):5.1f} us a heartbeat (median {statistics.median(decode):5.1f})")


# --- memory of the live state (`bench/ingest.py --memory`) ---------------------------------------------------


def measure_memory(sites: Path) -> None:
    """What the live state holds for the whole inventory once every box has sent an hour of heartbeats: the
    in-memory history (``HISTORY_POINTS`` points a box) and each box's latest decoded heartbeat, by tracemalloc.

    Only public names are used (``FleetState``, ``BoxLive.history.append``, ``HealthPoint``, ``apply_heartbeat``),
    so the same command measures an older checkout's history layout.
    """
    import gc
    import tracemalloc

    from edgefleet.cloud.fleet import HISTORY_POINTS, FleetState, HealthPoint, apply_heartbeat

    inventory = load_inventory(sites)
    state = FleetState.for_inventory(inventory)
    rng = random.Random(7)
    start = time.time() - HISTORY_POINTS * INTERVAL_S
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for box in inventory.boxes.values():
        history = state.boxes[box.id].history
        for k in range(HISTORY_POINTS):
            # Every reading its own float, as decoded heartbeats give them; boxes without a GPU have no GPU figures.
            has_gpu = box.gpu is not None
            history.append(
                HealthPoint(
                    start + k * INTERVAL_S + rng.random(),
                    rng.uniform(1.0, 100.0),
                    rng.uniform(20.0, 90.0),
                    rng.uniform(20.0, 90.0),
                    rng.uniform(35.0, 80.0) if has_gpu else None,
                    rng.uniform(0.0, 100.0) if has_gpu else None,
                )
            )
    gc.collect()
    history_bytes = tracemalloc.get_traced_memory()[0] - base
    for box in inventory.boxes.values():
        line = heartbeat_lines(box, 1, seed=7).strip()
        apply_heartbeat(state.boxes[box.id], messages.decode_heartbeat(line), received_at=time.time())
    gc.collect()
    heartbeat_bytes = tracemalloc.get_traced_memory()[0] - base - history_bytes
    tracemalloc.stop()
    boxes, points = len(inventory.boxes), len(inventory.boxes) * HISTORY_POINTS
    print(f"live state of {boxes} boxes ({len(inventory.sites)} sites), traced by tracemalloc:")
    print(
        f"history, {HISTORY_POINTS} points a box : {history_bytes / 1e6:6.1f} MB "
        f"({history_bytes / points:5.1f} B a point, {type(state.boxes[box.id].history).__name__})"
    )
    print(f"latest heartbeat a box    : {heartbeat_bytes / 1e6:6.1f} MB ({heartbeat_bytes / boxes:5.0f} B a box)")


# --- driver -------------------------------------------------------------------------------------------------


def _cpu_s(pid: int) -> float | None:
    """utime + stime of a process from /proc (Linux); None where that cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_round(
    kind: str,
    args: argparse.Namespace,
    port: int,
    broker_pid: int,
    feeds: list[tuple[Box, Path]],
    expected: int,
) -> tuple[dict[str, float], list[str]]:
    """One consumer's round: its figures, and the problems that make it invalid (``round_problems``)."""
    command = [sys.executable, __file__, "--consumer", kind, "--port", str(port), "--expected", str(expected)]
    command += ["--sites", str(args.sites), "--bare-mqtt", args.bare_mqtt]
    command += ["--boxes", ",".join(box.id for box, _ in feeds)]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert child.stdout is not None
    line = child.stdout.readline().strip()
    if line != "ready":
        child.kill()
        child.wait()
        raise SystemExit(f"the {kind} consumer did not start (it said {line!r}); see its error above")
    broker_cpu0 = _cpu_s(broker_pid)
    started = time.monotonic()
    publishers = []
    for box, path in feeds:
        topic = topics.heartbeat_topic(box.id)
        with path.open("rb") as lines:  # each publisher reads its own file: all of them flood at once
            publishers.append(
                subprocess.Popen(
                    ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-t", topic, "-l"], stdin=lines
                )
            )
    for publisher in publishers:
        publisher.wait()
    published_s = time.monotonic() - started
    out, _ = child.communicate(timeout=START_TIMEOUT_S + 600)
    broker_cpu1 = _cpu_s(broker_pid)
    if child.returncode != 0 or not out.strip():
        raise SystemExit(f"the {kind} consumer failed (exit status {child.returncode}); see its error above")
    result: Result = json.loads(out.strip().splitlines()[-1])
    if any(p.returncode for p in publishers):
        raise SystemExit(f"a mosquitto_pub failed (exit statuses {[p.returncode for p in publishers]})")
    received = max(result["received"], 1)
    figures = {
        "received": float(result["received"]),
        "rate_per_s": result["rate_per_s"],
        "span_s": result["span_s"],
        "published_s": published_s,
        # Over the messages it handled; the idle tail and the wait for the first message cost next to nothing.
        "cpu_us_per_msg": result["cpu_s"] / received * 1e6,
        "broker_us_per_msg": (broker_cpu1 - broker_cpu0) / received * 1e6
        if broker_cpu0 is not None and broker_cpu1 is not None
        else float("nan"),
        "alert_passes": float(result["alert_passes"]),
        "alert_passes_held": float(result["alert_passes_held"]),
        "alert_pass_ms": result["alert_pass_ms"],
        "alerts_fired": float(result["alerts_fired"]),
    }
    others = {k: v for k, v in result["outcomes"].items() if k != "accepted"}
    if others:
        print(f"  ingest outcomes other than accepted: {others}", flush=True)
    if result["fired_kinds"]:
        print(f"  alerts the passes fired, by kind: {result['fired_kinds']}", flush=True)
    return figures, round_problems(kind, result, expected)


def _check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[list[Box], int]:
    """The publishers' boxes, and how many boxes the inventory has."""
    for name in ("messages", "publishers", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.messages < args.publishers:
        parser.error(f"--messages ({args.messages}) must be at least --publishers ({args.publishers})")
    for tool in ("mosquitto", "mosquitto_pub"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            parser.error(f"{tool} is not installed; install the Debian packages mosquitto and mosquitto-clients")
    try:
        inventory = load_inventory(args.sites)
    except InventoryError as exc:
        parser.error(f"the site inventory in {args.sites} cannot be used:\n{exc}")
    # One box a site, GPU boxes first: boxes of different sites, as a fleet's heartbeats arrive.
    by_site: dict[str, Box] = {}
    for box in sorted(inventory.boxes.values(), key=lambda b: (b.role != "gpu-box", b.id)):
        by_site.setdefault(box.site, box)
    boxes = list(by_site.values())[: args.publishers]
    if len(boxes) < args.publishers:
        parser.error(f"--publishers {args.publishers}: the inventory has only {len(boxes)} sites (one box a site)")
    return boxes, len(inventory.boxes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=40_000, help="heartbeats per round, all publishers together")
    parser.add_argument("--publishers", type=int, default=4, help="C publishers, one box each")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of bare + ingest; medians are printed")
    parser.add_argument("--sites", type=Path, default=REPO / "sites", help="the site inventory the controller loads")
    parser.add_argument(
        "--bare-mqtt",
        choices=["5", "3.1.1"],
        default="5",
        help="MQTT version of the bare subscriber (the controller: 5)",
    )
    parser.add_argument(
        "--memory", action="store_true", help="measure the live state's memory for the whole inventory instead"
    )
    parser.add_argument(
        "--hot-path", action="store_true", help="time Ingest.handle alone, in process, instead (no broker)"
    )
    parser.add_argument("--consumer", choices=["bare", "ingest"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--expected", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--boxes", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.consumer == "bare":
        print(json.dumps(consume_bare(args.port, args.expected, args.bare_mqtt)), flush=True)
        return
    if args.consumer == "ingest":
        publishing = [box for box in args.boxes.split(",") if box]
        print(json.dumps(consume_ingest(args.port, args.expected, args.sites, publishing)), flush=True)
        return

    if args.memory or args.hot_path:
        try:
            (measure_memory if args.memory else measure_hot_path)(args.sites)
        except InventoryError as exc:
            parser.error(f"the site inventory in {args.sites} cannot be used:\n{exc}")
        return
    boxes, boxes_in_inventory = _check_arguments(parser, args)
    per_publisher = args.messages // len(boxes)
    expected = per_publisher * len(boxes)
    results: dict[str, list[dict[str, float]]] = {"bare": [], "ingest": []}
    problems: list[str] = []
    size = 0
    print(
        "Each ingest round first waits out the alert loop's warm-up (one heartbeat timeout of the slowest site), so "
        "that alert passes run while it is measured.",
        flush=True,
    )
    with (
        tempfile.TemporaryDirectory(prefix="edgefleet-bench-") as tmp,
        mosquitto(Path(tmp), extra_config=broker_config(expected)) as broker,
    ):
        for round_no in range(1, args.rounds + 1):
            # Alternate which consumer goes first, so a drift in the machine's load favours neither.
            order = ("bare", "ingest") if round_no % 2 else ("ingest", "bare")
            for kind in order:
                feeds = []
                for i, box in enumerate(boxes):
                    data = heartbeat_lines(box, per_publisher, seed=round_no * 1000 + i)
                    size = len(data.split(b"\n", 1)[0])
                    path = Path(tmp) / f"{box.id}.jsonl"
                    path.write_bytes(data)
                    feeds.append((box, path))
                r, invalid = run_round(kind, args, broker.port, broker.process.pid, feeds, expected)
                results[kind].append(r)
                problems += [f"round {round_no}: {problem}" for problem in invalid]
                alerting = ""
                if kind == "ingest":
                    alerting = (
                        f", {r['alert_passes']:.0f} alert passes ({r['alert_passes_held']:.0f} held: saturated; "
                        f"{r['alert_pass_ms']:.0f} ms median)"
                    )
                    if r["alerts_fired"]:
                        alerting += f" that fired {r['alerts_fired']:.0f} alerts"
                print(
                    f"round {round_no} {kind:6}: {r['received']:>6.0f}/{expected} received, "
                    f"{r['rate_per_s']:>6.0f}/s over {r['span_s']:4.1f} s (publishers done after "
                    f"{r['published_s']:4.1f} s), {r['cpu_us_per_msg']:>4.0f} us CPU per heartbeat, "
                    f"broker {r['broker_us_per_msg']:>3.0f} us{alerting}",
                    flush=True,
                )

    def median(kind: str, key: str) -> float:
        return statistics.median(r[key] for r in results[kind])

    bare_rate, ingest_rate = median("bare", "rate_per_s"), median("ingest", "rate_per_s")
    ratio = ingest_rate / bare_rate if bare_rate else 0.0
    cpu_ratio = median("bare", "cpu_us_per_msg") / median("ingest", "cpu_us_per_msg")
    lost = {kind: expected - min(int(r["received"]) for r in results[kind]) for kind in results}
    print()
    print(
        f"heartbeat: {size} bytes; {len(boxes)} publishers x {per_publisher} heartbeats, QoS 1; "
        f"bare subscriber MQTT {args.bare_mqtt}, controller MQTT 5; medians of {args.rounds} round(s)"
    )
    bare_cpu, ingest_cpu = median("bare", "cpu_us_per_msg"), median("ingest", "cpu_us_per_msg")
    print(f"bare paho subscriber : {bare_rate:8.0f} heartbeats/s, {bare_cpu:5.0f} us CPU each")
    print(f"controller ingest    : {ingest_rate:8.0f} heartbeats/s, {ingest_cpu:5.0f} us CPU each")
    print(f"ratio ingest / bare  : {ratio:8.2f}  (target >= {TARGET_RATIO:.2f}, aim {AIM_RATIO:.2f})")
    print(f"ratio by CPU per msg : {cpu_ratio:8.2f}  (bare us / ingest us: the steadier figure on a shared machine)")
    floor_ok, ratio_ok = ingest_rate >= FLOOR_PER_S, ratio >= TARGET_RATIO
    print(f"floor                : {'PASS' if floor_ok else 'FAIL'} (>= {FLOOR_PER_S}/s)")
    print(f"ratio target         : {'PASS' if ratio_ok else 'FAIL'}")
    print(f"heartbeats lost (worst round): bare {lost['bare']}, ingest {lost['ingest']}")
    passes = ", ".join(f"{r['alert_passes']:.0f} ({r['alert_passes_held']:.0f} held)" for r in results["ingest"])
    print(
        f"alert passes per ingest round: {passes} (one a second over all {boxes_in_inventory} boxes; median "
        f"{median('ingest', 'alert_pass_ms'):.0f} ms a pass)"
    )
    for problem in problems:
        print(f"INVALID: {problem}")
    if problems:
        print("INVALID: the figures above do not measure what they say")
    if problems or not (floor_ok and ratio_ok):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
