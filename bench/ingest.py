"""Ingest throughput: heartbeats/s that reach the controller's live state, against a bare paho subscriber.

Both consumers are measured in the same run, on the same Mosquitto (started here on a free loopback port), under
the same load: K C publishers (`mosquitto_pub -l -q 1`, one message per stdin line) flood realistic heartbeats of
inventory boxes, so the publisher is never the limit. Each consumer runs in a process of its own, so its CPU time
is its own: the bare one is a paho-mqtt 2.x MQTT 5 subscriber that decodes JSON with msgspec and counts; the
ingest one is the real controller (inventory, ingest, live state, persister to SQLite) counting what the live state
accepted. Rounds alternate bare/ingest; medians are printed with the ratio and the targets of the spine issue.

    .venv/bin/python bench/ingest.py [--messages 40000] [--publishers 4] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from edgefleet import messages, topics  # noqa: E402
from edgefleet.inventory import load_inventory  # noqa: E402
from edgefleet.messages import AppReport, AppState, GpuReport, GpuSample, Heartbeat, HostSample  # noqa: E402
from tests.support.peers import mosquitto  # noqa: E402

TARGET_RATIO = 0.60
AIM_RATIO = 0.80
FLOOR_PER_S = 2_000
IDLE_END_S = 3.0  # a consumer stops this long after its last message


def heartbeat_lines(box: str, site: str, count: int) -> bytes:
    boot = os.urandom(8).hex()
    out = []
    for seq in range(1, count + 1):
        hb = Heartbeat(
            schema=messages.SCHEMA_VERSION,
            box=box,
            site=site,
            boot=boot,
            seq=seq,
            sent_at=time.time(),
            agent_version="0.1.0",
            interval_s=10.0,
            uptime_s=float(seq * 10),
            host=HostSample(
                cpu_percent=23.5,
                load1=1.2,
                load5=1.1,
                load15=0.9,
                memory_total_bytes=32 << 30,
                memory_available_bytes=20 << 30,
                disk_total_bytes=512 << 30,
                disk_free_bytes=300 << 30,
            ),
            gpu=GpuReport(
                available=True,
                driver_version="535.183.01",
                gpus=[
                    GpuSample(
                        index=0,
                        name="NVIDIA T4",
                        uuid="GPU-5f0e1c2a-8d7b-4c3e-9a1f-2b3c4d5e6f70",
                        utilization_percent=57.0,
                        memory_used_bytes=6 << 30,
                        memory_total_bytes=16 << 30,
                        temperature_c=63.0,
                        power_w=41.5,
                        ecc_corrected_errors=0,
                        ecc_uncorrected_errors=0,
                    )
                ],
            ),
            apps=AppReport(
                source="file:/etc/edgefleet/apps.json",
                apps=[AppState(name="sorting-recognition", version="2.3.1", state="running")],
            ),
        )
        out.append(messages.encode(hb))
    return b"\n".join(out) + b"\n"


# --- consumers (run as child processes: `bench/ingest.py --consumer bare|ingest`) ------------------------------


def consume_bare(port: int, expected: int) -> dict[str, float]:
    import msgspec
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    decoder = msgspec.json.Decoder()
    seen = {"n": 0, "first": 0.0, "last": 0.0}

    def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        decoder.decode(msg.payload)
        now = time.monotonic()
        if not seen["n"]:
            seen["first"] = now
        seen["n"] += 1
        seen["last"] = now

    def on_connect(client: mqtt.Client, *args: object) -> None:
        client.subscribe(topics.HEARTBEAT_FILTER, qos=1)

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare", protocol=MQTTProtocolVersion.MQTTv5)
    client.on_message = on_message
    client.on_connect = on_connect
    client.on_subscribe = lambda *a: print("ready", flush=True)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return _wait_done(lambda: (int(seen["n"]), seen["first"], seen["last"]), expected, client.loop_stop)


def consume_ingest(port: int, expected: int, sites: Path) -> dict[str, float]:
    from edgefleet.cloud.controller import Controller
    from edgefleet.cloud.settings import Settings

    workdir = Path(tempfile.mkdtemp(prefix="edgefleet-bench-"))
    settings = Settings.from_env(
        {},
        broker_url=f"mqtt://127.0.0.1:{port}",
        database_url=f"sqlite:///{workdir / 'edgefleet.db'}",
        sites_dir=sites,
    )
    controller = Controller(settings)
    controller.start()
    stamps = {"first": 0.0, "last": 0.0, "n": 0}

    def progress() -> tuple[int, float, float]:
        n = controller.ingest.counters.get("accepted", 0)
        now = time.monotonic()
        if n and not stamps["first"]:
            stamps["first"] = now
        if n != stamps["n"]:
            stamps["n"], stamps["last"] = n, now
        return n, stamps["first"], stamps["last"]

    deadline = time.monotonic() + 20
    while not controller.ingest.connected and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # let the subscription settle before the flood starts
    print("ready", flush=True)
    return _wait_done(progress, expected, controller.stop, poll=0.002)


def _wait_done(progress: object, expected: int, stop: object, poll: float = 0.05) -> dict[str, float]:
    cpu0 = time.process_time()
    idle_since = time.monotonic()
    last_n = 0
    while True:
        n, first, last = progress()  # type: ignore[operator]
        now = time.monotonic()
        if n != last_n:
            last_n, idle_since = n, now
        if n >= expected or (n and now - idle_since > IDLE_END_S) or now - idle_since > 60:
            break
        time.sleep(poll)
    cpu = time.process_time() - cpu0
    stop()  # type: ignore[operator]
    span = max(last - first, 1e-9)
    return {"received": n, "span_s": span, "rate_per_s": (n - 1) / span if n > 1 else 0.0, "cpu_s": cpu}


# --- driver ---------------------------------------------------------------------------------------------------


def run_round(kind: str, port: int, payloads: list[tuple[str, bytes]], expected: int) -> dict[str, float]:
    child = subprocess.Popen(
        [sys.executable, __file__, "--consumer", kind, "--port", str(port), "--expected", str(expected)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert child.stdout is not None
    line = child.stdout.readline().strip()
    if line != "ready":
        child.kill()
        raise SystemExit(f"{kind} consumer did not start: {line!r}")
    publishers = []
    for topic, data in payloads:
        pub = subprocess.Popen(
            ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-t", topic, "-l"],
            stdin=subprocess.PIPE,
        )
        publishers.append((pub, data))
    for pub, data in publishers:
        assert pub.stdin is not None
        pub.stdin.write(data)
        pub.stdin.close()
    for pub, _ in publishers:
        pub.wait()
    out, _ = child.communicate(timeout=120)
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    # CPU per message over the messages it handled (the idle tail costs next to nothing).
    result["cpu_us_per_msg"] = result["cpu_s"] / max(result["received"], 1) * 1e6
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=40_000, help="heartbeats per round (all publishers)")
    parser.add_argument("--publishers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sites", type=Path, default=REPO / "sites")
    parser.add_argument("--consumer", choices=["bare", "ingest"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--expected", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.consumer == "bare":
        print(json.dumps(consume_bare(args.port, args.expected)), flush=True)
        return
    if args.consumer == "ingest":
        print(json.dumps(consume_ingest(args.port, args.expected, args.sites)), flush=True)
        return

    inventory = load_inventory(args.sites)
    boxes = [b for b in inventory.boxes.values() if b.role == "gpu-box"][: args.publishers]
    per_pub = args.messages // args.publishers
    expected = per_pub * len(boxes)
    results: dict[str, list[dict[str, float]]] = {"bare": [], "ingest": []}
    size = 0
    with tempfile.TemporaryDirectory() as tmp, mosquitto(Path(tmp)) as broker:
        for round_no in range(1, args.rounds + 1):
            for kind in ("bare", "ingest"):
                # Fresh boots each round: the controller would call a repeated (boot, seq) a duplicate.
                payloads = [(topics.heartbeat_topic(b.id), heartbeat_lines(b.id, b.site, per_pub)) for b in boxes]
                size = len(payloads[0][1].split(b"\n", 1)[0])
                r = run_round(kind, broker.port, payloads, expected)
                results[kind].append(r)
                print(
                    f"round {round_no} {kind:6}: {r['received']:>6.0f}/{expected} received, "
                    f"{r['rate_per_s']:>7.0f}/s, {r['cpu_us_per_msg']:>5.0f} us CPU per heartbeat",
                    flush=True,
                )

    def med(kind: str, key: str) -> float:
        return statistics.median(r[key] for r in results[kind])

    bare_rate, ingest_rate = med("bare", "rate_per_s"), med("ingest", "rate_per_s")
    ratio = ingest_rate / bare_rate if bare_rate else 0.0
    lost = expected - min(r["received"] for r in results["ingest"])
    print()
    print(f"heartbeat size: {size} bytes; {len(boxes)} publishers x {per_pub} heartbeats, QoS 1, MQTT 5 consumers")
    print(f"bare paho subscriber : {bare_rate:8.0f} heartbeats/s, {med('bare', 'cpu_us_per_msg'):5.0f} us CPU each")
    print(f"controller ingest    : {ingest_rate:8.0f} heartbeats/s, {med('ingest', 'cpu_us_per_msg'):5.0f} us CPU each")
    print(f"ratio ingest / bare  : {ratio:8.2f}  (target >= {TARGET_RATIO:.2f}, aim {AIM_RATIO:.2f})")
    print(f"floor                : {'PASS' if ingest_rate >= FLOOR_PER_S else 'FAIL'} (>= {FLOOR_PER_S}/s)")
    print(f"ratio target         : {'PASS' if ratio >= TARGET_RATIO else 'FAIL'}")
    print(f"heartbeats not applied by the ingest (worst round): {lost}")


if __name__ == "__main__":
    main()
