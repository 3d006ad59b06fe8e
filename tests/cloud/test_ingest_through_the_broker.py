"""The ingest against a real Mosquitto: it survives every kind of bad message, takes every box's retained status
at start-up, and follows a real agent online and, killed, offline (edgefleet.cloud.ingesting)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from edgefleet import topics
from edgefleet.clock import Clock, FakeClock, SystemClock
from edgefleet.cloud.fleet import FleetState, box_reachability
from edgefleet.cloud.ingesting import Ingest
from edgefleet.ids import BoxId, ClusterId, SiteId
from edgefleet.inventory import Box, Inventory, Site
from edgefleet.messages import MAX_MESSAGE_BYTES
from tests.cloud.builders import BOX, BOX_2, OTHER_BOX, SITE, T0, heartbeat, inventory, status, wire
from tests.support.peers import Mosquitto, wait_for

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def publisher(broker: Mosquitto) -> Iterator[mqtt.Client]:
    """A plain paho client, as a box or a stranger would publish."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    yield client
    client.disconnect()
    client.loop_stop()


def started(state: FleetState, broker: Mosquitto, clock: Clock | None = None) -> Ingest:
    # By default receive times after the builders' message times (T0 may lie ahead of the real clock, and a box
    # time beyond the allowed skew would be clamped); a real agent's messages need the real clock.
    ingest = Ingest(state, broker.url, clock=clock or FakeClock(T0 + 100_000))
    ingest.start()
    assert ingest.wait_subscribed(10), "the ingest did not subscribe within 10 s"
    wait_for(lambda: ingest.snapshots_taken, what="the retained-status snapshot subscription")
    return ingest


@pytest.fixture
def ingest(broker: Mosquitto) -> Iterator[Ingest]:
    ingest = started(FleetState.for_inventory(inventory()), broker)
    yield ingest
    ingest.stop()


@pytest.fixture
def ingest_on_real_time(broker: Mosquitto) -> Iterator[Ingest]:
    ingest = started(FleetState.for_inventory(inventory()), broker, SystemClock())
    yield ingest
    ingest.stop()


def publish(client: mqtt.Client, topic: str, payload: bytes, *, retain: bool = False) -> None:
    client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(timeout=5)


def test_ingest_survives_every_bad_message_and_counts_it(ingest: Ingest, publisher: mqtt.Client) -> None:
    beat = wire(heartbeat(1))
    sent = [
        (topics.heartbeat_topic(BOX), beat),
        (topics.heartbeat_topic(BOX), beat),  # duplicate
        (topics.heartbeat_topic(BOX), b"{not json"),
        (topics.heartbeat_topic(BOX), b"[" + b" " * MAX_MESSAGE_BYTES + b"]"),
        (topics.heartbeat_topic(BOX), beat.replace(b'"schema":1', b'"schema":2')),
        (topics.heartbeat_topic(BOX_2), beat),  # BOX's heartbeat under BOX_2's topic
        (topics.heartbeat_topic("stray-box-07"), wire(heartbeat(1, box="stray-box-07"))),
        (topics.heartbeat_topic("Bad_Id"), beat),
    ]
    for topic, payload in sent:
        publish(publisher, topic, payload)
    expected = {
        "accepted": 1,
        "duplicate": 1,
        "malformed": 1,
        "oversized": 1,
        "schema": 1,
        "topic-mismatch": 1,
        "unknown-box": 1,
        "bad-topic": 1,
    }
    wait_for(lambda: {k: v for k, v in ingest.counters.items() if v} == expected, what=f"counters {expected}")
    assert ingest.state.unknown["stray-box-07"].claimed_site == SITE
    # Still taking messages after all that.
    publish(publisher, topics.heartbeat_topic(BOX), wire(heartbeat(2)))
    wait_for(lambda: ingest.state.boxes[BOX].seq == 2, what="the next heartbeat")
    assert ingest.connected


def test_every_retained_status_is_taken_at_start(broker: Mosquitto, publisher: mqtt.Client) -> None:
    # More boxes than Mosquitto queues for one QoS 1 subscriber (1,000 + 100 in flight): a shared QoS 1
    # subscription alone would miss some of them.
    count = 1500
    site = SiteId("big-site")
    ids = [BoxId(f"big-site-box-{i:04d}") for i in range(count)]
    big = Inventory(
        sites={
            site: Site(
                site, "transfer-center", "Big", "east", "Asia/Shanghai", 10.0, 3, tuple(ids), "test", ClusterId("big")
            )
        },
        boxes={b: Box(b, site, "edge-node", None, None) for b in ids},
    )
    infos = [
        publisher.publish(topics.status_topic(b), wire(status("online", box=b, site=site)), qos=1, retain=True)
        for b in ids
    ]
    for info in infos:
        info.wait_for_publish(timeout=10)
    ingest = started(FleetState.for_inventory(big), broker)
    try:
        wait_for(
            lambda: sum(live.status_state == "online" for live in ingest.state.boxes.values()) == count,
            what=f"{count} retained statuses",
        )
        assert ingest.counters["accepted"] == count
    finally:
        ingest.stop()


