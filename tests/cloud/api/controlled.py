"""A real ``Controller`` behind the API, built but not started (no persister, no alert passes), on a fake clock
and a real database (SQLite or PostgreSQL): what the API's input refusals and the schemathesis run speak to, so
that a request that gets past the edge reaches the real alert service and store. With a ``broker``, its ingest
alone is started, so that /healthz answers as a healthy controller's does."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from edgefleet.clock import FakeClock
from edgefleet.cloud.api import create_app
from edgefleet.cloud.controller import Controller
from edgefleet.cloud.settings import Settings
from tests.cloud.api.memory import write_inventory
from tests.cloud.api.serving import serving
from tests.support.peers import Mosquitto, wait_for


@contextlib.contextmanager
def served_controller(
    directory: Path, database_url: str, *, broker: Mosquitto | None = None
) -> Iterator[tuple[Controller, str]]:
    """The small inventory's controller on ``database_url``, served; yields it and the API's base URL."""
    settings = Settings(database_url=database_url, sites_dir=write_inventory(directory / "sites"))
    if broker is not None:
        settings = Settings(database_url=database_url, sites_dir=settings.sites_dir, broker_url=broker.url)
    controller = Controller(settings, clock=FakeClock())
    try:
        if broker is not None:
            controller.ingest.start()
            wait_for(lambda: controller.ingest.connected, timeout=10, what="the ingest connected to the broker")
        with serving(create_app(settings, controller=controller, enrollment=controller.enrollment)) as url:
            yield controller, url
    finally:
        controller.ingest.stop()
        controller.stop()
