"""A periodic job whose runs outlive their interval (a flush waiting out a locked SQLite database's busy timeout, run
after run) is told once per streak (``scheduling.FoldedRuns``), not once per skipped run as APScheduler does on its own: with a
locked database the controller's log had APScheduler's "skipped: maximum number of running instances reached"
every 2 s. Shown against a real scheduler; APScheduler's own line is checked to come without ours."""

from __future__ import annotations

import logging
import threading

import pytest
from apscheduler.events import EVENT_JOB_MAX_INSTANCES
from apscheduler.schedulers.background import BackgroundScheduler

from edgefleet.cloud.scheduling import start_interval_job
from tests.support.peers import wait_for

SKIPPED = "skipped: maximum number of running instances"


def test_a_run_that_outlives_its_interval_is_told_once_and_its_end_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    release = threading.Event()
    runs = 0

    def job() -> None:
        # The first two runs each outlive several intervals (one streak across both), the rest are quick.
        nonlocal runs
        runs += 1
        if runs == 1:
            release.wait(30)
        elif runs == 2:
            at_start = len(skips)
            wait_for(lambda: len(skips) >= at_start + 3, timeout=30, what="three runs skipped during the second")

    scheduler = start_interval_job(job, seconds=0.05, job_id="stuck", run_now=True)
    skips: list[object] = []
    scheduler.add_listener(skips.append, EVENT_JOB_MAX_INSTANCES)
    try:
        skipped = lambda: sum(  # noqa: E731 (warnings only)
            "Skipped a run" in r.getMessage() and r.levelno >= logging.WARNING for r in caplog.records
        )
        wait_for(lambda: skipped() >= 1, timeout=30, what="the first skipped run told")
        # Several more runs fall due while the first is still going: each is skipped, none is told.
        wait_for(lambda: len(skips) >= 5, timeout=30, what="five runs skipped")
        assert skipped() == 1
        release.set()
        wait_for(lambda: runs >= 4, timeout=30, what="the job running on time again")
    finally:
        release.set()
        scheduler.shutdown(wait=True)
    ours = [r for r in caplog.records if r.name == "edgefleet.cloud.scheduling"]
    told = [r for r in ours if r.levelno >= logging.INFO]
    # Every skipped run is a record still (at debug past the first): bench/alert_ticks.py counts them.
    assert sum(r.getMessage().startswith("Skipped a run") for r in ours) >= len(skips) >= 8
    assert [r.getMessage() for r in told][:2] == [
        "Skipped a run of a job whose last run is still going; folding the runs due into the next",
        "Ran a job on time again after skipped runs",
    ], told
    assert len(told) == 2
    assert told[0].levelno == logging.WARNING
    assert told[0].__dict__["job"] == "stuck"
    assert told[1].__dict__["skipped_runs"] >= 8  # both runs' skips: one streak
    assert not [r for r in caplog.records if SKIPPED in r.getMessage()]


def test_apscheduler_alone_tells_every_skipped_run(caplog: pytest.LogCaptureFixture) -> None:
    """The line the controller's schedulers drop: APScheduler's own logger says it at each skipped run."""
    caplog.set_level(logging.WARNING)
    release = threading.Event()
    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.add_job(lambda: release.wait(30), "interval", seconds=0.05, max_instances=1, coalesce=True)
    scheduler.start()
    try:
        wait_for(
            lambda: sum(SKIPPED in r.getMessage() for r in caplog.records) >= 3,
            timeout=30,
            what="APScheduler telling three skipped runs",
        )
    finally:
        release.set()
        scheduler.shutdown(wait=True)
