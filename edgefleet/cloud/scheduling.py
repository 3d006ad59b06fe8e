"""The controller's periodic jobs (the persister's flush, the alert loop's pass, the rollouts' tick): one
APScheduler interval job each, never two runs at once and missed runs folded into one.

A run that outlives its interval (a flush waiting out a locked SQLite database's busy timeout, 5 s, every 2 s)
makes APScheduler skip the runs due meanwhile, with a warning each; folding them is what ``max_instances=1`` is
for, so ``FoldedRuns`` says it once per streak instead (and when the runs come on time again), and APScheduler's
own line is dropped."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MAX_INSTANCES, JobEvent
from apscheduler.schedulers.background import BackgroundScheduler

log = logging.getLogger(__name__)

# A run that comes late still runs (APScheduler's default drops one more than 1 s late: on a loaded host the
# first pass of the exclusive windows was skipped and came a whole interval later). ``coalesce`` keeps several
# late runs to one.
JOB_DEFAULTS: Final[dict[str, Any]] = {"misfire_grace_time": None}
# APScheduler's line for each skipped run (apscheduler.schedulers.base, 3.x), as its format string.
_SKIPPED_RUN: Final = 'Execution of job "%s" skipped: maximum number of running instances'


class _WithoutSkippedRuns(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_SKIPPED_RUN)


# Our schedulers' logger: under APScheduler's name, so that ``cloud serve`` quiets it as it quiets APScheduler's
# own, less the line per skipped run (``FoldedRuns`` tells those).
SCHEDULER_LOG: Final = logging.getLogger("apscheduler.scheduler.edgefleet")
SCHEDULER_LOG.addFilter(_WithoutSkippedRuns())


class FoldedRuns:
    """Logs once that runs of ``job_id`` are being skipped because its last run is still going, and once when
    they come on time again: when a run ends with no run skipped since the previous one ended (a flush that waits
    5 s on a locked database every time keeps the streak going across its runs). A scheduler listener: its events
    come from the scheduler's thread and the executor's, hence the lock."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self._lock = threading.Lock()
        self._told = False
        # Runs skipped since the streak began, and since the last run ended.
        self._skipped = 0
        self._skipped_since_run = 0

    def heard(self, event: JobEvent) -> None:
        with self._lock:
            if event.code == EVENT_JOB_MAX_INSTANCES:
                self._skipped += 1
                self._skipped_since_run += 1
                tell, ended, self._told = not self._told, 0, True
            else:
                tell, ended = False, self._skipped if self._told and not self._skipped_since_run else 0
                self._skipped_since_run = 0
                if ended:
                    self._told, self._skipped = False, 0
        if event.code == EVENT_JOB_MAX_INSTANCES:
            # Every skipped run is a record (bench/alert_ticks.py counts them); the first of a streak a warning.
            log.log(
                logging.WARNING if tell else logging.DEBUG,
                "Skipped a run of a job whose last run is still going; folding the runs due into the next",
                extra={"job": self.job_id},
            )
        elif ended:
            log.info("Ran a job on time again after skipped runs", extra={"job": self.job_id, "skipped_runs": ended})


def start_interval_job(
    job: Callable[[], object], *, seconds: float, job_id: str, run_now: bool = False
) -> BackgroundScheduler:
    """A started scheduler running ``job`` every ``seconds`` (``max_instances=1``, ``coalesce``); with ``run_now``
    the first run is at once rather than one interval from now."""
    scheduler = BackgroundScheduler(timezone="UTC", job_defaults=JOB_DEFAULTS, logger=SCHEDULER_LOG)
    scheduler.add_listener(FoldedRuns(job_id).heard, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
    scheduler.add_job(
        job,
        "interval",
        seconds=seconds,
        id=job_id,
        max_instances=1,
        coalesce=True,
        replace_existing=True,
        **({"next_run_time": datetime.now(UTC)} if run_now else {}),
    )
    scheduler.start()
    return scheduler
