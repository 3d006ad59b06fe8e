"""How every edgefleet process writes its log: one plain line per record, with the record's ``extra={...}``
context appended as ``key=value`` - ``2026-11-28 07:15:02,123 INFO edgefleet.agent.link: Connected box to
broker box=sh-pudong-gpu-01 broker=mqtt://127.0.0.1:1883``. Used by the agent, the controller and the simulator;
standard library only, so the agent stays small.

Every line is passed through ``credentials.mask_secrets`` before it is written: a secret value the process
registered (``credentials.hide_in_logs``) shows as ``***`` even if a record carried it by mistake.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from typing import Any, Final, TextIO

from edgefleet.credentials import mask_secrets

_RECORD_FIELDS: Final = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's coloured copy of the message
}


def _field(value: Any) -> str:
    text = str(value)
    if not text or any(c in text for c in ' ="\n'):
        return json.dumps(text, ensure_ascii=False)
    return text


class PlainFormatter(logging.Formatter):
    """``time level logger: message key=value ...``; values with spaces or quotes are JSON-quoted; registered
    secrets are masked."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        record.asctime = self.formatTime(record)
        line = self.formatMessage(record)
        extras = [f"{k}={_field(v)}" for k, v in vars(record).items() if k not in _RECORD_FIELDS]
        if extras:
            line += " " + " ".join(extras)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return mask_secrets(line)


class StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is when a record comes, not the one at set-up: a command run in-process
    (tests, embedding) swaps and closes stderr, and a handler bound to the old one would fail on every record."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass  # always the current sys.stderr


def configure_logging(level: int | str = logging.INFO, *, quiet: Mapping[str, int] | None = None) -> None:
    """Send every record at ``level`` and above to stderr as plain lines; ``quiet`` raises chosen loggers'
    levels (say, a library that logs every scheduled run)."""
    handler = StderrHandler()
    handler.setFormatter(PlainFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper() if isinstance(level, str) else level)
    for name, name_level in (quiet or {}).items():
        logging.getLogger(name).setLevel(name_level)
