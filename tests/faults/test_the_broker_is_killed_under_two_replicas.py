"""Fault: the broker of two ``edgefleet cloud serve`` replicas on one PostgreSQL database is killed with -9 and
started again on the same port 25 s later, while real agents (``edgefleet agent run``) beat every 0.5 s.
Invariant: both controllers and the agents reconnect by themselves; the heartbeats the agents kept while the broker
was away arrive at both replicas (each takes a health point for every sequence number the box made since); the
webhook gets exactly one ``controller-deaf`` firing and one resolve, no box-lost, no message twice; leadership
changes hands at most once while both replicas are deaf (no ping-pong), two replicas never lead at once, and
exactly one leads after. PostgreSQL only; judges real time (deafness spells, heartbeat timeouts): serial."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.alerting.wiring.fleets import INTERVAL_S, KEEPALIVE_S, WEBHOOK_PATH, write_sites
from tests.faults.test_the_leader_is_killed import Replica, leader_of
from tests.support.access import bearer, mint_at
from tests.support.peers import Mosquitto, _spawn_mosquitto, wait_for
from tests.support.receivers import Received, RecordingReceiver, recording_receiver

pytestmark = [pytest.mark.slow, pytest.mark.serial, pytest.mark.postgres]

REPO = Path(__file__).resolve().parents[2]
SITE = "brk-01"
# write_sites gives brk-01-edge-01 (no agent: never seen, never lost) and the GPU boxes that run real agents.
BOXES = [f"{SITE}-gpu-01", f"{SITE}-gpu-02"]
OUTAGE_S = 25.0
# Generous: the agents' reconnect backoff doubles up to 60 s, the controllers' up to 30 s.
RECOVERY_BOUND_S = 90.0


def agent(box: str, broker_url: str, directory: Path) -> subprocess.Popen[bytes]:
    """A real agent of SITE, beating every INTERVAL_S, its output in ``directory/box.log``."""
    apps = directory / f"{box}-apps.txt"
    apps.write_text("scan-upload 2.4.1 running\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEFLEET_")}
    args = [sys.executable, "-m", "edgefleet.cli", "agent", "run", "--box", box, "--site", SITE]
    args += ["--broker", broker_url, "--interval", str(INTERVAL_S), "--keepalive", str(KEEPALIVE_S)]
    args += ["--no-gpu", "--apps-file", str(apps)]
    with (directory / f"{box}.log").open("wb") as out:
        return subprocess.Popen(args, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)


def write_all_to_webhook(path: Path, webhook: str) -> Path:
    """Every alert kind (controller-deaf included) to the webhook, each at once and told once an hour at most."""
    path.write_text(
        "apiVersion: edgefleet.io/v1\nkind: Notifications\nmetadata: {name: broker-faults}\nspec:\n"
        "  timing: {groupWait: 0s, groupInterval: 1s, repeatInterval: 1h}\n"
        f"  channels:\n    - {{name: tickets, kind: webhook, url: '{webhook}{WEBHOOK_PATH}'}}\n"
        "  routes:\n    - channels: [tickets]\n"
    )
    return path


def notices(requests: list[Received]) -> list[tuple[str, str, str]]:
    """(kind, box or site, notice) of every alert the webhook got."""
    return [
        (str(alert["kind"]), str(alert.get("box") or alert.get("site")), str(alert["notice"]))
        for request in requests
        if request.path == WEBHOOK_PATH
        for alert in json.loads(request.body)["alerts"]
    ]


def webhook_requests(receiver: RecordingReceiver) -> list[Received]:
    return [r for r in receiver.received if r.path == WEBHOOK_PATH]


def assert_each_told_once(requests: list[Received]) -> None:
    """No message delivered twice (by id), and no alert notice (kind, box, notice) told twice."""
    ids = Counter(str(json.loads(r.body)["id"]) for r in requests)
    assert all(count == 1 for count in ids.values()), f"a message was delivered twice: {ids}"
    told = Counter(notices(requests))
    assert all(count == 1 for count in told.values()), f"an alert was told twice: {told}"


@dataclass(frozen=True, slots=True)
class Seen:
    """Where a box stood on one replica: its latest heartbeat's sequence number, and the receive times of the health
    points it holds (one a heartbeat taken), by the replica's own clock."""

    seq: int
    points: list[datetime]

    def since(self, earlier: Seen) -> int:
        """How many points this replica took after ``earlier``'s newest (older ones may come from the database, where
        the other replica's copies of the same heartbeats lie too: only the newest of ``earlier`` is compared)."""
        return sum(1 for at in self.points if at > max(earlier.points))


