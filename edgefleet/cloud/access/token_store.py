"""Where API tokens live: the ``api_token`` table, one row per token, keyed by its name.

Only the SHA-256 of a token is kept (``tokens.digest``); the secret itself is returned once by ``create`` and
never again. A revoked token keeps its row (its name stays taken, so the audit's actor names stay unambiguous).
Who calls: the API's ``require_access`` (``find``) and ``edgefleet tokens`` (``create``, ``list``, ``revoke``),
which reaches the controller's database directly so that an admin can make the first token.

While the database is away (``UnreachableError``, ``StoreError``), ``find`` answers from the records it last read
for each token it found: the API keeps serving its readers through a database outage (docs/reliability.md,
"A 30 s database outage"). That is as safe as the last read: revoking a token is itself a database write, so no
token can be revoked while the database refuses; expiry is judged at the caller's now as always. Unknown secrets
are never remembered, so guessing grows nothing; the memory is one record per real token.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any, Final

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from edgefleet.cloud.access import audit_log
from edgefleet.cloud.access.audit_log import Actor, AuditRecord, Json, Target, summary_of
from edgefleet.cloud.access.authorizing import ROLES, Principal, Role
from edgefleet.cloud.access.tokens import TokenError, TokenRecord, check_name, digest, mint
from edgefleet.cloud.store import Store, StoreError
from edgefleet.errors import UnreachableError
from edgefleet.ids import SiteId

log = logging.getLogger(__name__)


class ApiTokenRow(SQLModel, table=True):
    __tablename__ = "api_token"

    name: str = Field(primary_key=True, max_length=63)
    role: str = Field(max_length=32)
    # The sites a site-staff token is scoped to, as a JSON list; NULL for every site.
    sites: str | None = Field(default=None)
    digest: str = Field(max_length=64, unique=True)
    created_at: float
    expires_at: float | None = Field(default=None)
    revoked_at: float | None = Field(default=None)


_TOKENS: Final[sa.Table] = ApiTokenRow.__table__  # type: ignore[attr-defined]
TABLES: Final = [_TOKENS]


class TokenStore:
    """API tokens in the controller's database."""

    def __init__(self, store: Store) -> None:
        self.store = store
        # The last record read of each token found, by digest: the answer while the database is away.
        self._known: dict[str, TokenRecord] = {}
        self._known_lock = threading.Lock()
        self._away = False

    def create_schema(self) -> None:
        """For tests of this store alone; the controller migrates instead."""
        with self.store.transaction("create the api token table") as connection:
            SQLModel.metadata.create_all(connection, tables=[*TABLES, *audit_log.TABLES])

    def create(
        self,
        name: str,
        role: Role,
        sites: frozenset[SiteId] | None,
        *,
        now: float,
        expires_in_s: float | None,
        actor: Actor | None = None,
    ) -> tuple[str, TokenRecord]:
        """Mint a token; returns its secret (shown once) and its record. Refuses a name already taken. ``actor``:
        who the audit log names, in the same transaction (None: no entry, for tests of this store alone)."""
        check_name(name)
        Principal(name=name, role=role, sites=sites)  # refuses a role and scope that cannot go together
        secret = mint()
        record = TokenRecord(
            name=name,
            role=role,
            sites=sites,
            digest=digest(secret),
            created_at=now,
            expires_at=None if expires_in_s is None else now + expires_in_s,
            revoked_at=None,
        )
        with self.store.transaction("create an api token") as connection:
            taken = connection.execute(sa.select(_TOKENS.c.name).where(_TOKENS.c.name == name)).first()
            if taken is not None:
                raise TokenError(f"a token named {name!r} exists already; pick another name (names stay taken)")
            connection.execute(sa.insert(_TOKENS), [_row(record)])
            if actor is not None:
                audit_log.insert(
                    connection,
                    [AuditRecord(now, actor, "create-token", Target("token", name), f"create token {name} ({role})",
                                 after=_audited(record))],
                )  # fmt: skip
        return secret, record

    def find(self, secret: str) -> TokenRecord | None:
        """The record of the token ``secret``, whatever its state; None when no token has that secret."""
        key = digest(secret)
        try:
            with self.store.transaction("read an api token") as connection:
                row = connection.execute(sa.select(_TOKENS).where(_TOKENS.c.digest == key)).first()
        except (StoreError, UnreachableError) as exc:
            with self._known_lock:
                known = self._known.get(key)
                first = not self._away
                self._away = True
            if first:  # once per outage: every request of every caller would repeat it
                log.warning(
                    "Failed to read api tokens; admitting the tokens as last read until the database answers",
                    extra={"error": str(exc)[:500], "tokens_known": len(self._known)},
                )
            if known is None:
                raise
            return known
        record = None if row is None else _record(row)
        with self._known_lock:
            if self._away:
                log.info("Reading api tokens from the database again")
            self._away = False
            if record is None:
                self._known.pop(key, None)
            else:
                self._known[key] = record
        return record

    def tokens(self) -> list[TokenRecord]:
        with self.store.transaction("list the api tokens") as connection:
            rows = connection.execute(sa.select(_TOKENS).order_by(_TOKENS.c.name)).all()
        return [_record(r) for r in rows]

    def revoke(self, name: str, *, now: float, actor: Actor | None = None) -> TokenRecord:
        """Revoke the token ``name`` from ``now`` on; revoking a revoked token keeps its first time (and, having
        changed nothing, is not audited). ``actor``: who the audit log names, as for ``create``."""
        with self.store.transaction("revoke an api token") as connection:
            row = connection.execute(sa.select(_TOKENS).where(_TOKENS.c.name == name)).first()
            if row is None:
                raise TokenError(f"no token named {name!r}; 'edgefleet tokens list' shows them")
            before = _record(row)
            if row.revoked_at is None:
                connection.execute(sa.update(_TOKENS).where(_TOKENS.c.name == name).values(revoked_at=now))
            row = connection.execute(sa.select(_TOKENS).where(_TOKENS.c.name == name)).one()
            after = _record(row)
            if actor is not None and before.revoked_at is None:
                audit_log.insert(
                    connection,
                    [AuditRecord(now, actor, "revoke-token", Target("token", name), f"revoke token {name}",
                                 before=_audited(before), after=_audited(after))],
                )  # fmt: skip
        with self._known_lock:
            if after.digest in self._known:
                self._known[after.digest] = after
        return after


def _audited(record: TokenRecord) -> dict[str, Json]:
    """What the audit keeps of a token: never its digest."""
    return summary_of(
        {
            "role": record.role,
            "sites": None if record.sites is None else sorted(record.sites),
            "expires_at": record.expires_at,
            "revoked_at": record.revoked_at,
        }
    )


def _row(record: TokenRecord) -> dict[str, Any]:
    return {
        "name": record.name,
        "role": record.role,
        "sites": None if record.sites is None else json.dumps(sorted(record.sites)),
        "digest": record.digest,
        "created_at": record.created_at,
        "expires_at": record.expires_at,
        "revoked_at": record.revoked_at,
    }


def _record(row: Any) -> TokenRecord:
    role = next((r for r in ROLES if r == row.role), None)
    if role is None:
        raise TokenError(f"token {row.name!r} holds unknown role {row.role!r}; revoke it and create another")
    sites = None if row.sites is None else frozenset(SiteId(s) for s in json.loads(row.sites))
    return TokenRecord(
        name=row.name,
        role=role,
        sites=sites,
        digest=row.digest,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
    )
