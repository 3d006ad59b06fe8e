"""API tokens: minted once, shown once, kept only as a hash, with an expiry.

A token is ``ef_`` followed by 32 random bytes (urlsafe base64): guessing one is hopeless, so a plain SHA-256
of it is what the store keeps (a slow password hash such as argon2 buys nothing against a 256-bit secret and
would cost every API call). ``admit`` turns a stored record into the principal it stands for, or None when it
is unknown, expired or revoked; it reads no clock (``now`` is passed in).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Final

from edgefleet.cloud.access.authorizing import Principal, Role
from edgefleet.ids import SiteId

PREFIX: Final = "ef_"
# 32 bytes: 256 bits of entropy, beyond guessing even at the rate limit's ceiling for centuries.
TOKEN_BYTES: Final = 32
# A token's name is its actor in the audit: short, readable, and safe in a log line.
NAME_PATTERN: Final = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,62}$")
_EXPIRY = re.compile(r"^(\d+)([smhdw])$")
_UNIT_S: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class TokenError(ValueError):
    """A token request that cannot be served (a bad name, a bad expiry); the message says how to fix it."""


def mint() -> str:
    """A new token secret; shown to its holder once and never stored as is."""
    return PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def digest(secret: str) -> str:
    """What the store keeps of a token: its SHA-256, hex."""
    return hashlib.sha256(secret.encode()).hexdigest()


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise TokenError(
            f"token name {name!r} is not valid; use 1-63 lowercase letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit"
        )
    return name


def parse_expiry(text: str) -> float:
    """``30d``, ``12h``, ``90m``, ``2w`` (or seconds: ``45s``) as seconds."""
    found = _EXPIRY.match(text.strip())
    if found is None or int(found.group(1)) == 0:
        raise TokenError(f"expiry {text!r} is not valid; write a positive number and a unit: 30d, 12h, 90m, 2w")
    return float(int(found.group(1)) * _UNIT_S[found.group(2)])


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """What the store holds of one token. Times are Unix seconds; ``expires_at`` None: never expires."""

    name: str
    role: Role
    sites: frozenset[SiteId] | None
    digest: str
    created_at: float
    expires_at: float | None
    revoked_at: float | None

    def principal(self) -> Principal:
        return Principal(name=self.name, role=self.role, sites=self.sites)

    def state(self, now: float) -> str:
        """``active``, ``expired`` or ``revoked``, for ``tokens list``."""
        if self.revoked_at is not None and self.revoked_at <= now:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


def admit(record: TokenRecord | None, *, now: float) -> Principal | None:
    """The principal a presented token stands for, or None (unknown, expired or revoked: the caller gets the
    same 401 for each, so that a guess learns nothing)."""
    if record is None or record.state(now) != "active":
        return None
    return record.principal()
