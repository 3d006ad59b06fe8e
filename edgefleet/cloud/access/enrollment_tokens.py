"""Enrollment tokens: short-lived, single-use secrets that let a new box of one site get its broker login.

A token is minted like an API token (``tokens.mint``: 256 random bits) and only its SHA-256 is kept, in the
``enrollment_token`` table, with its site and expiry. ``redeeming`` spends a token inside one transaction: the
row is marked used by a single ``UPDATE ... WHERE used_at IS NULL AND expires_at > now``, so of two boxes that
present the same token at once exactly one gets the row (PostgreSQL makes the second wait on the row lock and
then finds it used; SQLite writes one transaction at a time). The transaction commits only when the caller's
block succeeds, so a broker that fails half-way leaves the token usable for the next try.

Who calls: ``edgefleet enrollment create`` (straight to the database, as ``edgefleet tokens``), the API's
enrollment routes, and ``edgefleet.cloud.enrolling`` (``redeeming``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from edgefleet.cloud.access.tokens import digest, mint
from edgefleet.cloud.store import Store
from edgefleet.ids import SiteId, id_problem

# An hour is enough to install one box; a token left in a ticket or a photo stops working soon after.
DEFAULT_EXPIRY_S: Final = 3600.0
# A week at most: a token meant for a box not yet shipped is better minted when it ships.
MAX_EXPIRY_S: Final = 7 * 86400.0


class EnrollmentTokenError(ValueError):
    """A token request that cannot be served (a bad site, an expiry out of range); the message says how to fix it."""


class EnrollmentTokenRow(SQLModel, table=True):
    __tablename__ = "enrollment_token"

    # The first 12 hex digits of the digest: a name to list it by that says nothing of the secret.
    id: str = Field(primary_key=True, max_length=12)
    digest: str = Field(max_length=64, unique=True)
    site: str = Field(max_length=63)
    created_by: str = Field(max_length=63)
    created_at: float
    expires_at: float
    used_at: float | None = Field(default=None)
    used_by: str | None = Field(default=None, max_length=63)


_TABLE: Final[sa.Table] = EnrollmentTokenRow.__table__  # type: ignore[attr-defined]
TABLES: Final = [_TABLE]


@dataclass(frozen=True, slots=True)
class EnrollmentToken:
    """What the store holds of one token (never its secret). Times are Unix seconds."""

    id: str
    site: SiteId
    created_by: str
    created_at: float
    expires_at: float
    used_at: float | None
    used_by: str | None

    def state(self, now: float) -> str:
        """``usable``, ``used`` or ``expired``."""
        if self.used_at is not None:
            return "used"
        if self.expires_at <= now:
            return "expired"
        return "usable"


class EnrollmentTokens:
    """Enrollment tokens in the controller's database."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def create_schema(self) -> None:
        """For tests of this store alone; the controller migrates instead."""
        with self.store.transaction("create the enrollment token table") as connection:
            SQLModel.metadata.create_all(connection, tables=TABLES)

    def create(
        self, site: str, *, created_by: str, now: float, expires_in_s: float = DEFAULT_EXPIRY_S
    ) -> tuple[str, EnrollmentToken]:
        """Mint a token for ``site``; returns its secret (shown once) and its record."""
        problem = id_problem(site)
        if problem:
            raise EnrollmentTokenError(f"site: {problem}")
        if not 0 < expires_in_s <= MAX_EXPIRY_S:
            raise EnrollmentTokenError(
                f"an enrollment token lasts at most {MAX_EXPIRY_S / 86400:g} days (asked: {expires_in_s:g} s); "
                "mint it when the box is about to be installed"
            )
        secret = mint()
        hashed = digest(secret)
        record = EnrollmentToken(hashed[:12], SiteId(site), created_by, now, now + expires_in_s, None, None)
        with self.store.transaction("create an enrollment token") as connection:
            connection.execute(sa.insert(_TABLE), [{**_row(record), "digest": hashed}])
        return secret, record

    def tokens(self) -> list[EnrollmentToken]:
        with self.store.transaction("list the enrollment tokens") as connection:
            rows = connection.execute(sa.select(_TABLE).order_by(_TABLE.c.created_at, _TABLE.c.id)).all()
        return [_record(r) for r in rows]

    def enrolled_sites(self, boxes: list[str]) -> dict[str, SiteId]:
        """The site each of ``boxes`` was last enrolled for (boxes never enrolled are absent)."""
        if not boxes:
            return {}
        with self.store.transaction("read which sites boxes enrolled for") as connection:
            rows = connection.execute(
                sa.select(_TABLE.c.used_by, _TABLE.c.site).where(_TABLE.c.used_by.in_(boxes)).order_by(_TABLE.c.used_at)
            ).all()
        # Oldest first, so the latest enrollment of a box is the one kept.
        return {row.used_by: SiteId(row.site) for row in rows}

    def usable(self, secret: str, *, now: float) -> bool:
        """Whether ``secret`` is a token that ``redeeming`` would spend at ``now`` (a read: nothing is spent). A
        standby asks it before forwarding an enrollment to the leader, to count guesses on the box's own address."""
        with self.store.transaction("check an enrollment token") as connection:
            found = connection.execute(
                sa.select(_TABLE.c.id).where(
                    _TABLE.c.digest == digest(secret), _TABLE.c.used_at.is_(None), _TABLE.c.expires_at > now
                )
            ).first()
        return found is not None

    @contextmanager
    def redeeming(self, secret: str, *, box: str, now: float) -> Iterator[SiteId | None]:
        """Spend the token ``secret`` for ``box``: yields its site, or None when it is unknown, used or expired
        (one answer for all three, so that a guess learns nothing). The token stays spent only when the block
        ends without an exception."""
        with self.store.transaction("redeem an enrollment token") as connection:
            spent = connection.execute(
                sa.update(_TABLE)
                .where(_TABLE.c.digest == digest(secret), _TABLE.c.used_at.is_(None), _TABLE.c.expires_at > now)
                .values(used_at=now, used_by=box)
                .returning(_TABLE.c.site)
            ).first()
            yield None if spent is None else SiteId(spent.site)


def _row(record: EnrollmentToken) -> dict[str, Any]:
    return {
        "id": record.id,
        "site": record.site,
        "created_by": record.created_by,
        "created_at": record.created_at,
        "expires_at": record.expires_at,
        "used_at": record.used_at,
        "used_by": record.used_by,
    }


def _record(row: Any) -> EnrollmentToken:
    return EnrollmentToken(
        id=row.id,
        site=SiteId(row.site),
        created_by=row.created_by,
        created_at=row.created_at,
        expires_at=row.expires_at,
        used_at=row.used_at,
        used_by=row.used_by,
    )
