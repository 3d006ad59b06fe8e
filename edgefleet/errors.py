"""The project's own exceptions, raised at the boundaries where foreign errors are translated.

EdgefleetError
├── InventoryError      the site inventory in sites/ is invalid; carries every problem found
├── ReleaseError        a release manifest in releases/ is invalid; carries every problem found
├── MessageRejected     a wire message was refused by the ingest (carries the cause, for counters)
└── UnreachableError    a peer (API, broker, database, simulator) could not be reached; says where and what to try
"""

from __future__ import annotations

import math
from dataclasses import dataclass


class EdgefleetError(Exception):
    """Base of every error edgefleet raises on purpose."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an input file: where it is and how to fix it."""

    file: str
    line: int | None
    field: str
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.reason}"


class InventoryError(EdgefleetError):
    """The inventory cannot be loaded; nothing of it was taken."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"the site inventory has {len(problems)} problem(s):\n{lines}")


class ReleaseError(EdgefleetError):
    """A release cannot be loaded; nothing of it was taken."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"the release has {len(problems)} problem(s):\n{lines}")


class InventoryVersionMismatch(EdgefleetError):
    """The inventory a controller reads is not the one the caller meant to apply; nothing was changed."""


class MessageRejected(EdgefleetError):
    """A message from a box was dropped; ``cause`` is a stable word used in counters and logs."""

    def __init__(self, cause: str, detail: str) -> None:
        self.cause = cause
        self.detail = detail
        super().__init__(f"{cause}: {detail}")


class UnreachableError(EdgefleetError):
    """A peer could not be reached: ``what`` at ``where``; ``hint`` says what to try."""

    def __init__(self, what: str, where: str, hint: str) -> None:
        self.what = what
        self.where = where
        self.hint = hint
        super().__init__(f"cannot reach the {what} at {where}: {hint}")


def retry_after_seconds(value: str | None, *, at_most: float) -> float | None:
    """Seconds from an HTTP ``Retry-After`` header given in seconds (what the API server, DingTalk and webhooks
    send), at most ``at_most``; None for no header, an HTTP date, a negative or non-finite number: the caller's
    backoff decides then."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, at_most)