def seen(replica: Replica, box: str) -> Seen:
    response = replica.client.get(f"/api/v1/boxes/{box}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return Seen(seq=int(body["seq"]), points=[datetime.fromisoformat(p["at"]) for p in body["history"]])


def both_hear_every_box(replicas: list[Replica]) -> bool:
    healths = [r.health() for r in replicas]
    return all(h is not None and h["boxes_online"] == len(BOXES) and h["hearing"] == "hearing" for h in healths)


class RoleLog:
    """Each replica's role and epoch, sampled while the broker is away: who led, and how often it changed."""

    def __init__(self, replicas: list[Replica]) -> None:
        self.replicas = replicas
        self.samples: list[tuple[float, tuple[str | None, ...], tuple[int | None, ...]]] = []
        self.started = time.monotonic()

    def sample(self) -> None:
        healths = [r.health() for r in self.replicas]
        roles = tuple(None if h is None else str(h["leadership"]["role"]) for h in healths)
        epochs = tuple(None if h is None else int(h["leadership"]["epoch"]) for h in healths)
        self.samples.append((time.monotonic() - self.started, roles, epochs))

    def sample_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.sample()
            time.sleep(0.25)

    def epochs(self) -> list[int]:
        """Every epoch a replica named, in order of first sight."""
        seen_: list[int] = []
        for _, _, epochs in self.samples:
            for epoch in epochs:
                if epoch is not None and epoch not in seen_:
                    seen_.append(epoch)
        return seen_

    def changes(self) -> str:
        shown, last = [], None
        for at, roles, epochs in self.samples:
            if (roles, epochs) != last:
                shown.append(f"{at:5.1f} s {roles} epochs {epochs}")
                last = (roles, epochs)
        return "\n".join(shown)


def test_a_killed_broker_restarted_under_two_replicas_tells_ops_once(
    tmp_path: Path, broker: Mosquitto, postgres_url: str
) -> None:
    sites = write_sites(tmp_path / "sites", {SITE: len(BOXES) + 1})
    agents = {box: agent(box, broker.url, tmp_path) for box in BOXES}
    replicas: list[Replica] = []
    try:
        with recording_receiver() as receiver:
            notifications = write_all_to_webhook(tmp_path / "notifications.yaml", receiver.url)
            for name in ("first", "second"):
                replica = Replica(
                    name, broker=broker, sites=sites, database=postgres_url, directory=tmp_path,
                    notifications=notifications,
                )  # fmt: skip
                replicas.append(replica)
                wait_for(replica.health, timeout=30, what=f"{name} to answer /healthz")
                replica.client.headers.update(bearer(mint_at(postgres_url, name=f"ops-{name}")))
            leader_of(*replicas)
            wait_for(lambda: both_hear_every_box(replicas), timeout=60, what="both replicas to hear every box")
            before = {(r.name, box): seen(r, box) for r in replicas for box in BOXES}
            told_before = len(webhook_requests(receiver))

            broker.process.send_signal(signal.SIGKILL)
            broker.process.wait(10)
            roles = RoleLog(replicas)
            roles.sample_for(OUTAGE_S)
            broker.process = _spawn_mosquitto(broker.config, broker.port)
            restarted_at = time.monotonic()

            def recovered() -> bool:
                roles.sample()
                resolved = ("controller-deaf", "fleet", "resolved") in notices(webhook_requests(receiver))
                return resolved and both_hear_every_box(replicas)

            wait_for(recovered, timeout=RECOVERY_BOUND_S, interval=0.25, what="both replicas hearing every box")
            print(f"\nall heard again {time.monotonic() - restarted_at:.1f} s after the broker restarted")
            print(f"roles while the broker was away and after:\n{roles.changes()}")
            # Judging a few heartbeat timeouts with every agent back: a box judged lost now would be told now.
            time.sleep(5)
            leader_of(*replicas)  # exactly one leads, and both name it
            after = {(r.name, box): seen(r, box) for r in replicas for box in BOXES}
            requests = webhook_requests(receiver)[told_before:]
    finally:
        for process in agents.values():
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
            process.wait(10)
        for replica in replicas:
            replica.stop()

    told = notices(requests)
    print(f"told after the kill: {told}")
    assert [n for n in told if n[0] == "controller-deaf"] == [
        ("controller-deaf", "fleet", "firing"),
        ("controller-deaf", "fleet", "resolved"),
    ], told
    assert [n for n in told if n[0] in ("box-lost", "site-unreachable", "box-flapping")] == [], told
    assert_each_told_once(requests)

    # Never two leaders at once, and the lease changed hands at most once while nobody heard (no ping-pong).
    assert all(r.count("leader") <= 1 for _, r, _ in roles.samples), roles.changes()
    assert len(roles.epochs()) <= 2, roles.changes()

    for (name, box), was in before.items():
        now = after[(name, box)]
        made = now.seq - was.seq
        arrived = now.since(was)
        print(f"{name} {box}: {made} heartbeats made, {arrived} received")
        assert made > OUTAGE_S / INTERVAL_S, f"{box} did not beat on through the outage"
        # A heartbeat the broker took (and acknowledged) in its last instant dies with it: at most one per box.
        assert made - 1 <= arrived <= made, f"{name}: {box} made {made} heartbeats, {arrived} arrived"
