"""The ingest benchmark measures what it says (bench/ingest.py): its heartbeats are the size and shape the agent
sends and every one of them reaches the live state, and its broker keeps every message for a consumer that falls
behind, where Mosquitto's defaults drop them silently."""

from __future__ import annotations

import importlib.util
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
