"""One alerting set-up shared by the scenario tests of this directory (starting it costs a few seconds): each test
plays its faults on a site of its own and reads only that site's notices."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.alerting.wiring.fleets import (
    Fleet,
    all_online,
    controller_settings,
    running_controller,
    running_simulator,
    write_notifications,
    write_sites,
)
from tests.support.peers import mosquitto, wait_for
from tests.support.receivers import alertmanager, recording_receiver

# One site per scenario, so that no test sees another's alerts.
SITES = {"stop-01": 4, "drop-01": 4, "cut-01": 4, "flap-01": 4, "hot-01": 2, "ops-01": 6}


@pytest.fixture(scope="package")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    directory = tmp_path_factory.mktemp("wiring")
    write_sites(directory / "sites", SITES)
    with (
        mosquitto(directory) as broker,
        recording_receiver() as receiver,
        alertmanager(directory) as manager,
        running_simulator(directory, broker) as sim,
    ):
        notifications = write_notifications(
            directory / "notifications.yaml", webhook=receiver.url, alertmanager=manager.url
        )
        with running_controller(controller_settings(directory, broker, notifications)) as (controller, api):
            wait_for(lambda: all_online(controller), timeout=15, what="every box online at the controller")
            yield Fleet(broker, sim, controller, receiver, manager, api, SITES)
