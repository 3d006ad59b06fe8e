"""The controller's periodic jobs run even when they come late (``scheduling.JOB_DEFAULTS``): APScheduler's own
default drops a run more than 1 s late, which on a loaded host skipped the exclusive windows' first pass (and so
a controller started inside a window tainted its hosts a whole interval later). Shown both ways: with the
defaults the late run runs; with APScheduler's own it is dropped."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from edgefleet.cloud.scheduling import JOB_DEFAULTS


def runs_when_late(job_defaults: dict[str, Any]) -> bool:
    ran = threading.Event()
    scheduler = BackgroundScheduler(timezone="UTC", job_defaults=job_defaults)
    # Due ten seconds ago: what a run looks like to a scheduler whose thread was starved that long.
    late = datetime.now(UTC) - timedelta(seconds=10)
    scheduler.add_job(ran.set, "interval", seconds=3600, next_run_time=late, coalesce=True, max_instances=1)
    scheduler.start()
    try:
        return ran.wait(timeout=3)
    finally:
        scheduler.shutdown(wait=True)


@pytest.mark.parametrize(("job_defaults", "runs"), [(JOB_DEFAULTS, True), ({}, False)], ids=["ours", "apscheduler's"])
def test_a_late_run_runs_with_the_controllers_defaults(job_defaults: dict[str, Any], runs: bool) -> None:
    assert runs_when_late(job_defaults) is runs
