"""/healthz logs when the controller's health changes, not at every probe: an hour's outage probed every few
seconds leaves one warning naming what is down and one line when it is back."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from edgefleet.cloud.api import create_app
from edgefleet.cloud.settings import Settings
from tests.cloud.api.memory import MemoryController
from tests.cloud.api.serving import serving

LOGGER = "edgefleet.cloud.api.routes.system"


def health_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == LOGGER]


def test_an_outage_is_logged_when_it_starts_changes_and_ends(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # An app of its own: what /healthz last answered is kept per app, and the shared one has answered other tests.
    memory = MemoryController.small(tmp_path / "sites")
    caplog.set_level(logging.INFO, logger=LOGGER)
    with serving(create_app(Settings(), controller=memory)) as url, httpx.Client(base_url=url, timeout=10) as client:

        def probe(times: int) -> list[int]:
            return [client.get("/healthz").status_code for _ in range(times)]

        assert probe(3) == [200] * 3
        assert health_lines(caplog) == [], "a healthy start is not worth a line"

        memory.ingest.connected = False
        assert probe(5) == [503] * 5
        memory.store.problem = "disk full; check it"
        assert probe(5) == [503] * 5
        memory.ingest.connected = True
        memory.store.problem = None
        assert probe(5) == [200] * 5

    lines = health_lines(caplog)
    assert lines == [
        (logging.WARNING, "Answered health check as unavailable"),
        (logging.WARNING, "Answered health check as unavailable"),
        (logging.INFO, "Answered health check as ok again"),
    ], "one line per change of what is down, none per probe"
    broker_down, both_down = (r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING)
    assert [p.split(" at ")[0] for p in broker_down.problems] == ["not connected to the broker"]
    assert len(both_down.problems) == 2, "the warning names everything that is down"