def test_shared_subscription_does_not_replay_retained_heartbeats(broker: Mosquitto, publisher: mqtt.Client) -> None:
    # A retained heartbeat (no agent sends one, but a stray client may) is old news at start-up.
    publish(publisher, topics.heartbeat_topic(BOX), wire(heartbeat(1)), retain=True)
    publish(publisher, topics.status_topic(BOX), wire(status("online")), retain=True)
    ingest = started(FleetState.for_inventory(inventory()), broker)
    try:
        wait_for(lambda: ingest.state.boxes[BOX].status_state == "online", what="the retained status")
        publish(publisher, topics.heartbeat_topic(OTHER_BOX), wire(heartbeat(1, box=OTHER_BOX, site="bj-test")))
        wait_for(lambda: ingest.state.boxes[OTHER_BOX].seq == 1, what="a live heartbeat")
        assert ingest.state.boxes[BOX].seq == 0
    finally:
        ingest.stop()


def test_ingest_keeps_trying_an_unreachable_broker_and_connects_when_it_comes(
    broker: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="edgefleet.cloud.ingesting")
    broker.stop()
    ingest = Ingest(
        FleetState.for_inventory(inventory()), broker.url, clock=SystemClock(), reconnect_min_s=0.1, reconnect_max_s=0.4
    )
    ingest.start()
    try:
        wait_for(lambda: ingest.failed_attempts >= 2, what="two failed connection attempts")
        assert not ingest.connected
        broker.restart()
        wait_for(lambda: ingest.connected and ingest.subscribed, timeout=15, what="the ingest to connect")
    finally:
        ingest.stop()
    # One clear line for the whole outage, not one per attempt.
    assert [r.getMessage() for r in caplog.records] == [
        "Could not reach broker; retrying every 0.4 s at most until it answers"
    ]


def test_ingest_resubscribes_after_a_broker_restart(ingest: Ingest, broker: Mosquitto) -> None:
    broker.restart()
    wait_for(lambda: not ingest.connected or ingest.subscribed, what="the disconnect")
    wait_for(lambda: ingest.connected and ingest.subscribed, timeout=15, what="the ingest to reconnect")
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        publish(client, topics.heartbeat_topic(BOX), wire(heartbeat(1)))
        wait_for(lambda: ingest.state.boxes[BOX].seq == 1, what="a heartbeat after the restart")
    finally:
        client.disconnect()
        client.loop_stop()


# --- a real agent -----------------------------------------------------------------------------------------


@contextlib.contextmanager
def running_box(broker: Mosquitto, box: str = BOX, site: str = SITE) -> Iterator[subprocess.Popen[bytes]]:
    """The agent's BoxLink in a process of its own (tests/cloud/box_process.py), killed at the end if alive."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.cloud.box_process", "--broker", broker.url, "--box", box, "--site", site],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)


@pytest.mark.parametrize(
    ("how", "reason"),
    [(signal.SIGKILL, "connection-lost"), (signal.SIGTERM, "shutdown")],
    ids=["killed", "stopped"],
)
def test_real_agent_goes_online_then_offline(
    ingest_on_real_time: Ingest, broker: Mosquitto, how: signal.Signals, reason: str
) -> None:
    with running_box(broker) as process:
        live = ingest_on_real_time.state.boxes[BOX]
        wait_for(lambda: live.seq >= 3 and live.status_state == "online", what="the agent's heartbeats")
        now = time.time()
        assert box_reachability(ingest_on_real_time.state, live, now=now).state == "online"
        assert live.clock_skew_s is not None
        assert abs(live.clock_skew_s) < 1.0
        process.send_signal(how)
        process.wait(10)
        wait_for(lambda: live.status_state == "offline", what="the will or the shutdown status")
        reachability = box_reachability(ingest_on_real_time.state, live, now=time.time())
        assert (reachability.state, reachability.reason) == ("offline", reason)


def test_restarted_agent_is_online_even_if_its_old_will_comes_late(
    ingest_on_real_time: Ingest, broker: Mosquitto
) -> None:
    live = ingest_on_real_time.state.boxes[BOX]
    with running_box(broker) as first:
        wait_for(lambda: live.seq >= 2, what="the first agent's heartbeats")
        first_boot = live.boot
        first.kill()
        first.wait(10)
        wait_for(lambda: live.status_state == "offline", what="the first agent's will")
    with running_box(broker) as second:
        wait_for(lambda: live.boot != first_boot and live.status_state == "online", what="the second agent")
        # The first boot's will, delivered late (as a reordering broker hop or a replay would): stale.
        will = status("offline", boot=first_boot or "", session=1, at=live.boot_started_at - 1)  # type: ignore[operator]
        assert ingest_on_real_time.handle(topics.status_topic(BOX), wire(will)) == "stale"
        assert box_reachability(ingest_on_real_time.state, live, now=time.time()).state == "online"
        second.send_signal(signal.SIGTERM)
        second.wait(10)
