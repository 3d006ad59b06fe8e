"""Fault: two real agents (``edgefleet agent run --apps-file``, keepalive 2 s, a heartbeat every 0.5 s) beside two
simulated boxes of their site, one frozen with SIGSTOP (a pulled cable: its TCP connection stays open until the
broker's keepalive runs out) and one killed with SIGKILL (the broker sends its Last Will at once), then both back.
Invariant: each is told once as box-lost, for its own reason (heartbeat-timeout; connection-lost), within the
targets docs/alerting.md gives (a silent box: its heartbeat timeout + 2 s; a dropped connection: 2 s), checked here
by waiting with a generous bound, not by timing; each is resolved once it beats again; and the crashed box's own
Last Will, published again after the box is back (a stale will, as a reordering hop or a replay delivers it),
raises nothing and leaves the box online. The frozen box's will also comes, once its keepalive runs out
(1.5 x keepalive, up to 5 s later with Mosquitto 2.0.11). Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edgefleet import topics
from edgefleet.cloud.controller import Controller
from edgefleet.cloud.fleet import box_reachability
from edgefleet.cloud.settings import Settings
from edgefleet.messages import decode_status
from simulator.running import SimulatorOptions, start_in_background
from tests.alerting.wiring.fleets import (
    INTERVAL_S,
    KEEPALIVE_S,
    TIMEOUT_S,
    WEBHOOK_PATH,
    running_controller,
    write_notifications,
    write_sites,
)
from tests.support.peers import Mosquitto, wait_for
from tests.support.receivers import RecordingReceiver, recording_receiver

# Detection waits on heartbeat timeouts and broker keepalives of a few seconds: alone, not beside other tests.
pytestmark = [pytest.mark.slow, pytest.mark.serial]

REPO = Path(__file__).resolve().parents[2]
SITE = "cab-01"
SIMULATED = [f"{SITE}-edge-01", f"{SITE}-gpu-01"]  # the simulator plays the site's first two boxes
FROZEN, CRASHED = f"{SITE}-gpu-02", f"{SITE}-gpu-03"
# Generous bounds to wait within (the targets are TIMEOUT_S + 2 s and 2 s; a loaded machine may add seconds).
WAIT_S = 15.0


class Agent:
    """One ``edgefleet agent run`` process, its output in a file."""

    def __init__(self, box: str, broker: Mosquitto, directory: Path) -> None:
        apps = directory / f"{box}-apps.txt"
        apps.write_text("scan-upload 2.4.1 running\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEFLEET_")}
        args = [sys.executable, "-m", "edgefleet.cli", "agent", "run", "--box", box, "--site", SITE]
        args += ["--broker", broker.url, "--interval", str(INTERVAL_S), "--keepalive", str(KEEPALIVE_S)]
        args += ["--no-gpu", "--apps-file", str(apps)]
        self.log = directory / f"{box}-{time.monotonic_ns()}.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(args, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a frozen process cannot act on SIGKILL's cleanup otherwise
            self.process.kill()
        self.process.wait(10)


class Statuses:
    """Every status message the broker delivers, as a box's peer would see them."""

    def __init__(self, broker: Mosquitto) -> None:
        self._lock = threading.Lock()
        self.seen: list[tuple[str, bytes]] = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="status-watcher", protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", broker.port)
        self.client.subscribe(topics.STATUS_FILTER, qos=1)
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.seen.append((message.topic, bytes(message.payload)))

    def wills(self, box: str) -> list[bytes]:
        with self._lock:
            return [
                p for t, p in self.seen if t == topics.status_topic(box) and p and decode_status(p).state == "offline"
            ]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def fleet(
    tmp_path: Path, broker: Mosquitto, database_url: str
) -> Iterator[tuple[Controller, RecordingReceiver, dict[str, Agent], Statuses]]:
    write_sites(tmp_path / "sites", {SITE: 4})
    sim = start_in_background(
        SimulatorOptions(
            sites_dir=tmp_path / "sites",
            broker_url=broker.url,
            listen="127.0.0.1:0",
            keepalive_s=KEEPALIVE_S,
            max_boxes_per_site=len(SIMULATED),
            seed=7,
        )
    )
    agents = {box: Agent(box, broker, tmp_path) for box in (FROZEN, CRASHED)}
    statuses = Statuses(broker)
    try:
        with recording_receiver() as receiver:
            notifications = write_notifications(
                tmp_path / "notifications.yaml", webhook=receiver.url, alertmanager=None
            )
            settings = Settings(
                broker_url=broker.url,
                database_url=database_url,
                sites_dir=tmp_path / "sites",
                flush_interval_s=0.5,
                notifications_file=notifications,
            )
            with running_controller(settings) as (controller, _):
                wait_for(lambda: _online(controller) >= {*SIMULATED, FROZEN, CRASHED}, timeout=20, what="all online")
                yield controller, receiver, agents, statuses
    finally:
        statuses.close()
        for agent in agents.values():
            agent.stop()
        sim.stop()


