"""The rollouts' database: every rollout (its release as submitted, its spec with the release manager's commands,
its status), each site's previous release, site holds; and an entry per action in the one audit log
(``access.audit_log``) (SQLite or PostgreSQL, on the
engine of ``edgefleet.cloud.store.Store``).

Written by the reconciler (``reconciling.Reconciler``: status, gates, previous releases, the audit of what it
applied) and by the rollout service (``service.RolloutService``: new rollouts, commands, holds); read by both and,
through the service, by the API. Tables never leave this module: callers pass and get the pure modules'
``RolloutSpec`` / ``RolloutStatus`` (serialised with msgspec as JSON columns, so they follow the dataclasses without
migrations) and this module's frozen records. Every call is one transaction; database errors are the Store's
(``UnreachableError``, ``StoreError``).

Invariants the tables keep, whatever the callers do:
- one active rollout per app: a partial unique index on ``app`` where ``active``;
- one rollout per idempotency key: a unique index;
- a site's previous release is recorded once per rollout (insert-if-absent, before the first apply), so a tick that
  re-applies after a crash never takes the rollout's own release for the previous one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, replace
from typing import Any, Final

import msgspec
import sqlalchemy as sa
from sqlalchemy import Index, Text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, SQLModel

from edgefleet.cloud.access import audit_log
from edgefleet.cloud.access.audit_log import Actor, AuditRecord, Target
from edgefleet.cloud.rollouts.deciding import Commands, RolloutSpec, RolloutStatus
from edgefleet.cloud.rollouts.gates import SiteGates
from edgefleet.cloud.store import Store, StoreError
from edgefleet.errors import EdgefleetError
from edgefleet.ids import SiteId

# A page of rollouts for the API and the CLI, newest first.
DEFAULT_LIST_LIMIT: Final = 100
# Who did something: a name or a token's subject, as the silences keep it.
MAX_WHO_CHARS: Final = 128

# --- tables -----------------------------------------------------------------------------------------------


class RolloutRow(SQLModel, table=True):
    __tablename__ = "rollout"
    __table_args__ = (
        Index(
            "ux_rollout_active_app",
            "app",
            unique=True,
            sqlite_where=sa.text("active"),
            postgresql_where=sa.text("active"),
        ),
        Index("ux_rollout_idempotency_key", "idempotency_key", unique=True),
        Index("ix_rollout_created_at", "created_at"),
    )

    id: str = Field(primary_key=True, max_length=63)
    app: str = Field(max_length=63)
    release_name: str = Field(max_length=253)
    # The release manifest exactly as submitted: a restarted controller loads it again against its inventory.
    release_yaml: str = Field(sa_type=Text)
    # msgspec JSON of deciding.RolloutSpec (commands included), RolloutStatus and the last gates per site.
    spec: str = Field(sa_type=Text)
    status: str = Field(sa_type=Text)
    gates: str = Field(sa_type=Text)
    state: str = Field(max_length=32)
    active: bool
    created_at: float
    created_by: str = Field(max_length=MAX_WHO_CHARS)
    updated_at: float
    idempotency_key: str | None = Field(default=None, max_length=255)


class RolloutSiteRow(SQLModel, table=True):
    """What a site ran before the rollout first applied there: what a revert goes back to."""

    __tablename__ = "rollout_site"

    rollout_id: str = Field(primary_key=True, max_length=63)
    site: str = Field(primary_key=True, max_length=63)
    # None: the app was not there (a revert deletes the rollout's workloads of the site).
    previous_release: str | None = Field(default=None, max_length=253)
    # The previous release's manifest, when the controller has it (it ran through an earlier rollout).
    previous_yaml: str | None = Field(default=None, sa_type=Text)
    # The site's own health figures on the previous version when it was recorded (JSON name -> value): the health
    # gate's baseline. None: no box reported figures then.
    baseline: str | None = Field(default=None, sa_type=Text)
    recorded_at: float


class SiteHoldRow(SQLModel, table=True):
    __tablename__ = "site_hold"

    site: str = Field(primary_key=True, max_length=63)
    reason: str = Field(sa_type=Text)
    held_by: str = Field(max_length=MAX_WHO_CHARS)
    since: float


_ROLLOUT: Final[sa.Table] = RolloutRow.__table__  # type: ignore[attr-defined]
_SITE: Final[sa.Table] = RolloutSiteRow.__table__  # type: ignore[attr-defined]
_HOLD: Final[sa.Table] = SiteHoldRow.__table__  # type: ignore[attr-defined]
# The audit is the one audit log of every action (``access.audit_log``); this store writes its rollouts' and holds'
# entries there in the same transaction as the change.
TABLES: Final = [_ROLLOUT, _SITE, _HOLD]

# States after which a rollout is no longer ticked (a rollback of a done rollout makes it active again).
ENDED_STATES: Final = frozenset({"aborted", "rolled-back", "done"})


# --- records ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredRollout:
    id: str
    app: str
    release_name: str
    release_yaml: str
    spec: RolloutSpec
    status: RolloutStatus
    gates: Mapping[SiteId, SiteGates]
    active: bool
    created_at: float
    created_by: str
    updated_at: float
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class PreviousRelease:
    """What a site ran before a rollout first applied there; ``release`` None: the app was not there."""

    site: SiteId
    release: str | None
    yaml: str | None
    # The site's health figures on that release when it was recorded: the health gate's baseline.
    baseline: Mapping[str, float] | None = None


@dataclass(frozen=True, slots=True)
class Hold:
    site: SiteId
    reason: str
    by: str
    since: float


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """An entry of the audit log as the rollouts write it: who (``who``, ``role``, ``source``), when, what (a
    sentence; ``action``, the short name ``edgefleet audit --action`` filters on), and the state before and after.
    The target is the rollout ``rollout_id``, else ``target_kind``/``target_id``, else the site ``site``."""

    at: float
    who: str
    what: str
    before: str | None = None
    after: str | None = None
    rollout_id: str | None = None
    _: KW_ONLY
    # None: the first word of ``what`` (apply, revert), as the entries written before the audit log are filed.
    action: str | None = None
    role: str | None = None
    source: str | None = None
    site: SiteId | None = None
    target_kind: str | None = None
    target_id: str | None = None


class ActiveRolloutExists(EdgefleetError):
    """Another rollout of the app is active; ``active`` names it."""

    def __init__(self, active: StoredRollout) -> None:
        self.active = active
        super().__init__(
            f"rollout {active.id} of {active.release_name} is active for {active.app} "
            f"({active.status.state}); wait for it to end, or abort it first"
        )


class RolloutNotFound(EdgefleetError):
    pass


# --- serialising --------------------------------------------------------------------------------------------

_encoder: Final = msgspec.json.Encoder()
_SPEC: Final = msgspec.json.Decoder(RolloutSpec)
_STATUS: Final = msgspec.json.Decoder(RolloutStatus)
_GATES: Final = msgspec.json.Decoder(dict[SiteId, SiteGates])


def encode(value: Any) -> str:
    return _encoder.encode(value).decode()


def _stored(row: Any) -> StoredRollout:
    return StoredRollout(
        id=row.id,
        app=row.app,
        release_name=row.release_name,
        release_yaml=row.release_yaml,
        spec=_SPEC.decode(row.spec),
        status=_STATUS.decode(row.status),
        gates=_GATES.decode(row.gates),
        active=bool(row.active),
        created_at=row.created_at,
        created_by=row.created_by,
        updated_at=row.updated_at,
        idempotency_key=row.idempotency_key,
    )


def _audit_record(entry: AuditEntry) -> AuditRecord:
    target: Target | None = None
    if entry.target_kind is not None:
        target = Target(entry.target_kind, entry.target_id or "", entry.site)
    elif entry.rollout_id is not None:
        target = Target("rollout", entry.rollout_id, entry.site)
    elif entry.site is not None:
        target = Target("site", entry.site, entry.site)
    return AuditRecord(
        at=entry.at,
        actor=Actor(entry.who[:MAX_WHO_CHARS], entry.role, entry.source),
        action=entry.action or action_of(entry.what),
        target=target,
        summary=entry.what,
        before=entry.before,
        after=entry.after,
    )


def action_of(what: str) -> str:
    """The action an entry written without one is filed under: the first word of its sentence."""
    return what.split(" ", 1)[0].lower() or "unknown"


def _audit_entry(record: AuditRecord) -> AuditEntry:
    target = record.target
    return AuditEntry(
        record.at,
        record.actor.name,
        record.summary,
        None if record.before is None else str(record.before),
        None if record.after is None else str(record.after),
        target.id if target is not None and target.kind == "rollout" else None,
        action=record.action,
        role=record.actor.role,
        source=record.actor.source,
        site=None if target is None else target.site,
        target_kind=None if target is None else target.kind,
        target_id=None if target is None else target.id,
    )


# --- the store ----------------------------------------------------------------------------------------------


class RolloutStore:
    """Rollouts, previous releases, holds and the audit in ``store``'s database. Thread-safe: every call is one
    transaction of its own."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def __repr__(self) -> str:
        return f"RolloutStore({self.store.url_shown!r})"

    def create_schema(self) -> None:
        """Create the rollout tables when they are missing (existing ones are left as they are):
        for tests of this store alone. The controller migrates instead (``edgefleet.cloud.migrating``)."""
        with self.store.transaction("create the rollout tables") as connection:
            SQLModel.metadata.create_all(connection, tables=[*TABLES, *audit_log.TABLES])

    def _insert(self, table: sa.Table) -> Any:
        return sqlite.insert(table) if self.store.dialect == "sqlite" else postgresql.insert(table)

    # --- rollouts ---------------------------------------------------------------------------------------------

    def create(self, rollout: StoredRollout, audit: AuditEntry) -> tuple[StoredRollout, bool]:
        """Insert ``rollout``; (the rollout, True) when it was created. A rollout with the same idempotency key
        answers (that rollout, False); another active rollout of the app raises ``ActiveRolloutExists``."""
        if rollout.idempotency_key is not None:
            earlier = self.by_idempotency_key(rollout.idempotency_key)
            if earlier is not None:
                return earlier, False
        row = {
            "id": rollout.id,
            "app": rollout.app,
            "release_name": rollout.release_name,
            "release_yaml": rollout.release_yaml,
            "spec": encode(rollout.spec),
            "status": encode(rollout.status),
            "gates": encode(dict(rollout.gates)),
            "state": rollout.status.state,
            "active": rollout.active,
            "created_at": rollout.created_at,
            "created_by": rollout.created_by[:MAX_WHO_CHARS],
            "updated_at": rollout.updated_at,
            "idempotency_key": rollout.idempotency_key,
        }
        try:
            with self.store.transaction("start a rollout", fenced=True) as connection:
                connection.execute(sa.insert(_ROLLOUT), [row])
                audit_log.insert(connection, [_audit_record(audit)])
        except StoreError as exc:
            if not isinstance(exc.__cause__, IntegrityError):
                raise
            # A request with the same key, or another rollout of the app, got in first.
            if rollout.idempotency_key is not None:
                earlier = self.by_idempotency_key(rollout.idempotency_key)
                if earlier is not None:
                    return earlier, False
            active = self.active_for(rollout.app)
            if active is not None:
                raise ActiveRolloutExists(active) from exc
            raise
        return rollout, True

    def by_idempotency_key(self, key: str) -> StoredRollout | None:
        query = sa.select(_ROLLOUT).where(_ROLLOUT.c.idempotency_key == key)
        with self.store.transaction("read a rollout by its idempotency key") as connection:
            row = connection.execute(query).first()
        return None if row is None else _stored(row)

    def active_for(self, app: str) -> StoredRollout | None:
        query = sa.select(_ROLLOUT).where(_ROLLOUT.c.app == app, _ROLLOUT.c.active.is_(True))
        with self.store.transaction("read the active rollout of an app") as connection:
            row = connection.execute(query).first()
        return None if row is None else _stored(row)

    def get(self, rollout_id: str) -> StoredRollout:
        query = sa.select(_ROLLOUT).where(_ROLLOUT.c.id == rollout_id)
        with self.store.transaction("read a rollout") as connection:
            row = connection.execute(query).first()
        if row is None:
            raise RolloutNotFound(f"no rollout {rollout_id!r}; 'edgefleet rollout status' lists them")
        return _stored(row)

    def active(self) -> list[StoredRollout]:
        """Every rollout the reconciler ticks, oldest first."""
        query = sa.select(_ROLLOUT).where(_ROLLOUT.c.active.is_(True)).order_by(_ROLLOUT.c.created_at)
        with self.store.transaction("read the active rollouts") as connection:
            rows = connection.execute(query).all()
        return [_stored(row) for row in rows]

    def page(self, *, after: tuple[float, str] | None = None, limit: int = DEFAULT_LIST_LIMIT) -> list[StoredRollout]:
        """Rollouts newest first (by start, then id); ``after``: the page after the one with that (created_at, id)."""
        query = sa.select(_ROLLOUT).order_by(_ROLLOUT.c.created_at.desc(), _ROLLOUT.c.id.desc()).limit(limit)
        if after is not None:
            at, rollout_id = after
            query = query.where(
                sa.or_(
                    _ROLLOUT.c.created_at < at,
                    sa.and_(_ROLLOUT.c.created_at == at, _ROLLOUT.c.id < rollout_id),
                )
            )
        with self.store.transaction("list the rollouts") as connection:
            rows = connection.execute(query).all()
        return [_stored(row) for row in rows]

    def save_status(
        self,
        rollout_id: str,
        status: RolloutStatus,
        gates: Mapping[SiteId, SiteGates],
        *,
        now: float,
        audit: Sequence[AuditEntry] = (),
    ) -> None:
        """The rollout's new status and gates and the audit of the actions that led there, in one transaction.
        An ended rollout stops being active (a second rollout of the app may start)."""
        values = {
            "status": encode(status),
            "gates": encode(dict(gates)),
            "state": status.state,
            "active": status.state not in ENDED_STATES,
            "updated_at": now,
        }
        with self.store.transaction("save a rollout's status", fenced=True) as connection:
            connection.execute(sa.update(_ROLLOUT).where(_ROLLOUT.c.id == rollout_id).values(**values))
            if audit:
                audit_log.insert(connection, [_audit_record(e) for e in audit])

    def set_commands(self, rollout_id: str, commands: Commands, *, activate: bool, audit: AuditEntry) -> None:
        """The release manager's commands, as the spec's desired state, with their audit; ``activate``: tick the
        rollout again (a rollback of a rollout that ended). Another active rollout of the app then raises
        ``ActiveRolloutExists``."""
        rollout = self.get(rollout_id)
        spec = replace(rollout.spec, commands=commands)
        values: dict[str, Any] = {"spec": encode(spec), "updated_at": audit.at}
        if activate:
            values["active"] = True
        try:
            with self.store.transaction("save a rollout command", fenced=True) as connection:
                connection.execute(sa.update(_ROLLOUT).where(_ROLLOUT.c.id == rollout_id).values(**values))
                audit_log.insert(connection, [_audit_record(audit)])
        except StoreError as exc:
            active = self.active_for(rollout.app) if isinstance(exc.__cause__, IntegrityError) else None
            if active is not None:
                raise ActiveRolloutExists(active) from exc
            raise

    # --- previous releases ------------------------------------------------------------------------------------

    def record_previous(self, rollout_id: str, previous: PreviousRelease, *, now: float) -> PreviousRelease:
        """Record what the site ran before the rollout, unless it is recorded already; what is recorded."""
        insert = self._insert(_SITE).values(
            rollout_id=rollout_id,
            site=previous.site,
            previous_release=previous.release,
            previous_yaml=previous.yaml,
            baseline=None
            if previous.baseline is None
            else msgspec.json.encode(dict(sorted(previous.baseline.items()))).decode(),
            recorded_at=now,
        )
        with self.store.transaction("record a site's previous release", fenced=True) as connection:
            connection.execute(insert.on_conflict_do_nothing(index_elements=[_SITE.c.rollout_id, _SITE.c.site]))
        return self.previous(rollout_id)[previous.site]

    def previous(self, rollout_id: str) -> dict[SiteId, PreviousRelease]:
        query = sa.select(_SITE).where(_SITE.c.rollout_id == rollout_id)
        with self.store.transaction("read the sites' previous releases") as connection:
            rows = connection.execute(query).all()
        return {
            SiteId(row.site): PreviousRelease(
                SiteId(row.site),
                row.previous_release,
                row.previous_yaml,
                None if row.baseline is None else msgspec.json.decode(row.baseline, type=dict[str, float]),
            )
            for row in rows
        }

    def release_yaml(self, release: str) -> str | None:
        """The manifest of ``release`` as a rollout of it was submitted (the newest such rollout); None when no
        rollout of it is on record."""
        query = (
            sa.select(_ROLLOUT.c.release_yaml)
            .where(_ROLLOUT.c.release_name == release)
            .order_by(_ROLLOUT.c.created_at.desc())
            .limit(1)
        )
        with self.store.transaction("read a release's manifest") as connection:
            text = connection.execute(query).scalar()
        return None if text is None else str(text)

    # --- holds ------------------------------------------------------------------------------------------------

    def holds(self) -> dict[SiteId, Hold]:
        with self.store.transaction("read the site holds") as connection:
            rows = connection.execute(sa.select(_HOLD)).all()
        return {SiteId(r.site): Hold(SiteId(r.site), r.reason, r.held_by, r.since) for r in rows}

    def hold(self, hold: Hold, *, actor: Actor | None = None) -> Hold:
        """Hold the site (a second hold replaces the reason, keeping who and since of the first); ``actor``: who
        the audit names (default: the hold's ``by``)."""
        insert = self._insert(_HOLD).values(
            site=hold.site, reason=hold.reason, held_by=hold.by[:MAX_WHO_CHARS], since=hold.since
        )
        upsert = insert.on_conflict_do_update(index_elements=[_HOLD.c.site], set_={"reason": insert.excluded.reason})
        actor = actor or Actor(hold.by)
        what = f"hold site {hold.site}" + _as(hold.by, actor)
        audit = AuditEntry(
            hold.since, actor.name, what, None, hold.reason,
            action="hold-site", role=actor.role, source=actor.source, site=hold.site,
        )  # fmt: skip
        with self.store.transaction("hold a site", fenced=True) as connection:
            connection.execute(upsert)
            audit_log.insert(connection, [_audit_record(audit)])
        return self.holds()[hold.site]

    def release_hold(self, site: SiteId, *, by: str, now: float, actor: Actor | None = None) -> Hold | None:
        """Release the site's hold; the hold released, None when there was none (and nothing audited)."""
        held = self.holds().get(site)
        if held is None:
            return None
        actor = actor or Actor(by)
        audit = AuditEntry(
            now, actor.name, f"release site {site}" + _as(by, actor), held.reason, None,
            action="release-site", role=actor.role, source=actor.source, site=site,
        )  # fmt: skip
        with self.store.transaction("release a site", fenced=True) as connection:
            connection.execute(sa.delete(_HOLD).where(_HOLD.c.site == site))
            audit_log.insert(connection, [_audit_record(audit)])
        return held

    # --- audit ------------------------------------------------------------------------------------------------

    def record(self, entry: AuditEntry) -> None:
        """One audit entry for an action outside any rollout (a batch restart's steps, a taint)."""
        with self.store.transaction("record an audit entry", fenced=True) as connection:
            audit_log.insert(connection, [_audit_record(entry)])

    def audit(self, rollout_id: str | None = None) -> list[AuditEntry]:
        """The audit log, oldest first: one rollout's entries, or every entry."""
        query = (
            audit_log.AuditQuery(target_kind="rollout", target_id=rollout_id) if rollout_id else audit_log.AuditQuery()
        )
        with self.store.transaction("read the rollout audit") as connection:
            rows = connection.execute(audit_log.select(query)).all()
        return [_audit_entry(audit_log.record_of(r)) for r in reversed(rows)]


def _as(by: str, actor: Actor) -> str:
    """What the audit adds when the request named someone else (``by``) than its principal."""
    return "" if by == actor.name else f" (as {by!r})"
