"""How the controller's writes to its database fare: the persister's flushes of the fleet state and the alert
loop's saves of alerts. Pure data and one pure judgement.

A database that answers a ping can still refuse every write (a full disk, a read-only file, a quota): the
controller then keeps what it could not save in memory and tries again, but it must say so. ``Controller.saving``
builds a ``SavingHealth`` from ``persisting.Persister.stats`` and ``looping.AlertLoop.saving``; ``/healthz`` answers
"degraded" with ``problems`` and ``/metrics`` exports the counts (``edgefleet.cloud.api``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# What a person should check, by what the database said (the driver's own words, which the store's errors quote):
# SQLite's write lock held by another process is no matter of disk space.
_LOCKED: Final = ("database is locked", "database table is locked")
_LOCKED_ADVICE: Final = (
    "another process holds the database file's write lock (a long transaction, an open sqlite3 shell, a "
    "backup tool); find it with 'fuser' or 'lsof' on the file"
)
_DISK_ADVICE: Final = "check the database's disk space and permissions"


def advice(error: str | None) -> str:
    """What to check for a failing writer whose last error is ``error``."""
    if error is not None and any(words in error for words in _LOCKED):
        return _LOCKED_ADVICE
    return _DISK_ADVICE


@dataclass(frozen=True, slots=True)
class WriterHealth:
    """One writer to the database: how many saves succeeded and failed, the current streak of failures with its
    last error, when it last saved (controller's wall clock), and how many items wait in memory for a save."""

    saves: int = 0
    failed_saves: int = 0
    failure_streak: int = 0
    last_error: str | None = None
    last_saved_at: float | None = None
    pending: int = 0

    @property
    def failing(self) -> bool:
        """Whether its latest save failed (the next success clears it)."""
        return self.failure_streak > 0


@dataclass(frozen=True, slots=True)
class SavingHealth:
    """The fleet state's flushes and the alerts' saves; ``alerts`` None where alerting does not run.
    ``dropped_samples``: health points the persister had to drop while the database was away (its memory bound)."""

    fleet: WriterHealth = WriterHealth()
    alerts: WriterHealth | None = None
    dropped_samples: int = 0

    def problems(self) -> list[str]:
        """One line per failing writer: what cannot be saved, what waits in memory, the error, what to check."""
        out = []
        if self.fleet.failing:
            out.append(
                f"cannot save the fleet state: {self.fleet.failure_streak} flushes failed in a row, "
                f"{self.fleet.pending} boxes and samples wait in memory ({self.fleet.last_error}); "
                + advice(self.fleet.last_error)
            )
        if self.alerts is not None and self.alerts.failing:
            out.append(
                f"cannot save alerts: {self.alerts.failure_streak} saves failed in a row, {self.alerts.pending} "
                f"alerts wait in memory, still listed and served ({self.alerts.last_error}); "
                + advice(self.alerts.last_error)
            )
        return out