def _online(controller: Controller) -> set[str]:
    now = time.time()
    with controller.state.lock:
        return {
            box
            for box, live in controller.state.boxes.items()
            if box_reachability(controller.state, live, now=now).state == "online"
        }


def _notices(receiver: RecordingReceiver, box: str) -> list[tuple[str, str, str]]:
    """(kind, notice, reason) of every alert about ``box`` the webhook got."""
    return [
        (alert["kind"], alert["notice"], alert["details"].get("reason", ""))
        for request in receiver.received
        if request.path == WEBHOOK_PATH
        for alert in request.json()["alerts"]
        if alert["box"] == box
    ]


def _settled(controller: Controller) -> None:
    wait_for(lambda: not controller.delivery.outbox.backlog(), timeout=10, what="an empty outbox")


def test_a_frozen_box_and_a_crashed_box_are_each_told_once_and_a_stale_will_raises_nothing(
    fleet: tuple[Controller, RecordingReceiver, dict[str, Agent], Statuses], broker: Mosquitto, tmp_path: Path
) -> None:
    controller, receiver, agents, statuses = fleet

    # Frozen: heartbeats stop, the TCP connection stays open; the heartbeat timeout tells it first.
    agents[FROZEN].process.send_signal(signal.SIGSTOP)
    wait_for(
        lambda: ("box-lost", "firing", "heartbeat-timeout") in _notices(receiver, FROZEN),
        timeout=WAIT_S,
        what="frozen box told",
    )
    # ...and the broker's keepalive runs out later: its will arrives though the process never closed anything.
    wait_for(lambda: statuses.wills(FROZEN), timeout=WAIT_S, what="the frozen box's will")
    agents[FROZEN].process.send_signal(signal.SIGCONT)
    wait_for(
        lambda: any(n[1] == "resolved" for n in _notices(receiver, FROZEN)),
        timeout=WAIT_S,
        what="the thawed box resolved",
    )

    # Crashed: the broker publishes its Last Will at once.
    agents[CRASHED].process.kill()
    agents[CRASHED].process.wait(10)
    wait_for(
        lambda: ("box-lost", "firing", "connection-lost") in _notices(receiver, CRASHED),
        timeout=WAIT_S,
        what="crashed box told",
    )
    (will,) = wait_for(lambda: statuses.wills(CRASHED), timeout=WAIT_S, what="the crashed box's will")
    agents[CRASHED] = Agent(CRASHED, broker, tmp_path)  # the box restarts: a new boot
    wait_for(
        lambda: any(n[1] == "resolved" for n in _notices(receiver, CRASHED)), timeout=WAIT_S, what="crashed box back"
    )

    # The old boot's will again, after the box is back (retained, as the broker publishes wills here).
    stale_before = controller.ingest.counters["stale"]
    publisher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="replay", protocol=mqtt.MQTTv5)
    publisher.connect("127.0.0.1", broker.port)
    publisher.loop_start()
    publisher.publish(topics.status_topic(CRASHED), will, qos=1, retain=True).wait_for_publish(timeout=10)
    publisher.disconnect()
    publisher.loop_stop()
    wait_for(lambda: controller.ingest.counters["stale"] > stale_before, timeout=WAIT_S, what="the stale will judged")
    # Nothing may follow it: watch a few alert passes (each 0.25 s or so) past the will's settling time.
    quiet_until = time.monotonic() + 3.0
    while time.monotonic() < quiet_until:
        assert CRASHED in _online(controller), "the stale will took the box offline"
        time.sleep(0.1)
    _settled(controller)

    frozen, crashed = _notices(receiver, FROZEN), _notices(receiver, CRASHED)
    print(
        f"injected: SIGSTOP of {FROZEN}'s agent until told and its will came, then SIGCONT; SIGKILL of {CRASHED}'s"
        f" agent, a restart, then its old Last Will published again (retained)\n"
        f"checked: {FROZEN} notices {frozen}; {CRASHED} notices {crashed}; {CRASHED} online after the stale will;"
        f" heartbeat timeout {TIMEOUT_S:g} s, keepalive {KEEPALIVE_S} s"
    )
    assert [(k, n) for k, n, _ in frozen] == [("box-lost", "firing"), ("box-lost", "resolved")]
    assert frozen[0][2] == "heartbeat-timeout"
    assert [(k, n) for k, n, _ in crashed] == [("box-lost", "firing"), ("box-lost", "resolved")]
    assert crashed[0][2] == "connection-lost"
    assert _online(controller) >= {*SIMULATED, FROZEN, CRASHED}
