"""The ingest benchmark measures what it says (bench/ingest.py): its heartbeats are the size and shape the agent
sends and every one of them reaches the live state, its broker keeps every message for a consumer that falls
behind, where Mosquitto's defaults drop them silently, and the controller's alert loop runs passes while the
controller takes the heartbeats (a round in which none ran is invalid)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from edgefleet import topics
from edgefleet.clock import FakeClock
from edgefleet.cloud.fleet import FleetState
from edgefleet.cloud.ingesting import Ingest
from edgefleet.inventory import Box, Inventory, load_inventory
from edgefleet.messages import decode_heartbeat
from tests.support.clusters import write_host_cluster
from tests.support.peers import mosquitto, wait_for

REPO = Path(__file__).resolve().parents[2]
# Past Mosquitto's default queue (1,000) plus the in-flight window (100 in the test broker), well short of a
# round of the benchmark so that the test stays quick.
FLOOD = 2_500


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_ingest", REPO / "bench" / "ingest.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # the module's TypedDict looks itself up by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def fleet() -> Inventory:
    return load_inventory(REPO / "sites")


def gpu_box(fleet: Inventory) -> Box:
    return next(b for b in fleet.boxes.values() if b.role == "gpu-box")


def test_every_benchmark_heartbeat_is_accepted_and_agent_sized(bench: ModuleType, fleet: Inventory) -> None:
    box = gpu_box(fleet)
    lines = bench.heartbeat_lines(box, 200, seed=1).splitlines()
    ingest = Ingest(FleetState.for_inventory(fleet), "mqtt://127.0.0.1:1", clock=FakeClock())
    outcomes = {ingest.handle(topics.heartbeat_topic(box.id), line) for line in lines}
    assert outcomes == {"accepted"}
    first = decode_heartbeat(lines[0])
    assert (len(first.gpu.gpus), len(first.apps.apps)) == (1, 2)
    # The agent's encoding of such a heartbeat (nulls included) is about 1 KB; a much smaller one would flatter
    # the consumers, a much bigger one burden them.
    assert all(900 <= len(line) <= 1300 for line in lines)
    assert len({decode_heartbeat(line).boot for line in lines}) == 1
    assert bench.heartbeat_lines(box, 1, seed=1) != bench.heartbeat_lines(box, 1, seed=1)  # a fresh boot each


class StalledSubscriber:
    """A bare subscriber whose network loop runs only when ``pump`` is called: between calls it reads nothing,
    as a consumer that falls behind."""

    def __init__(self, port: int) -> None:
        self.received = 0
        self._changed = time.monotonic()
        self._subscribed = False
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(topics.shared(topics.HEARTBEAT_FILTER), qos=1)
        wait_for(lambda: self.pump() >= 0 and self._subscribed, what="the subscription")

    def _on_subscribe(self, *args: object) -> None:
        self._subscribed = True

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        self.received += 1
        self._changed = time.monotonic()

    def pump(self) -> int:
        """Read what the broker sent (waiting up to 50 ms for it); the messages received so far."""
        self.client.loop(timeout=0.05)
        return self.received

    def settled(self, quiet_s: float) -> bool:
        return time.monotonic() - self._changed > quiet_s

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop(timeout=0.05)


@pytest.fixture
def flood_file(bench: ModuleType, fleet: Inventory, tmp_path: Path) -> Path:
    path = tmp_path / "flood.jsonl"
    path.write_bytes(bench.heartbeat_lines(gpu_box(fleet), FLOOD, seed=2))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("benchmark_settings", [True, False], ids=["benchmark-broker", "mosquitto-defaults"])
def test_broker_keeps_every_message_for_a_consumer_that_falls_behind(
    bench: ModuleType, fleet: Inventory, flood_file: Path, tmp_path: Path, benchmark_settings: bool
) -> None:
    extra = bench.broker_config(FLOOD) if benchmark_settings else ""
    with mosquitto(tmp_path, extra_config=extra) as broker:
        subscriber = StalledSubscriber(broker.port)
        try:
            topic = topics.heartbeat_topic(gpu_box(fleet).id)
            with flood_file.open("rb") as lines:
                subprocess.run(
                    ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1", "-t", topic, "-l"],
                    stdin=lines,
                    check=True,
                    timeout=60,
                )
            if benchmark_settings:
                wait_for(lambda: subscriber.pump() == FLOOD, interval=0, timeout=30, what=f"all {FLOOD} messages")
            else:
                # What was dropped never comes: read until the deliveries stop.
                wait_for(lambda: subscriber.pump() and subscriber.settled(1.0), interval=0, timeout=30, what="the end")
                assert subscriber.received < FLOOD  # the defaults drop: the benchmark must not use them
        finally:
            subscriber.close()


def consumer_result(received: int, alert_passes: int) -> dict[str, object]:
    return {
        "received": received,
        "span_s": 5.0,
        "rate_per_s": received / 5.0,
        "cpu_s": 1.0,
        "outcomes": {"accepted": received},
        "alert_passes": alert_passes,
        "alert_pass_ms": 15.0 if alert_passes else 0.0,
        "alerts_fired": 0,
        "fired_kinds": {},
    }


def test_a_round_without_alert_passes_is_invalid(bench: ModuleType) -> None:
    assert bench.round_problems("ingest", consumer_result(1_000, alert_passes=5), 1_000) == []
    (problem,) = bench.round_problems("ingest", consumer_result(1_000, alert_passes=0), 1_000)
    assert "no alert pass ran" in problem
    # The bare subscriber has no alert loop: it is compared with the controller, not held to it.
    assert bench.round_problems("bare", consumer_result(1_000, alert_passes=0), 1_000) == []


def test_a_round_that_missed_heartbeats_is_invalid(bench: ModuleType) -> None:
    (problem,) = bench.round_problems("bare", consumer_result(999, alert_passes=0), 1_000)
    assert "missed 1 of 1000" in problem


# The ingest consumer waits out the alert loop's warm-up (missed beats x interval) before it measures. This site's
# is 6 s: longer than the round below, as the shipped inventory's 30 s is longer than a benchmark round, so a
# consumer that measured without waiting would see no pass at all.
QUICK_SITE = """apiVersion: edgefleet.io/v1
kind: Site
metadata:
  name: qk-bench
