"""The constrained types every request is read through: path and query parameters and body fields alike.

Input is refused here, at the edge, with a 422 naming the parameter, before a route or the database sees it:

- text holds no NUL and no other control character (PostgreSQL refuses NUL in text, and the rest would garble
  logs, terminals and notifications) and has a length bound (``Name``, ``Who``, ``Comment``, ``Text``);
- numbers are finite (``Seconds``, ``Duration``: no NaN, no infinity, which JSON and query strings can spell and
  no store keeps), and a duration is more than zero.

Routes and the request models in ``schemas.py``, ``alert_schemas.py`` and ``routes/*.py`` use these types and no
bare ``str`` or ``float``; ``tests/cloud/api/test_input_is_refused_at_the_edge.py`` checks that every parameter
of the OpenAPI does. ``errors.describe_validation_errors`` words the refusals (``PRINTABLE_MESSAGES``).
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from pydantic import AfterValidator, AllowInfNan, BeforeValidator, StringConstraints
from pydantic_core import PydanticCustomError

from edgefleet.clock import format_duration
from edgefleet.cloud.alerting.config import parse_duration
from edgefleet.cloud.alerting.silences import MAX_WHO_CHARS

# No C0 control character (NUL included) and no DEL.
PRINTABLE: Final = r"^[^\x00-\x1f\x7f]*$"
# The same, but line breaks and tabs are allowed: a comment may be a pasted paragraph.
PRINTABLE_LINES: Final = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
# What a refused pattern means, for the error message (pydantic would only repeat the regular expression).
PRINTABLE_MESSAGES: Final = {
    PRINTABLE: "must not hold NUL or other control characters (line breaks, tabs, escapes)",
    PRINTABLE_LINES: "must not hold NUL or other control characters (line breaks and tabs are allowed)",
}

# Site and box names are DNS labels (63), alert and silence ids shorter still; 253 (a whole DNS name) leaves room
# for any name the inventory takes and refuses pasted texts.
MAX_NAME_CHARS: Final = 253
# A comment says why (a ticket, a known fault): a paragraph, not a document.
MAX_COMMENT_CHARS: Final = 2000
# Short free texts: a duration such as 1h30m, a region.
MAX_TEXT_CHARS: Final = 64

Name = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME_CHARS, pattern=PRINTABLE)]
"""An id or a name: a site, a box, an alert, a silence (or the start of an id)."""

Who = Annotated[str, StringConstraints(min_length=1, max_length=MAX_WHO_CHARS, pattern=PRINTABLE)]
"""Who does something: a person's name or login."""

Comment = Annotated[str, StringConstraints(min_length=1, max_length=MAX_COMMENT_CHARS, pattern=PRINTABLE_LINES)]
"""Why: a ticket, a maintenance; may run over several lines."""

Text = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT_CHARS, pattern=PRINTABLE)]
"""A short free text: a region, a duration such as ``1h30m``."""

Seconds = Annotated[float, AllowInfNan(False)]
"""A finite number of seconds; bounds are set where it is used."""


# Echoed input is cut to this: a refused 2000-character text need not come back whole.
SHOWN_CHARS: Final = 60


def shown(value: object) -> str:
    """``value`` as an error message quotes it, cut to ``SHOWN_CHARS``."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else f"{text[: SHOWN_CHARS - 3]}..."


def _read_duration(value: object) -> object:
    """A text (``1h30m``, ``90``) becomes seconds; anything else goes on to the number checks as it is."""
    if not isinstance(value, str | bool):
        return value
    seconds = parse_duration(value) if isinstance(value, str) and len(value) <= MAX_TEXT_CHARS else None
    if seconds is None:
        raise PydanticCustomError(
            "duration_parsing",
            "{given} is no duration; give seconds or a text such as 90m, 2h, 1h30m",
            {"given": shown(value)},
        )
    return seconds


def _more_than_zero(seconds: float) -> float:
    if seconds <= 0:
        raise PydanticCustomError(
            "duration_positive", "must be more than 0 seconds, got {given}", {"given": format_duration(seconds)}
        )
    return seconds


def duration_schema(max_s: float | None = None) -> dict[str, Any]:
    """The OpenAPI of a duration: seconds, or a text such as 90m."""
    number: dict[str, Any] = {"type": "number", "exclusiveMinimum": 0}
    if max_s is not None:
        number["maximum"] = max_s
    text = {"type": "string", "pattern": r"^\s*(\d+(\.\d+)?(ms|s|m|h|d))+\s*$", "maxLength": MAX_TEXT_CHARS}
    return {"anyOf": [number, text]}


Duration = Annotated[float, BeforeValidator(_read_duration), AllowInfNan(False), AfterValidator(_more_than_zero)]
"""A finite duration of more than 0 seconds, given as seconds or as a text such as ``90m``, ``2h``, ``1h30m``."""
