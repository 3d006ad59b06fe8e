"""Identifiers of sites, boxes and the Kubernetes clusters that hold them.

Ids are DNS-1123 labels (lower-case letters, digits, '-', at most 63 characters) so that they can stand as an
MQTT topic segment, a Kubernetes object name and a broker login without escaping.
"""

from __future__ import annotations

import re
from typing import NewType

SiteId = NewType("SiteId", str)
BoxId = NewType("BoxId", str)
ClusterId = NewType("ClusterId", str)

ID_PATTERN = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
_ID_RE = re.compile(ID_PATTERN)


def is_valid_id(value: str) -> bool:
    """True when ``value`` can be a site or box id."""
    return bool(_ID_RE.match(value))


def id_problem(value: object) -> str | None:
    """Why ``value`` is no valid id, or None when it is."""
    if not isinstance(value, str):
        return f"expected a string, got {type(value).__name__}"
    if not value:
        return "must not be empty"
    if len(value) > 63:
        return f"{value!r} is {len(value)} characters long; at most 63 are allowed"
    if not _ID_RE.match(value):
        return (
            f"{value!r} is not a valid id: use lower-case letters, digits and '-', starting and ending with a "
            "letter or digit"
        )
    return None
