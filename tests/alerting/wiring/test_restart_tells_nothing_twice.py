"""A controller that restarts resumes its alerts, its planner and its outbox: an alert that fired before the
restart is neither fired nor told again, a notification that was waiting for a retry is delivered once, an alert
that fires while the controller is down is told once, and a controller that ran without a notification file tells
the alerts still firing once it gets one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator.running import BackgroundSimulator
from tests.alerting.wiring.fleets import (
    WEBHOOK_PATH,
    Fleet,
    all_online,
    controller_settings,
    running_controller,
    running_simulator,
    write_notifications,
    write_sites,
)
from tests.support.peers import Mosquitto, mosquitto, wait_for
from tests.support.receivers import RecordingReceiver, recording_receiver

# Real-time timeouts across three controller starts. Seen once in CI at load ~5: the first box got a second alert
# id, most likely a heartbeat delivered late (sent before the stop, heard after the alert fired), which rightly
# resolves it (not confirmed: it did not recur in 3 runs under -n 4). Run alone, not beside other tests.
pytestmark = pytest.mark.serial

SITE = "rst-01"
FIRST, SECOND = "rst-01-gpu-01", "rst-01-gpu-02"


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[tuple[Mosquitto, RecordingReceiver, BackgroundSimulator]]:
    write_sites(tmp_path / "sites", {SITE: 6})
    with (
        mosquitto(tmp_path) as broker,
        recording_receiver() as receiver,
        running_simulator(tmp_path, broker) as sim,
    ):
        yield broker, receiver, sim


def test_restarts_tell_every_alert_once(
    tmp_path: Path, parts: tuple[Mosquitto, RecordingReceiver, BackgroundSimulator]
) -> None:
    broker, receiver, sim = parts
    notifications = write_notifications(tmp_path / "notifications.yaml", webhook=receiver.url, alertmanager=None)

    # 1. No notification file: the alert is evaluated, stored and listed, and nothing is sent.
    with running_controller(controller_settings(tmp_path, broker, None)) as (controller, api):
        fleet = Fleet(broker, sim, controller, receiver, None, api)
        wait_for(lambda: all_online(controller), timeout=15, what="every box online")
        first_fault = fleet.inject(kind="stop", box=FIRST)
        (stored,) = wait_for(lambda: fleet.stored(site=SITE, box=FIRST), timeout=10, what="the alert stored")
        assert (stored["kind"], stored["state"], stored["muted"]) == ("box-lost", "firing", None)
        assert not controller.alert_loop.sending
    assert receiver.received == []

    # 2. With the file: the alert still firing is told at once. The receiver fails that first request, so the
    #    message waits in the outbox for its retry when the controller stops.
    receiver.answer(status=503, body=b'{"error": "restarting"}')
    with running_controller(controller_settings(tmp_path, broker, notifications)) as (controller, api):
        fleet = Fleet(broker, sim, controller, receiver, None, api)
        receiver.wait_for(1, timeout=10)
    failed = receiver.received[0]
    assert [a["id"] for a in failed.json()["alerts"]] == [stored["id"]]

    # 3. While it is down a second box stops. After the restart the waiting message goes out once, the second
    #    box is told once, and the first box's alert is the same firing as before.
    second_fault = fleet.inject(kind="stop", box=SECOND)
    with running_controller(controller_settings(tmp_path, broker, notifications)) as (controller, api):
        fleet = Fleet(broker, sim, controller, receiver, None, api)
        fleet.wait_notice(box=SECOND, kind="box-lost", timeout=10)
        wait_for(lambda: len(delivered(fleet, FIRST)) == 1, timeout=10, what="the waiting message delivered")
        fleet.clear(first_fault)
        fleet.clear(second_fault)
        for box in (FIRST, SECOND):
            fleet.wait_notice(box=box, kind="box-lost", notice="resolved", timeout=10)
        fleet.settled()
        assert [a["id"] for a in fleet.stored(site=SITE, box=FIRST)] == [stored["id"]]

    assert delivered(fleet, FIRST) == [("firing", stored["id"]), ("resolved", stored["id"])]
    assert [notice for notice, _ in delivered(fleet, SECOND)] == ["firing", "resolved"]
    assert all(r.path == WEBHOOK_PATH for r in receiver.received)


def delivered(fleet: Fleet, box: str) -> list[tuple[str, str]]:
    """(notice, alert id) of every notice about ``box`` the receiver took (its first request was refused)."""
    return [(n.notice, n.alert["id"]) for n in fleet.notices(box=box) if n.received is not fleet.receiver.received[0]]
