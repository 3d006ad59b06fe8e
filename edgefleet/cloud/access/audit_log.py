"""The audit log: one append-only table, ``audit_log``, that every state-changing action writes, whoever takes it.

What writes it:
- the rollout store (``rollouts.store.RolloutStore``), in the same transaction as the change: starts, commands,
  blackout overrides, site holds and releases (through the API), and the reconciler's applies and reverts;
- the batch restarts (``restarts.Restarts``) and the exclusive windows' tainter (``tainting``), one entry a step,
  through ``RolloutStore.record``;
- the API's alert and silence routes and the inventory reload (``api.routes``), right after the change, through
  ``api.deps.record_change`` and ``AuditLog.record`` (the alert loop keeps its state in memory and saves it through
  its persister, so there is no transaction to share: ``record_change`` says why that is safe);
- ``edgefleet tokens create|revoke``, in the same transaction as the token's row.

What reads it: ``GET /api/v1/audit`` (``AuditLog.page``), and through it ``edgefleet audit``; the rollout store's
``audit()`` (one rollout's entries) for the tests and tools that follow a rollout.

Append-only: this module offers ``insert`` and ``record`` and reads, never an update or a delete, and no route
edits it (``tests/cloud/access/test_the_audit_is_read_by_scope_and_never_edited.py`` tries). An action refused (403, 404, 409, 422) changed
nothing and writes nothing. Entries are ordered by their id, the order they were written in.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy import BigInteger, Column, Index, Integer, Text
from sqlalchemy.engine import Connection
from sqlmodel import Field, SQLModel

from edgefleet.cloud.fleet import InventoryChange
from edgefleet.cloud.store import Store
from edgefleet.errors import EdgefleetError
from edgefleet.ids import SiteId

# A name or a token's subject, as the rollouts keep who did something.
MAX_PRINCIPAL_CHARS: Final = 128
# The request's client address and user agent; a user agent can be long, and is only a hint.
MAX_SOURCE_CHARS: Final = 512
# A page of the audit for the API and the CLI, newest first.
DEFAULT_LIMIT: Final = 100
# Summaries are small by design; a value longer than this is cut (and says so) rather than bloating the log.
MAX_VALUE_CHARS: Final = 4000
# Entries the database refused that wait in memory for it (``AuditLog.keep``): hours of people's actions; past
# this, the oldest are dropped and counted (a database away that long is an outage /healthz already names).
MAX_WAITING: Final = 10_000

log = logging.getLogger(__name__)

Json = str | int | float | bool | None | list[Any] | dict[str, Any]


class AuditLogRow(SQLModel, table=True):
    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_at", "at"),
        Index("ix_audit_log_site", "site"),
        Index("ix_audit_log_target", "target_kind", "target_id"),
    )

    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    )
    at: float
    principal: str = Field(max_length=MAX_PRINCIPAL_CHARS)
    # None: not an API caller with a role: the controller itself (reconciler, tainter) or a person at the database.
    role: str | None = Field(default=None, max_length=32)
    action: str = Field(max_length=64)
    target_kind: str | None = Field(default=None, max_length=32)
    target_id: str | None = Field(default=None, max_length=253)
    # The site the action touched: what scopes the entry to that site's staff. None: fleet-wide.
    site: str | None = Field(default=None, max_length=63)
    # The sentence a person reads ("pause rollout", "apply scan-upload-1.14.0 at sh-pudong").
    summary: str = Field(sa_type=Text)
    # JSON of the object's relevant state before and after; None where there was no object (a creation).
    before: str | None = Field(default=None, sa_type=Text)
    after: str | None = Field(default=None, sa_type=Text)
    source: str | None = Field(default=None, max_length=MAX_SOURCE_CHARS)


TABLE: Final[sa.Table] = AuditLogRow.__table__  # type: ignore[attr-defined]
TABLES: Final = [TABLE]


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: the principal's name, its role (None: the controller itself, or a person at the database), and
    where the request came from (the client address and user agent; None: not over the API)."""

    name: str
    role: str | None = None
    source: str | None = None


