"""Time as a parameter: the real clock and a fake one tests move by hand; and how times and durations are written
for people in messages (``format_utc``, ``format_duration``), so that no message shows raw epoch seconds.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Wall-clock time, seconds since the epoch."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back, for intervals."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = start
        self._mono = 0.0

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock never goes back")
        self._now += seconds
        self._mono += seconds


# --- times and durations as people write them -------------------------------------------------------------

# Beyond a century a duration is not a plan but a typo; it is shown as a number, never spelt out in days.
_SPELT_OUT_S = 100 * 365 * 86400.0
_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def format_duration(seconds: float) -> str:
    """A duration as people write it, in its two largest units: ``45m``, ``2h``, ``1h30m``, ``3d4h``, ``90s`` is
    ``1m30s``, ``0.5s``. Absurd values stay short: ``1e+300s``, ``nan``. Used in messages (API, CLI, logs)."""
    if not math.isfinite(seconds) or abs(seconds) >= _SPELT_OUT_S:
        return f"{seconds:.3g}s" if math.isfinite(seconds) else str(seconds)
    sign = "-" if seconds < 0 else ""
    left = abs(seconds)
    if left < 1:
        return f"{sign}{left:.3g}s"
    whole = round(left)
    parts = []
    for unit, size in _UNITS:
        if whole >= size:
            parts.append(f"{whole // size}{unit}")
            whole %= size
        if len(parts) == 2 or (parts and not whole):
            break
    return sign + "".join(parts)


def format_utc(timestamp: float) -> str:
    """A time as the API writes it, ISO 8601 in UTC to the second: ``2027-01-15T08:00:00Z``. A time no calendar
    holds (NaN, beyond the year 9999) is shown as its seconds since the epoch, briefly."""
    try:
        moment = datetime.fromtimestamp(timestamp, tz=UTC)
    except (OverflowError, ValueError, OSError):
        return f"{timestamp:.3g} seconds after 1970-01-01T00:00:00Z"
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
