"""Peers for the agent's integration tests: the real agent as a subprocess, and a plain paho subscriber that records
what the broker delivers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edgefleet import topics
from edgefleet.messages import BoxStatus, Heartbeat, decode_heartbeat, decode_status
from tests.support.peers import wait_for

REPO = Path(__file__).resolve().parents[2]
ALL_BOXES = f"{topics.PREFIX}/+/#"


@dataclass(frozen=True)
class Delivered:
    topic: str
    payload: bytes
    retained: bool


class Listener:
    """A paho subscriber to every box topic. With ``session`` it keeps an MQTT 5 session at the broker, so that
    messages published while it reconnects (after a broker restart) are queued for it, not lost. With ``login``
    (username, password) it logs in to a broker that refuses anonymous clients."""

    def __init__(self, port: int, *, session: str | None = None, login: tuple[str, str] | None = None) -> None:
        self.delivered: list[Delivered] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=session or f"listener-{uuid.uuid4().hex[:8]}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)
        if login is not None:
            self.client.username_pw_set(*login)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._on_message
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = 600 if session else 0
        self.client.connect("127.0.0.1", port, keepalive=30, properties=properties)
        self.client.loop_start()
        wait_for(self._subscribed.is_set, what="listener subscribed")

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, reason: object, props: object) -> None:
        client.subscribe(ALL_BOXES, qos=1)

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.delivered.append(Delivered(message.topic, bytes(message.payload), bool(message.retain)))

    def messages(self) -> list[Delivered]:
        with self._lock:
            return list(self.delivered)

    def heartbeats(self, box: str) -> list[Heartbeat]:
        topic = topics.heartbeat_topic(box)
        return [decode_heartbeat(m.payload) for m in self.messages() if m.topic == topic]

    def statuses(self, box: str) -> list[BoxStatus]:
        topic = topics.status_topic(box)
        return [decode_status(m.payload) for m in self.messages() if m.topic == topic]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class AgentProcess:
    """``python -m edgefleet.cli agent run`` for one box, its log in a file."""

    def __init__(self, box: str, broker_url: str, log: Path, *extra: str, interval: float = 0.2) -> None:
        self.box = box
        self.log_path = log
        env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEFLEET_")}
        args = [sys.executable, "-m", "edgefleet.cli", "agent", "run", "--box", box, "--site", "test-site"]
        args += ["--broker", broker_url, "--interval", str(interval), "--keepalive", "2", "--no-gpu", *extra]
        with log.open("wb") as out:
            self.process = subprocess.Popen(args, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_log(self, words: str, *, timeout: float = 10.0) -> None:
        wait_for(lambda: words in self.log(), timeout=timeout, what=f"{words!r} in the agent's log")

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = 10.0) -> int:
        return self.process.wait(timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)


@pytest.fixture
def listen() -> Iterator[Callable[..., Listener]]:
    made: list[Listener] = []

    def make(port: int, *, session: str | None = None, login: tuple[str, str] | None = None) -> Listener:
        listener = Listener(port, session=session, login=login)
        made.append(listener)
        return listener

    yield make
    for listener in made:
        listener.close()


@pytest.fixture
def start_agent(tmp_path: Path) -> Iterator[Callable[..., AgentProcess]]:
    made: list[AgentProcess] = []

    def start(box: str, broker_url: str, *extra: str, interval: float = 0.2) -> AgentProcess:
        agent = AgentProcess(box, broker_url, tmp_path / f"agent-{box}-{len(made)}.log", *extra, interval=interval)
        made.append(agent)
        return agent

    yield start
    for agent in made:
        agent.kill()
