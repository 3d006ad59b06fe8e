"""Local users: for a small install without a company provider, and for break-glass when the provider is down.

One row of ``local_user`` per person: a name, a role (and sites for site staff) and an argon2id hash of the
password (argon2-cffi's defaults, RFC 9106's second recommended setting); the password itself is never stored
or logged. ``check`` answers the same None for an unknown name and a wrong password, and spends the same hashing
work on both, so that neither the answer nor its time tells which names exist. Removing a user or changing their
password ends their console sessions at once.

Who calls: ``POST /auth/local`` (``check``; the route rate-limits failures per source) and ``edgefleet users``
(``add``, ``users``, ``remove``, ``passwd``), which reaches the database directly as ``edgefleet tokens`` does.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlmodel import Field, SQLModel

from edgefleet.cloud.access.authorizing import ROLES, Principal, Role
from edgefleet.cloud.access.sessions import end_sessions_of
from edgefleet.cloud.access.tokens import NAME_PATTERN
from edgefleet.cloud.store import Store
from edgefleet.ids import SiteId

# Hashes checked at once: each takes 64 MiB (argon2-cffi's default memory cost), so a flood of sign-ins from many
# sources queues here instead of taking the controller's memory.
CONCURRENT_CHECKS: Final = 4
# Long enough that the rate limit makes guessing hopeless even for a password made of words.
MIN_PASSWORD_CHARS: Final = 12
MAX_PASSWORD_CHARS: Final = 1024


class LocalUserError(ValueError):
    """A request about local users that cannot be served; the message says how to fix it."""


class LocalUserRow(SQLModel, table=True):
    __tablename__ = "local_user"

    name: str = Field(primary_key=True, max_length=63)
    role: str = Field(max_length=32)
    sites: str | None = Field(default=None)
    password_hash: str = Field(max_length=255)
    created_at: float
    changed_at: float


USERS: Final[sa.Table] = LocalUserRow.__table__  # type: ignore[attr-defined]
TABLES: Final = [USERS]


@dataclass(frozen=True, slots=True)
class LocalUser:
    name: str
    role: Role
    sites: frozenset[SiteId] | None
    created_at: float
    changed_at: float

    def principal(self) -> Principal:
        return Principal(name=self.name, role=self.role, sites=self.sites)


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise LocalUserError(
            f"the password has {len(password)} characters; use {MIN_PASSWORD_CHARS} at least (a few words do)"
        )
    if len(password) > MAX_PASSWORD_CHARS:
        raise LocalUserError(f"the password is over {MAX_PASSWORD_CHARS} characters; use a shorter one")
    return password


def check_user_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise LocalUserError(
            f"user name {name!r} is not valid; use 1-63 lowercase letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit"
        )
    return name


class LocalUsers:
    """Local users in the controller's database."""

    def __init__(self, store: Store, hasher: PasswordHasher | None = None) -> None:
        self.store = store
        self.hasher = hasher or PasswordHasher()
        # Verified against when the name is unknown, so that an unknown name costs the same time as a known one.
        self._decoy = self.hasher.hash("edgefleet decoy password, never a user's")
        self._checking = threading.BoundedSemaphore(CONCURRENT_CHECKS)

    def create_schema(self) -> None:
        """For tests of this store alone; the controller migrates instead."""
        with self.store.transaction("create the local user table") as connection:
            SQLModel.metadata.create_all(connection, tables=TABLES)

    def add(self, name: str, role: Role, sites: frozenset[SiteId] | None, password: str, *, now: float) -> LocalUser:
        check_user_name(name)
        Principal(name=name, role=role, sites=sites)  # refuses a role and scope that cannot go together
        hashed = self.hasher.hash(check_password(password))
        with self.store.transaction("add a local user") as connection:
            taken = connection.execute(sa.select(USERS.c.name).where(USERS.c.name == name)).first()
            if taken is not None:
                raise LocalUserError(
                    f"a local user named {name!r} exists already; 'edgefleet users passwd' changes a password"
                )
            row = {
                "name": name,
                "role": role,
                "sites": None if sites is None else json.dumps(sorted(sites)),
                "password_hash": hashed,
                "created_at": now,
                "changed_at": now,
            }
            connection.execute(sa.insert(USERS), [row])
        return LocalUser(name=name, role=role, sites=sites, created_at=now, changed_at=now)

    def users(self) -> list[LocalUser]:
        with self.store.transaction("list the local users") as connection:
            rows = connection.execute(sa.select(USERS).order_by(USERS.c.name)).all()
        return [_user(r) for r in rows]

    def remove(self, name: str, *, now: float) -> None:
        with self.store.transaction("remove a local user") as connection:
            gone = connection.execute(sa.delete(USERS).where(USERS.c.name == name)).rowcount
            if not gone:
                raise LocalUserError(f"no local user named {name!r}; 'edgefleet users list' shows them")
            end_sessions_of(connection, name, "local", now=now)

    def passwd(self, name: str, password: str, *, now: float) -> None:
        """Set a new password; the user's console sessions end (whoever knew the old one is signed out)."""
        hashed = self.hasher.hash(check_password(password))
        with self.store.transaction("change a local user's password") as connection:
            changed = connection.execute(
                sa.update(USERS).where(USERS.c.name == name).values(password_hash=hashed, changed_at=now)
            ).rowcount
            if not changed:
                raise LocalUserError(f"no local user named {name!r}; 'edgefleet users list' shows them")
            end_sessions_of(connection, name, "local", now=now)

    def check(self, name: str, password: str) -> Principal | None:
        """The principal of ``name`` when ``password`` is theirs; None otherwise (unknown name or wrong
        password alike)."""
        with self.store.transaction("read a local user") as connection:
            row = connection.execute(sa.select(USERS).where(USERS.c.name == name)).first()
        hashed = self._decoy if row is None else row.password_hash
        try:
            with self._checking:
                self.hasher.verify(hashed, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if row is None:
            return None
        if self.hasher.check_needs_rehash(hashed):
            # The hash's cost is below today's settings: take the password we just saw to strengthen it.
            with self.store.transaction("rehash a local user's password") as connection:
                connection.execute(
                    sa.update(USERS).where(USERS.c.name == name).values(password_hash=self.hasher.hash(password))
                )
        return _user(row).principal()


def _user(row: Any) -> LocalUser:
    role = next((r for r in ROLES if r == row.role), None)
    if role is None:
        raise LocalUserError(f"local user {row.name!r} holds unknown role {row.role!r}; remove and add them again")
    sites = None if row.sites is None else frozenset(SiteId(s) for s in json.loads(row.sites))
    return LocalUser(name=row.name, role=role, sites=sites, created_at=row.created_at, changed_at=row.changed_at)
