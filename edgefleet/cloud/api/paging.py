"""Cursor paging, the same for every list of the API (alerts, silences, sites, a site's boxes, unknown boxes).

A list answers a page: at most ``limit`` items (a JSON array, as before paging), and, when more follow, the
cursor of the next page in the ``X-Next-Cursor`` header and the whole next URL in ``Link: <...>; rel="next"``
(RFC 8288). The body stays a plain array so that every client that parsed one still does; a client that wants
everything follows the header until it is absent (the CLI's ``--all`` and ``-o json|yaml`` do).

A cursor is opaque to clients: the URL-safe base64 of a JSON array naming the list and the sort key of the last
item of the page (keyset paging: the next page starts after that key, so items added or removed meanwhile never
make a page repeat or skip one that stays). A cursor that does not decode, or names another list, is a 422 that
says to start again without one. Pure helpers; the routes call them.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from typing import Annotated, Final, TypeVar

from fastapi import Query, Request, Response

from edgefleet.cloud.api.errors import Invalid

NEXT_CURSOR_HEADER: Final = "X-Next-Cursor"
# A cursor holds a list's name, a time and an id (63 characters at most): a few hundred characters at most.
MAX_CURSOR_CHARS: Final = 512

# What ``encode_cursor`` writes: URL-safe base64 (padding included); anything else is not one of ours.
CURSOR_PATTERN: Final = r"^[A-Za-z0-9_=-]*$"

CursorQuery = Annotated[
    str | None,
    Query(
        max_length=MAX_CURSOR_CHARS,
        pattern=CURSOR_PATTERN,
        description="Where the page starts: the X-Next-Cursor header of the page before (absent: the first page).",
    ),
]

T = TypeVar("T")
Key = tuple[str | float, ...]


def encode_cursor(listing: str, key: Key) -> str:
    """The cursor of the page that follows the item whose sort key is ``key`` in the list ``listing``."""
    return base64.urlsafe_b64encode(json.dumps([listing, *key]).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, listing: str, shape: Sequence[type]) -> Key:
    """The sort key ``cursor`` holds; raises Invalid (422) when it is no cursor of ``listing`` with a key of
    ``shape`` (each a ``str`` or a ``float``)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        decoded = json.loads(raw)
    except (binascii.Error, ValueError):
        decoded = None
    if (
        isinstance(decoded, list)
        and len(decoded) == len(shape) + 1
        and decoded[0] == listing
        and all(_fits(value, kind) for value, kind in zip(decoded[1:], shape, strict=True))
    ):
        return tuple(float(v) if kind is float else str(v) for v, kind in zip(decoded[1:], shape, strict=True))
    raise Invalid(
        f"query parameter 'cursor': {cursor[:40]!r} is no cursor of this list of {listing}; pass the X-Next-Cursor "
        "header of the page before as it came, or leave cursor out to start from the first page"
    )


def _fits(value: object, kind: type) -> bool:
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, str)


def page_after(items: Sequence[T], key: Callable[[T], Key], after: Key | None, limit: int) -> tuple[list[T], bool]:
    """The first ``limit`` of ``items`` (sorted by ``key`` ascending) whose key is greater than ``after``, and
    whether more follow."""
    start = [i for i in items if after is None or key(i) > after]
    return start[:limit], len(start) > limit


def set_next_page(request: Request, response: Response, cursor: str | None) -> None:
    """Name the next page in the headers (nothing when this page is the last)."""
    if cursor is None:
        return
    response.headers[NEXT_CURSOR_HEADER] = cursor
    response.headers["Link"] = f'<{request.url.include_query_params(cursor=cursor)}>; rel="next"'
