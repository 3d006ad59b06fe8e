"""The controller's periodic jobs (the persister's flush, the alert loop's pass, the rollouts' tick): one
APScheduler interval job each, never two runs at once and missed runs folded into one."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from apscheduler.schedulers.background import BackgroundScheduler

# A run that comes late still runs (APScheduler's default drops one more than 1 s late: on a loaded host the
# first pass of the exclusive windows was skipped and came a whole interval later). ``coalesce`` keeps several
# late runs to one.
JOB_DEFAULTS: Final[dict[str, Any]] = {"misfire_grace_time": None}


def start_interval_job(
    job: Callable[[], object], *, seconds: float, job_id: str, run_now: bool = False
) -> BackgroundScheduler:
    """A started scheduler running ``job`` every ``seconds`` (``max_instances=1``, ``coalesce``); with ``run_now``
    the first run is at once rather than one interval from now."""
    scheduler = BackgroundScheduler(timezone="UTC", job_defaults=JOB_DEFAULTS)
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
