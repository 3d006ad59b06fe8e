"""A restarted controller resumes where it stopped: boot, sequence, last seen and status of every box, the
unknown boxes and the health history; a duplicate of the last heartbeat stays a duplicate
(edgefleet.cloud.controller, through a real Mosquitto)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from edgefleet import topics
from edgefleet.clock import FakeClock
from edgefleet.cloud.controller import Controller
from edgefleet.cloud.fleet import HISTORY_POINTS, HealthPoint
from edgefleet.cloud.settings import Settings
from edgefleet.errors import InventoryError, UnreachableError
from tests.cloud.builders import BOX, OTHER_BOX, T0, heartbeat, status, wire, write_sites
from tests.support.peers import Mosquitto, free_port, wait_for


@pytest.fixture
def settings(tmp_path: Path, broker: Mosquitto, database_url: str) -> Settings:
    return Settings(
        broker_url=broker.url,
        database_url=database_url,
        sites_dir=write_sites(tmp_path / "sites"),
        flush_interval_s=0.1,
    )


@pytest.fixture
def publisher(broker: Mosquitto) -> Iterator[mqtt.Client]:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    yield client
    client.disconnect()
    client.loop_stop()


def publish(client: mqtt.Client, topic: str, payload: bytes) -> None:
    client.publish(topic, payload, qos=1).wait_for_publish(timeout=5)


def running(settings: Settings, clock: FakeClock) -> Controller:
    controller = Controller(settings, clock=clock)
    controller.start()
    assert controller.ingest.wait_subscribed(10)
    return controller


def test_restart_resumes_state_and_history(settings: Settings, publisher: mqtt.Client) -> None:
    clock = FakeClock(T0 + 100)
    first = running(settings, clock)
    try:
        for seq in (1, 2, 3):
            publish(publisher, topics.heartbeat_topic(BOX), wire(heartbeat(seq)))
            wait_for(lambda seq=seq: first.state.boxes[BOX].seq == seq, what=f"heartbeat {seq}")  # type: ignore[misc]
            clock.advance(10)
        publish(publisher, topics.status_topic(BOX), wire(status("online", session=1)))
        publish(publisher, topics.heartbeat_topic("stray-01"), wire(heartbeat(1, box="stray-01")))
        wait_for(lambda: first.ingest.counters["unknown-box"] and first.state.boxes[BOX].status_state, what="all")
        before = first.state.boxes[BOX]
        saved = (before.boot, before.seq, before.last_seen, before.first_seen, before.status_state, before.heartbeat)
    finally:
        first.stop()

    clock.advance(3600)
    second = running(settings, clock)
    try:
        after = second.state.boxes[BOX]
        assert (after.boot, after.seq, after.last_seen, after.first_seen, after.status_state, after.heartbeat) == saved
        assert second.state.unknown["stray-01"].messages == 1
        assert second.state.boxes[OTHER_BOX].last_seen is None
        # Memory is empty after the restart: the history comes from the database.
        assert [p.at for p in second.box_history(BOX, T0)] == [T0 + 100, T0 + 110, T0 + 120]
        publish(publisher, topics.heartbeat_topic(BOX), wire(heartbeat(3)))
        wait_for(lambda: second.ingest.counters["duplicate"] == 1, what="the duplicate to be counted")
        assert second.state.boxes[BOX].last_seen == T0 + 120
        publish(publisher, topics.heartbeat_topic(BOX), wire(heartbeat(4)))
        wait_for(lambda: second.ingest.counters["accepted"] == 1, what="the next heartbeat")
        history = second.box_history(BOX, T0 + 105)
        assert [p.at for p in history] == [T0 + 110, T0 + 120, clock.now()]
        assert len(second.box_history(BOX)) == 4
    finally:
        second.stop()


def test_box_history_from_memory_when_it_covers_the_window(settings: Settings) -> None:
    clock = FakeClock(T0)
    controller = Controller(settings, clock=clock)
    try:
        for seq in range(1, HISTORY_POINTS + 11):
            controller.ingest.handle(topics.heartbeat_topic(BOX), wire(heartbeat(seq)))
            clock.advance(1)
        history = controller.box_history(BOX)
        assert len(history) == HISTORY_POINTS
        assert history[-1].at == T0 + HISTORY_POINTS + 9
        assert controller.box_history(BOX, T0 + HISTORY_POINTS + 5) == history[-5:]
        # Older than memory holds, and never flushed: nothing more to find.
        assert controller.box_history(BOX, T0) == history
        assert all(isinstance(p, HealthPoint) for p in history)
        with pytest.raises(KeyError):
            controller.box_history("no-such-box")  # type: ignore[arg-type]
    finally:
        controller.stop()


def test_bad_inventory_stops_the_start(tmp_path: Path, broker: Mosquitto) -> None:
    sites = write_sites(tmp_path / "sites")
    (sites / "broken.yaml").write_text("apiVersion: edgefleet.io/v1\nkind: Site\nmetadata: {name: Bad_Name}\n")
    with pytest.raises(InventoryError, match=r"broken\.yaml"):
        Controller(Settings(broker_url=broker.url, database_url=f"sqlite:///{tmp_path}/db.sqlite", sites_dir=sites))
    assert not (tmp_path / "db.sqlite").exists()  # nothing half-done


def test_unreachable_database_stops_the_start(tmp_path: Path, broker: Mosquitto) -> None:
    url = f"postgresql://edgefleet:hunter2@127.0.0.1:{free_port()}/fleet"
    with pytest.raises(UnreachableError) as caught:
        Controller(Settings(broker_url=broker.url, database_url=url, sites_dir=write_sites(tmp_path / "sites")))
    assert "hunter2" not in str(caught.value)


def test_box_history_answers_from_memory_while_the_database_is_away(
    tmp_path: Path, broker: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    settings = Settings(
        broker_url=broker.url, database_url=f"sqlite:///{data}/fleet.db", sites_dir=write_sites(tmp_path / "sites")
    )
    data.mkdir()
    clock = FakeClock(T0)
    controller = Controller(settings, clock=clock)
    try:
        controller.ingest.handle(topics.heartbeat_topic(BOX), wire(heartbeat(1)))
        shutil.rmtree(data)
        controller.store.engine.dispose()  # the next read opens the file again, and cannot
        assert [p.at for p in controller.box_history(BOX, T0 - 3600)] == [T0]
        assert [p.at for p in controller.box_history(BOX, T0 - 3600)] == [T0]
        assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
            "Failed to read health history from database; answering from memory"
        ]
    finally:
        controller.stop()
