"""``cloud serve``'s choice (docs/operations.md, "Schema migrations"): a controller started on a database of release
0.1.0 upgrades it before it reads a row, logs the upgrade once, and resumes the boxes and alerts 0.1.0 saved.
SQLite, and PostgreSQL when set."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from edgefleet.clock import FakeClock
from edgefleet.cloud.controller import Controller
from edgefleet.cloud.migrating import current_revision, head_revision
from edgefleet.cloud.settings import Settings
from tests.cloud.builders import BOX, SITE, T0, write_sites
from tests.cloud.migrations.test_a_database_of_the_last_release_upgrades_with_everything_in_it import (
    write_release_0_1_0,
)


def test_a_controller_upgrades_a_0_1_0_database_and_resumes_from_it(
    database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    old = write_release_0_1_0(database_url)
    with old.transaction("put 0.1.0's box in this inventory") as connection:
        connection.exec_driver_sql(f"UPDATE box_state SET box = '{BOX}', site = '{SITE}'")
    old.close()
    settings = Settings(
        broker_url="mqtt://127.0.0.1:1", database_url=database_url, sites_dir=write_sites(tmp_path / "sites")
    )

    with caplog.at_level(logging.INFO, logger="edgefleet.cloud.controller"):
        controller = Controller(settings, clock=FakeClock(T0))
    try:
        assert current_revision(controller.store) == head_revision()
        assert controller.state.boxes[BOX].seq == 2**40
        assert controller.state.boxes[BOX].last_seen == 1_700_000_500.0
        assert controller.alert_loop.alerts.get("0123456789abcdef-1700000300") is not None
    finally:
        controller.stop()
    upgraded = [r for r in caplog.records if r.getMessage() == "Upgraded the database schema"]
    assert [(r.__dict__["from"], r.__dict__["to"]) for r in upgraded] == [(None, head_revision())]

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="edgefleet.cloud.controller"):
        Controller(settings, clock=FakeClock(T0)).stop()
    assert not [r for r in caplog.records if r.getMessage() == "Upgraded the database schema"]
