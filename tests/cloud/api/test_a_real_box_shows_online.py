"""End to end through real parts: the app's lifespan runs a real ``Controller`` (SQLite, a real Mosquitto) and
a real agent link (``BoxReporter`` + ``BoxLink``, paho's own loop) reports a box, which the API then shows
online - and offline once the agent stops."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from edgefleet.agent.link import BoxLink, BrokerAddress
from edgefleet.agent.reporting import BoxReporter
from edgefleet.clock import SystemClock
from edgefleet.cloud.api import create_app
from edgefleet.cloud.settings import Settings
from tests.cloud.api.memory import apps, host, write_inventory
from tests.cloud.api.serving import serving
from tests.cloud.builders import gpus
from tests.support.access import bearer, mint_at
from tests.support.peers import Mosquitto, wait_for

BOX, SITE = "sh-pudong-gpu-01", "sh-pudong"


@pytest.fixture
def api(broker: Mosquitto, tmp_path: Path) -> Iterator[httpx.Client]:
    settings = Settings(
        broker_url=broker.url,
        database_url=f"sqlite:///{tmp_path / 'edgefleet.db'}",
        sites_dir=write_inventory(tmp_path / "sites"),
    )
    with serving(create_app(settings)) as url, httpx.Client(base_url=url, timeout=10) as client:
        client.headers.update(bearer(mint_at(settings.database_url)))
        wait_for(lambda: client.get("/healthz").status_code == 200, what="the controller to connect to the broker")
        yield client


@pytest.fixture
def link(broker: Mosquitto) -> Iterator[BoxLink]:
    reporter = BoxReporter(BOX, SITE, interval_s=10.0, clock=SystemClock())
    box_link = BoxLink(reporter, BrokerAddress.parse(broker.url))
    box_link.connect_async()
    box_link.client.loop_start()
    try:
        wait_for(lambda: box_link.connected, what="the box to connect")
        yield box_link
    finally:
        box_link.client.loop_stop()


def test_a_box_reporting_through_mosquitto_shows_online_then_offline(api: httpx.Client, link: BoxLink) -> None:
    def online() -> dict[str, Any] | None:
        # A heartbeat published before the controller's subscription is active is lost (not retained): resend.
        link.send(link.reporter.heartbeat(host(), gpus((66.0, 55.0)), apps("running")))
        box: dict[str, Any] = api.get(f"/api/v1/boxes/{BOX}").json()
        return box if box["reachability"]["state"] == "online" else None

    box = wait_for(online, interval=0.2, what="the box to show online")

    assert box["boot"] == link.reporter.boot
    assert box["gpu_temperature_max_c"] == 66.0
    assert box["latest"]["apps"]["apps"][0]["state"] == "running"
    assert api.get(f"/api/v1/sites/{SITE}").json()["boxes_online"] == 1
    assert 'edgefleet_box_up{box="sh-pudong-gpu-01",site="sh-pudong"} 1.0' in api.get("/metrics").text

    link.stop().wait_for_publish(5)  # type: ignore[union-attr]
    link.disconnect()

    def offline() -> dict[str, Any] | None:
        reachability: dict[str, Any] = api.get(f"/api/v1/boxes/{BOX}").json()["reachability"]
        return reachability if reachability["state"] == "offline" else None

    assert wait_for(offline, what="the box to show offline")["reason"] == "shutdown"


def test_healthz_turns_503_when_the_broker_goes_away(api: httpx.Client, broker: Mosquitto) -> None:
    broker.stop()

    def unavailable() -> dict[str, Any] | None:
        response = api.get("/healthz")
        return response.json() if response.status_code == 503 else None

    body = wait_for(unavailable, what="/healthz to notice the broker is gone")
    assert (body["broker_connected"], body["database_ok"]) == (False, True)
    assert body["problems"] == [
        f"not connected to the broker at {broker.url}; check that it runs and the controller's log"
    ]


def test_readyz_is_ready_while_broker_and_database_are_up_and_503_without_the_broker_livez_stays_200(
    api: httpx.Client, broker: Mosquitto
) -> None:
    """What the deploy/ readiness probe asks: the storage and the broker connection, nothing else."""
    ready = api.get("/readyz")
    assert (ready.status_code, ready.json()) == (200, {"ready": True, "problems": []})

    broker.stop()

    def unready() -> dict[str, Any] | None:
        response = api.get("/readyz")
        return response.json() if response.status_code == 503 else None

    body = wait_for(unready, what="/readyz to notice the broker is gone")
    assert body == {
        "ready": False,
        "problems": [f"not connected to the broker at {broker.url}; check that it runs and the controller's log"],
    }
    # Alive all the same: a liveness probe must not restart a controller for what it waits out.
    assert (api.get("/livez").status_code, api.get("/livez").json()) == (200, {"alive": True})