spec:
  kind: transfer-center
  displayName: Quick Bench
  region: east
  timezone: Asia/Shanghai
  cluster: test-edge
  heartbeat:
    intervalSeconds: 2
    missedBeats: 3
  boxes:
    - name: qk-bench-gpu-01
      role: gpu-box
      gpu: {model: NVIDIA T4, count: 1, driverVersion: "550.90.07"}
    - name: qk-bench-edge-02
      role: edge-node
    - name: qk-bench-edge-01
      role: edge-node
"""
# Heartbeats of the played box, sent over about 4 s: a round of the controller that spans several of the alert
# loop's 1 s passes.
PACED = 200
PACE_S = 0.02


@pytest.mark.slow
def test_the_controller_round_runs_alert_passes_while_it_measures(bench: ModuleType, tmp_path: Path) -> None:
    sites = tmp_path / "sites"
    sites.mkdir()
    (sites / "qk-bench.yaml").write_text(QUICK_SITE)
    write_host_cluster(sites)
    box = load_inventory(sites).boxes["qk-bench-gpu-01"]
    lines = bench.heartbeat_lines(box, PACED, seed=3).splitlines(keepends=True)
    with mosquitto(tmp_path, extra_config=bench.broker_config(PACED)) as broker:
        command = [sys.executable, str(REPO / "bench" / "ingest.py"), "--consumer", "ingest"]
        command += ["--port", str(broker.port), "--expected", str(PACED), "--sites", str(sites), "--boxes", box.id]
        consumer = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        try:
            assert consumer.stdout is not None
            assert consumer.stdout.readline().strip() == "ready"
            topic = topics.heartbeat_topic(box.id)
            publisher = subprocess.Popen(
                ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1", "-t", topic, "-l"],
                stdin=subprocess.PIPE,
            )
            assert publisher.stdin is not None
            for line in lines:
                publisher.stdin.write(line)
                publisher.stdin.flush()
                time.sleep(PACE_S)
            publisher.stdin.close()
            assert publisher.wait(timeout=30) == 0
            out, _ = consumer.communicate(timeout=60)
        finally:
            if consumer.poll() is None:
                consumer.kill()
                consumer.wait()
    assert consumer.returncode == 0
    result = json.loads(out.strip().splitlines()[-1])
    assert bench.round_problems("ingest", result, PACED) == []
    assert result["alert_passes"] >= 1