@dataclass(frozen=True, slots=True)
class Target:
    """What an action changed: a kind (rollout, site, alert, silence, inventory, cluster, token, node), its id, and
    the site it belongs to (None: fleet-wide)."""

    kind: str
    id: str
    site: SiteId | None = None


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One entry. ``before``/``after`` are small JSON values; ``id`` is None until written."""

    at: float
    actor: Actor
    action: str
    target: Target | None
    summary: str
    before: Json = None
    after: Json = None
    id: int | None = None


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Which entries to read: each filter given narrows; ``sites`` (a scoped reader's) keeps only entries of those
    sites, never fleet-wide ones."""

    since: float | None = None
    until: float | None = None
    principal: str | None = None
    action: str | None = None
    site: SiteId | None = None
    target_kind: str | None = None
    target_id: str | None = None
    sites: Collection[SiteId] | None = None


def _encode(value: Json) -> str | None:
    if value is None:
        return None
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    if len(text) > MAX_VALUE_CHARS:
        text = json.dumps({"truncated": text[:MAX_VALUE_CHARS]})
    return text


def _decode(text: str | None) -> Json:
    return None if text is None else json.loads(text)


def row_of(record: AuditRecord) -> dict[str, Any]:
    target = record.target
    return {
        "at": record.at,
        "principal": record.actor.name[:MAX_PRINCIPAL_CHARS],
        "role": record.actor.role,
        "action": record.action,
        "target_kind": None if target is None else target.kind,
        "target_id": None if target is None else target.id[:253],
        "site": None if target is None else target.site,
        "summary": record.summary,
        "before": _encode(record.before),
        "after": _encode(record.after),
        "source": None if record.actor.source is None else record.actor.source[:MAX_SOURCE_CHARS],
    }


def record_of(row: Any) -> AuditRecord:
    target = (
        None
        if row.target_kind is None
        else Target(row.target_kind, row.target_id or "", None if row.site is None else SiteId(row.site))
    )
    return AuditRecord(
        at=row.at,
        actor=Actor(row.principal, row.role, row.source),
        action=row.action,
        target=target,
        summary=row.summary,
        before=_decode(row.before),
        after=_decode(row.after),
        id=row.id,
    )


def insert(connection: Connection, records: Iterable[AuditRecord]) -> None:
    """Append ``records`` inside the caller's transaction (so an entry is kept exactly when its change is)."""
    rows = [row_of(r) for r in records]
    if rows:
        connection.execute(sa.insert(TABLE), rows)


def select(query: AuditQuery, *, before_id: int | None = None, limit: int | None = None) -> sa.Select[Any]:
    """The entries ``query`` asks for, newest first (by id: the order of writing)."""
    statement = sa.select(TABLE).order_by(TABLE.c.id.desc())
    conditions = []
    if query.since is not None:
        conditions.append(TABLE.c.at >= query.since)
    if query.until is not None:
        conditions.append(TABLE.c.at < query.until)
    if query.principal is not None:
        conditions.append(TABLE.c.principal == query.principal)
    if query.action is not None:
        conditions.append(TABLE.c.action == query.action)
    if query.site is not None:
        conditions.append(TABLE.c.site == query.site)
    if query.target_kind is not None:
        conditions.append(TABLE.c.target_kind == query.target_kind)
    if query.target_id is not None:
        conditions.append(TABLE.c.target_id == query.target_id)
    if query.sites is not None:
        conditions.append(TABLE.c.site.in_(sorted(query.sites)))
    if before_id is not None:
        conditions.append(TABLE.c.id < before_id)
    if conditions:
        statement = statement.where(*conditions)
    return statement if limit is None else statement.limit(limit)


