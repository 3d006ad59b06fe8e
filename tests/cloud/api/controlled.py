"""A real ``Controller`` behind the API, built but not started (no broker, no persister, no alert passes), on a
fake clock and a real database (SQLite or PostgreSQL): what the API's input refusals and the schemathesis run speak
to, so that a request that gets past the edge reaches the real alert service and store."""

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


@contextlib.contextmanager
def served_controller(directory: Path, database_url: str) -> Iterator[tuple[Controller, str]]:
    """The small inventory's controller on ``database_url``, served; yields it and the API's base URL."""
    settings = Settings(database_url=database_url, sites_dir=write_inventory(directory / "sites"))
    controller = Controller(settings, clock=FakeClock())
    try:
        with serving(create_app(settings, controller=controller)) as url:
            yield controller, url
    finally:
        controller.stop()
