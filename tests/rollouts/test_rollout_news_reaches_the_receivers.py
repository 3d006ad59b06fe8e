"""A rollout's news reaches the receivers the notification file routes it to, through the alert outbox and the
delivery worker's real HTTP senders: a canary that stops a rollout and rolls it back is one message per channel
naming the sites reverted, and a whole rollout is a handful of messages, never one per site. End to end against
a simulated cluster (tests/rollouts/world.py), a DingTalk-like robot and a webhook on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from edgefleet.cloud.alerting.config import load_notifications
from edgefleet.cloud.alerting.delivering import DeliveryWorker
from edgefleet.cloud.alerting.delivery import build_senders, http_client
from edgefleet.cloud.alerting.outbox import Outbox
from edgefleet.cloud.rollouts.announcing import RolloutAnnouncer
from edgefleet.cloud.store import StoreError
from tests.rollouts.world import SITES, World, release, small_world
from tests.support.receivers import RecordingReceiver, recording_receiver
from tests.support.secrets import DINGTALK_SECRET, DINGTALK_TOKEN

pytestmark = pytest.mark.slow

NOTIFICATIONS = """\
apiVersion: edgefleet.io/v1
kind: Notifications
metadata: {{name: test}}
spec:
  channels:
    - name: ops
      kind: dingtalk
      url: {url}/robot/send
      tokenFrom: {{env: OPS_TOKEN}}
      secretFrom: {{env: OPS_SECRET}}
    - {{name: releases, kind: webhook, url: "{url}/hooks/releases"}}
  routes:
    - rollouts: [started, wave-passed, awaiting-approval, sites-deferred, aborted, rolled-back, done]
      channels: [releases]
    - rollouts: [aborted, rolled-back, awaiting-approval]
      channels: [ops]
  defaultChannels: []
"""


@pytest.fixture
def receiver() -> Iterator[RecordingReceiver]:
    with recording_receiver() as r:
        yield r


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with http_client(timeout_s=2.0) as c:
        yield c


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with small_world(tmp_path) as built:
        built.beat()
        yield built


def wire(world: World, receiver: RecordingReceiver, client: httpx.Client, directory: Path) -> DeliveryWorker:
    """What the controller builds: the announcer over the alert outbox, and the delivery worker over both."""
    path = directory / "notifications.yaml"
    path.write_text(NOTIFICATIONS.format(url=receiver.url))
    config = load_notifications(path, environ={"OPS_TOKEN": DINGTALK_TOKEN, "OPS_SECRET": DINGTALK_SECRET})
    outbox = Outbox(world.store)
    outbox.create_schema()
    world.reconciler.announcer = RolloutAnnouncer(outbox, lambda: config)
    return DeliveryWorker(outbox, config, clock=world.clock, senders=build_senders(client, clock=world.clock))


def hooks(receiver: RecordingReceiver, rollout_id: str) -> list[dict[str, Any]]:
    bodies = [r.json() for r in receiver.received if r.path == "/hooks/releases"]
    return [b for b in bodies if b["rollout"]["id"] == rollout_id]


def robot(receiver: RecordingReceiver) -> list[str]:
    return [str(r.json()["markdown"]["text"]) for r in receiver.received if r.path == "/robot/send"]


def test_a_canary_that_stops_the_rollout_and_rolls_it_back_is_one_grouped_message_per_channel(
    world: World, receiver: RecordingReceiver, client: httpx.Client, tmp_path: Path
) -> None:
    delivery = wire(world, receiver, client, tmp_path)
    first, _ = world.service.start(release("1.0.0"), by="tester")
    world.run_until(first.id, "done")
    world.stuck.add(SITES[1])  # its agents never report 2.0.0
    rollout, _ = world.service.start(release("2.0.0", failed_sites=0), by="tester")
    for _ in range(200):
        current = world.step(rollout.id)
        if all(current.status.sites[s].state == "passed" for s in SITES if s != SITES[1]):
            break
    world.clock.advance(3601)
    world.run_until(rollout.id, "aborted")

    report = delivery.deliver()

    assert report is not None
    assert report.failed == 0
    assert report.retried == 0
    told = hooks(receiver, rollout.id)
    stops = [b for b in told if {e["event"] for e in b["events"]} & {"aborted", "rolled-back"}]
    assert len(stops) == 1
    (stop,) = stops
    assert [e["event"] for e in stop["events"]] == ["aborted", "rolled-back"]
    assert sorted(stop["events"][1]["sites"]) == sorted(SITES)
    assert "sites failed (the rollout stops at more than 0)" in stop["events"][0]["message"]
    # The robot took only what its route names: the stop, once, with the sites and what to do.
    (markdown,) = robot(receiver)
    assert f"Rollout {rollout.id} of scan-upload-2.0.0: stopped, rolled back" in markdown
    assert all(site in markdown for site in SITES)
    assert f"edgefleet rollout status {rollout.id}" in markdown
    # A handful for the whole rollout: started, the stop, and nothing per site.
    assert len(told) <= 3
    # Ticking again tells nothing more; the outbox holds nothing undelivered.
    world.step(rollout.id)
    assert delivery.deliver() is not None
    assert len(hooks(receiver, rollout.id)) == len(told)
    assert delivery.outbox.backlog() == {}


def test_a_good_rollout_of_several_waves_is_a_handful_of_messages(
    world: World, receiver: RecordingReceiver, client: httpx.Client, tmp_path: Path
) -> None:
    delivery = wire(world, receiver, client, tmp_path)
    rollout, _ = world.service.start(release("1.0.0", waves='["50%", "100%"]'), by="tester")
    world.run_until(rollout.id, "done")

    assert delivery.deliver() is not None

    told = hooks(receiver, rollout.id)
    events = [e["event"] for b in told for e in b["events"]]
    assert events[0] == "started"
    assert events[-1] == "done"
    assert events.count("started") == events.count("done") == 1
    # Four sites in a canary and two waves: at most one message per wave passed, plus started and done.
    assert len(told) <= 4
    assert all(len(b["events"]) <= 3 for b in told)
    assert robot(receiver) == []  # the robot's route takes no news of a good rollout


def test_news_the_outbox_could_not_take_holds_the_status_back_and_is_told_once_the_next_tick(
    world: World, receiver: RecordingReceiver, client: httpx.Client, tmp_path: Path
) -> None:
    delivery = wire(world, receiver, client, tmp_path)
    accept = delivery.outbox.accept
    refused: list[int] = []

    def away_once(notifications: Any) -> None:
        if not refused:
            refused.append(len(notifications))
            raise StoreError("database sqlite:///edgefleet.db: failed to accept notifications in the outbox: locked")
        accept(notifications)

    delivery.outbox.accept = away_once  # type: ignore[method-assign]
    rollout, _ = world.service.start(release("1.0.0"), by="tester")

    world.beat()
    (result,) = world.reconciler.tick()
    assert result.saved is False
    assert refused == [1]
    assert world.rollouts.get(rollout.id).status.started is False  # not written: the news would be lost
    world.run_until(rollout.id, "done")
    assert delivery.deliver() is not None

    events = [e["event"] for b in hooks(receiver, rollout.id) for e in b["events"]]
    assert events.count("started") == 1
    assert events[-1] == "done"