class AuditLog:
    """The audit log in ``store``'s database: append and read, nothing else. Thread-safe: every call is one
    transaction of its own; database errors are the Store's (``UnreachableError``, ``StoreError``)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        # Entries the database refused (``keep``), written first by the next write that succeeds.
        self._waiting: deque[AuditRecord] = deque()
        self._dropped = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"AuditLog({self.store.url_shown!r})"

    def create_schema(self) -> None:
        """For tests of this log alone; the controller migrates instead (``edgefleet.cloud.migrating``)."""
        with self.store.transaction("create the audit log table") as connection:
            SQLModel.metadata.create_all(connection, tables=TABLES)

    def record(self, *records: AuditRecord) -> None:
        """Append entries in a transaction of their own (for changes that have no transaction to share), after
        any that wait (``keep``), so that the log keeps the order of the actions. Raises the Store's errors."""
        with self._lock:
            with self.store.transaction("record an audit entry", fenced=True) as connection:
                insert(connection, [*self._waiting, *records])
            if self._waiting:
                log.info("Wrote the audit entries that waited for the database", extra={"entries": len(self._waiting)})
                self._waiting.clear()

    def keep(self, *records: AuditRecord) -> bool:
        """Append entries as ``record`` does; when the database refuses them (down, its disk full), keep them in
        memory, in order, for the next write that succeeds, and answer False. For changes already made in memory
        that the controller keeps serving while the database is away (an acknowledgement, a silence)."""
        try:
            self.record(*records)
        except EdgefleetError as exc:
            with self._lock:
                for record in records:
                    if len(self._waiting) >= MAX_WAITING:
                        self._waiting.popleft()
                        self._dropped += 1
                    self._waiting.append(record)
            log.error(
                "Could not write audit entries; they wait in memory for the database",
                extra={"actions": [r.action for r in records], "waiting": len(self._waiting),
                       "dropped": self._dropped, "error": str(exc)},
            )  # fmt: skip
            return False
        return True

    @property
    def waiting(self) -> int:
        """How many entries wait in memory for the database."""
        with self._lock:
            return len(self._waiting)

    def page(
        self, query: AuditQuery = AuditQuery(), *, before_id: int | None = None, limit: int = DEFAULT_LIMIT
    ) -> list[AuditRecord]:
        """Up to ``limit`` entries newest first; ``before_id``: the page after the one whose last entry had it."""
        with self.store.transaction("read the audit log") as connection:
            rows = connection.execute(select(query, before_id=before_id, limit=limit)).all()
        return [record_of(r) for r in rows]

    def last_inventory_version(self) -> str | None:
        """The inventory version the newest reload entry put in force (None: no reload recorded): what standbys
        follow (``edgefleet.cloud.following``). Found through the target index (kind "inventory")."""
        query = (
            sa.select(TABLE.c.target_id)
            .where(TABLE.c.target_kind == INVENTORY_TARGET, TABLE.c.action == RELOAD_INVENTORY)
            .order_by(TABLE.c.id.desc())
            .limit(1)
        )
        with self.store.transaction("read the last inventory reload") as connection:
            version = connection.execute(query).scalar_one_or_none()
        return None if version is None else str(version)


# The inventory reload's entry: its action, and its target's kind (the target's id is the version put in force).
RELOAD_INVENTORY: Final = "reload-inventory"
INVENTORY_TARGET: Final = "inventory"


def inventory_reloaded(at: float, actor: Actor, change: InventoryChange, *, sites: int, boxes: int) -> AuditRecord:
    """The entry of a reload of the inventory (through the API or on SIGHUP): the version before, and after it the
    version, the counts and what changed (a reload that changed nothing is audited too: someone asked for it)."""
    changed: dict[str, Json] = {
        "sites_added": list(change.sites_added),
        "sites_removed": list(change.sites_removed),
        "boxes_added": list(change.boxes_added),
        "boxes_removed": list(change.boxes_removed),
        "boxes_moved": list(change.boxes_moved),
        "adopted": list(change.adopted),
    }
    return AuditRecord(
        at,
        actor,
        RELOAD_INVENTORY,
        Target(INVENTORY_TARGET, change.version),
        f"reload the inventory: {change.previous_version} -> {change.version}",
        before={"version": change.previous_version},
        after={"version": change.version, "sites": sites, "boxes": boxes} | {k: v for k, v in changed.items() if v},
    )


def summary_of(values: Mapping[str, Json]) -> dict[str, Json]:
    """``values`` without the Nones: a small summary says what is there."""
    return {k: v for k, v in values.items() if v is not None}
