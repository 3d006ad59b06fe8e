"""The alert store: every firing of an alert (one row from fire to resolve, with who acknowledged it and when) and
the silences, in the controller's database (SQLite or PostgreSQL, on the engine of ``store.Store``).

The alert loop (``looping.AlertLoop``) is the only writer of alerts: it saves every ``Transition.alert`` after a
pass and loads the active alerts at start-up; the API reads alerts and silences through the loop. Tables never
leave this module: callers pass and get the pure modules' ``StoredAlert`` and ``Silence``. Database errors are
translated here, once, like the Store does: ``UnreachableError`` when the database cannot be reached,
``StoreError`` otherwise, both naming the URL with its password masked.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, Final

import msgspec
import sqlalchemy as sa
from sqlalchemy import Index, Text
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Field, SQLModel

from edgefleet.cloud.alerting.alerts import (
    SHORT_ID_CHARS,
    AlertKey,
    AlertKind,
    AlertState,
    AlertTally,
    DetailValue,
    PageKey,
    Severity,
    StoredAlert,
)
from edgefleet.cloud.alerting.silences import MAX_WHO_CHARS, Silence, SilenceRecord
from edgefleet.cloud.store import Store
from edgefleet.ids import BoxId, SiteId

# A page of alerts for the API and the CLI; the pages after it start after a key (``alerts.PageKey``).
DEFAULT_LIST_LIMIT: Final = 100
_ACTIVE_STATES: Final = ("firing", "acknowledged")

# --- tables -----------------------------------------------------------------------------------------------


class AlertRow(SQLModel, table=True):
    __tablename__ = "alert"
    __table_args__ = (
        Index("ix_alert_state_fired_at", "state", "fired_at"),
        Index("ix_alert_site_fired_at", "site", "fired_at"),
        Index("ix_alert_fingerprint_fired_at", "fingerprint", "fired_at"),
    )

    # ``alerts.alert_id``: the key's fingerprint and the fire time, so one firing is one row however often saved.
    id: str = Field(primary_key=True, max_length=64)
    fingerprint: str = Field(max_length=32)
    kind: str = Field(max_length=32)
    site: str = Field(max_length=63)
    box: str | None = Field(default=None, max_length=63)
    detail: str | None = Field(default=None, sa_type=Text)
    severity: str = Field(max_length=16)
    summary: str = Field(sa_type=Text)
    description: str = Field(sa_type=Text)
    # JSON: labels {name: value}, details {name: value} (tuples as lists), muted_by [cause, ...].
    labels: str = Field(sa_type=Text)
    details: str = Field(sa_type=Text)
    started_at: float
    fired_at: float
    updated_at: float
    state: str = Field(max_length=16)
    muted: str | None = Field(default=None, max_length=16)
    muted_by: str = Field(sa_type=Text)
    acknowledged_by: str | None = Field(default=None, max_length=MAX_WHO_CHARS)
    acknowledged_at: float | None = None
    resolved_by: str | None = Field(default=None, max_length=MAX_WHO_CHARS)
    resolved_at: float | None = None


class SilenceRow(SQLModel, table=True):
    __tablename__ = "silence"
    __table_args__ = (Index("ix_silence_ends_at", "ends_at"),)

    id: str = Field(primary_key=True, max_length=64)
    site: str | None = Field(default=None, max_length=63)
    box: str | None = Field(default=None, max_length=63)
    kind: str | None = Field(default=None, max_length=32)
    starts_at: float
    # When it stops muting: the planned end, or when someone ended it early (``ended_by``).
    ends_at: float
    planned_ends_at: float
    created_by: str = Field(max_length=MAX_WHO_CHARS)
    comment: str = Field(sa_type=Text)
    ended_by: str | None = Field(default=None, max_length=MAX_WHO_CHARS)


_ALERT: Final[sa.Table] = AlertRow.__table__  # type: ignore[attr-defined]
_SILENCE: Final[sa.Table] = SilenceRow.__table__  # type: ignore[attr-defined]
TABLES: Final = [_ALERT, _SILENCE]


# --- the store --------------------------------------------------------------------------------------------


class AlertStore:
    """Alerts and silences in ``store``'s database. Thread-safe: every call is one transaction of its own."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def __repr__(self) -> str:
        return f"AlertStore({self.store.url_shown!r})"

    def create_schema(self) -> None:
        """Create the alert and silence tables when they are missing (existing ones are left as they are):
        for tests of this store alone. The controller migrates instead (``edgefleet.cloud.migrating``)."""
        with self.store.transaction("create the alert tables") as connection:
            SQLModel.metadata.create_all(connection, tables=TABLES)

    # --- alerts -----------------------------------------------------------------------------------------------

    def save(self, alerts: Sequence[StoredAlert]) -> None:
        """Insert or replace ``alerts`` (by id), all in one transaction; the last of an id in ``alerts`` wins."""
        if not alerts:
            return
        rows = list({alert.id: _alert_row(alert) for alert in alerts}.values())
        insert = self._insert(_ALERT)
        upsert = insert.on_conflict_do_update(
            index_elements=[_ALERT.c.id],
            set_={c.name: insert.excluded[c.name] for c in _ALERT.columns if c.name != "id"},
        )
        with self.store.transaction("save alerts", fenced=True) as connection:
            connection.execute(upsert, rows)

    def _insert(self, table: sa.Table) -> Any:
        return sqlite.insert(table) if self.store.dialect == "sqlite" else postgresql.insert(table)

    def active(self) -> dict[AlertKey, StoredAlert]:
        """Every firing or acknowledged alert, by key (the newest firing, should a key have two)."""
        query = sa.select(_ALERT).where(_ALERT.c.state.in_(_ACTIVE_STATES)).order_by(_ALERT.c.fired_at)
        with self.store.transaction("load the active alerts") as connection:
            rows = connection.execute(query).mappings().all()
        return {alert.key: alert for alert in map(_stored_alert, rows)}

    def latest(self, keys: Collection[AlertKey]) -> dict[AlertKey, StoredAlert]:
        """The newest firing of each of ``keys`` that has one, active or resolved."""
        out: dict[AlertKey, StoredAlert] = {}
        if not keys:
            return out
        wanted = {key.fingerprint: key for key in keys}
        query = sa.select(_ALERT).where(_ALERT.c.fingerprint.in_(list(wanted))).order_by(_ALERT.c.fired_at)
        with self.store.transaction("load the latest alerts") as connection:
            rows = connection.execute(query).mappings().all()
        for alert in map(_stored_alert, rows):
            if alert.key in keys:
                out[alert.key] = alert
        return out

    def changed_since(self, kinds: Collection[AlertKind], since: float) -> list[StoredAlert]:
        """Alerts of ``kinds`` that are active or changed at ``since`` or later, oldest first (what the alert loop
        rebuilds the boxes' recent transitions from at start-up)."""
        query = (
            sa.select(_ALERT)
            .where(
                _ALERT.c.kind.in_([str(k) for k in kinds]),
                sa.or_(_ALERT.c.updated_at >= since, _ALERT.c.state.in_(_ACTIVE_STATES)),
            )
            .order_by(_ALERT.c.fired_at)
        )
        with self.store.transaction("load the recent alerts") as connection:
            rows = connection.execute(query).mappings().all()
        return [_stored_alert(row) for row in rows]

    def get(self, alert_id: str) -> StoredAlert | None:
        with self.store.transaction("read an alert") as connection:
            row = connection.execute(sa.select(_ALERT).where(_ALERT.c.id == alert_id)).mappings().first()
        return None if row is None else _stored_alert(row)

    def find(
        self,
        *,
        state: AlertState | None = None,
        site: SiteId | None = None,
        kind: AlertKind | None = None,
        sites: Collection[SiteId] | None = None,
        muted: bool | None = None,
        id_prefix: str | None = None,
        after: PageKey | None = None,
        limit: int = DEFAULT_LIST_LIMIT,
    ) -> list[StoredAlert]:
        """Alerts newest first (by fire time, then id), filtered by state, site, kind, whether they are muted
        (silenced or inhibited) and the start of their id; ``sites`` limits them to those sites (a caller who may
        read only some). ``after``: only those that sort after that (fire time, id), the key of the last alert of
        the page before (keyset paging: a page never repeats nor skips an alert, whatever fires meanwhile)."""
        query = sa.select(_ALERT).order_by(_ALERT.c.fired_at.desc(), _ALERT.c.id).limit(limit)
        query = query.where(*_filters(state=state, site=site, kind=kind, sites=sites))
        if after is not None:
            query = query.where(_after(_ALERT.c.fired_at, _ALERT.c.id, after))
        if muted is not None:
            query = query.where(_ALERT.c.muted.is_not(None) if muted else _ALERT.c.muted.is_(None))
        if id_prefix is not None:
            query = query.where(_starts_with(_ALERT.c.id, id_prefix))
        with self.store.transaction("list alerts") as connection:
            rows = connection.execute(query).mappings().all()
        return [_stored_alert(row) for row in rows]

    def tally(
        self,
        *,
        site: SiteId | None = None,
        kind: AlertKind | None = None,
        sites: Collection[SiteId] | None = None,
    ) -> list[AlertTally]:
        """The active alerts counted by state and muting, largest count first: what a page of them leaves out."""
        count = sa.func.count().label("count")
        query = (
            sa.select(_ALERT.c.state, _ALERT.c.muted, _ALERT.c.muted_by, count)
            .where(_ALERT.c.state.in_(_ACTIVE_STATES), *_filters(state=None, site=site, kind=kind, sites=sites))
            .group_by(_ALERT.c.state, _ALERT.c.muted, _ALERT.c.muted_by)
        )
        with self.store.transaction("count alerts") as connection:
            rows = connection.execute(query).mappings().all()
        tallies = [
            AlertTally(
                state=row["state"],
                muted=row["muted"],
                muted_by=tuple(str(m) for m in msgspec.json.decode(row["muted_by"])),
                count=int(row["count"]),
            )
            for row in rows
        ]
        return sorted(tallies, key=lambda t: (-t.count, t.state, t.muted or "", t.muted_by))

    def get_many(self, alert_ids: Collection[str]) -> dict[str, StoredAlert]:
        """The stored alerts of ``alert_ids`` that are stored, by id."""
        ids = sorted(set(alert_ids))
        out: dict[str, StoredAlert] = {}
        for i in range(0, len(ids), 500):  # a few hundred ids a query keeps under every driver's limit
            query = sa.select(_ALERT).where(_ALERT.c.id.in_(ids[i : i + 500]))
            with self.store.transaction("read alerts") as connection:
                out.update((row["id"], _stored_alert(row)) for row in connection.execute(query).mappings())
        return out

    def short_ids(self, alert_ids: Collection[str]) -> dict[str, str]:
        """The shortest start of each id, at least ``SHORT_ID_CHARS`` long, that no other stored alert shares now."""
        starts = sorted({alert_id[:SHORT_ID_CHARS] for alert_id in alert_ids})
        others: set[str] = set()
        # Only ids that share the first characters can need more; a few hundred starts per query at most.
        for i in range(0, len(starts), 500):
            chunk = starts[i : i + 500]
            query = sa.select(_ALERT.c.id).where(sa.func.substr(_ALERT.c.id, 1, SHORT_ID_CHARS).in_(chunk))
            with self.store.transaction("read alert ids") as connection:
                others.update(connection.execute(query).scalars().all())
        return {alert_id: shortest_unique_start(alert_id, others) for alert_id in alert_ids}

    # --- silences ---------------------------------------------------------------------------------------------

    def add_silence(self, silence: Silence) -> None:
        with self.store.transaction("save a silence", fenced=True) as connection:
            connection.execute(sa.insert(_SILENCE), [_silence_row(silence)])

    def end_silence(self, silence_id: str, *, at: float, by: str | None) -> None:
        """Stop the silence at ``at`` (it is kept, expired, with who ended it)."""
        with self.store.transaction("end a silence", fenced=True) as connection:
            connection.execute(
                sa.update(_SILENCE)
                .where(_SILENCE.c.id == silence_id)
                .values(ends_at=at, ended_by=_clip(by) if by is not None else None)
            )

    def get_silence(self, silence_id: str) -> SilenceRecord | None:
        with self.store.transaction("read a silence") as connection:
            row = connection.execute(sa.select(_SILENCE).where(_SILENCE.c.id == silence_id)).mappings().first()
        return None if row is None else _silence_record(row)

    def silences(
        self,
        *,
        ending_after: float | None = None,
        id_prefix: str | None = None,
        after: PageKey | None = None,
        limit: int | None = DEFAULT_LIST_LIMIT,
    ) -> list[SilenceRecord]:
        """Silences newest first (by start, then id); with ``ending_after``, only those that still mute after then
        (active or pending); with ``id_prefix``, those whose id starts so; with ``after``, those that sort after
        that (start, id), the key of the last silence of the page before; ``limit`` None: all of them (the alert
        loop's own read at start-up)."""
        query = sa.select(_SILENCE).order_by(_SILENCE.c.starts_at.desc(), _SILENCE.c.id)
        if limit is not None:
            query = query.limit(limit)
        if after is not None:
            query = query.where(_after(_SILENCE.c.starts_at, _SILENCE.c.id, after))
        if ending_after is not None:
            query = query.where(_SILENCE.c.ends_at > ending_after)
        if id_prefix is not None:
            query = query.where(_starts_with(_SILENCE.c.id, id_prefix))
        with self.store.transaction("list silences") as connection:
            rows = connection.execute(query).mappings().all()
        return [_silence_record(row) for row in rows]


def _filters(
    *, state: AlertState | None, site: SiteId | None, kind: AlertKind | None, sites: Collection[SiteId] | None
) -> list[sa.ColumnElement[bool]]:
    out: list[sa.ColumnElement[bool]] = []
    if state is not None:
        out.append(_ALERT.c.state == state)
    if site is not None:
        out.append(_ALERT.c.site == site)
    if kind is not None:
        out.append(_ALERT.c.kind == str(kind))
    if sites is not None:
        out.append(_ALERT.c.site.in_(list(sites)))
    return out


def _after(time: sa.ColumnElement[float], id_: sa.ColumnElement[str], key: PageKey) -> sa.ColumnElement[bool]:
    """Rows that sort after ``key`` in (time descending, id ascending) order."""
    at, last_id = key
    return sa.or_(time < at, sa.and_(time == at, id_ > last_id))


def _starts_with(column: sa.ColumnElement[str], start: str) -> sa.ColumnElement[bool]:
    # LIKE's wildcards in ``start`` match themselves: the API allows none, but the store does not rely on it.
    # SQLite's LIKE ignores case; the comparison of the start itself does not.
    escaped = start.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return sa.and_(column.like(escaped + "%", escape="\\"), sa.func.substr(column, 1, len(start)) == start)


def shortest_unique_start(alert_id: str, ids: Collection[str]) -> str:
    """The shortest start of ``alert_id``, at least ``SHORT_ID_CHARS`` long, that no other of ``ids`` shares."""
    longest_shared = max(
        (_common_start(alert_id, other) for other in ids if other != alert_id),
        default=0,
    )
    return alert_id[: max(SHORT_ID_CHARS, longest_shared + 1)]


def _common_start(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


# --- rows <-> the pure modules' types ---------------------------------------------------------------------

_encoder: Final = msgspec.json.Encoder()


def _json(value: object) -> str:
    return _encoder.encode(value).decode()


def _clip(text: str) -> str:
    # PostgreSQL text cannot hold NUL; names and comments come from people through the API.
    return text.replace("\x00", "\ufffd")[:MAX_WHO_CHARS]


def _text(value: str) -> str:
    return value.replace("\x00", "\ufffd")


def _alert_row(alert: StoredAlert) -> dict[str, Any]:
    key = alert.key
    return {
        "id": alert.id,
        "fingerprint": key.fingerprint,
        "kind": str(key.kind),
        "site": key.site,
        "box": key.box,
        "detail": _text(key.detail) if key.detail is not None else None,
        "severity": str(alert.severity),
        "summary": _text(alert.summary),
        "description": _text(alert.description),
        "labels": _text(_json(dict(alert.labels))),
        "details": _text(_json(dict(alert.details))),
        "started_at": alert.started_at,
        "fired_at": alert.fired_at,
        "updated_at": alert.updated_at,
        "state": alert.state,
        "muted": alert.muted,
        "muted_by": _text(_json(list(alert.muted_by))),
        "acknowledged_by": _clip(alert.acknowledged_by) if alert.acknowledged_by is not None else None,
        "acknowledged_at": alert.acknowledged_at,
        "resolved_by": _clip(alert.resolved_by) if alert.resolved_by is not None else None,
        "resolved_at": alert.resolved_at,
    }


def _detail_value(value: Any) -> DetailValue:
    # JSON has no tuples: the details' only sequences are tuples of names (boxes, silences), stored as lists.
    if isinstance(value, list):
        return tuple(str(v) for v in value)
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def _stored_alert(row: Any) -> StoredAlert:
    details = msgspec.json.decode(row["details"])
    labels = msgspec.json.decode(row["labels"])
    muted_by = msgspec.json.decode(row["muted_by"])
    return StoredAlert(
        id=row["id"],
        key=AlertKey(
            kind=AlertKind(row["kind"]),
            site=SiteId(row["site"]),
            box=BoxId(row["box"]) if row["box"] is not None else None,
            detail=row["detail"],
        ),
        severity=Severity(row["severity"]),
        summary=row["summary"],
        description=row["description"],
        labels={str(k): str(v) for k, v in labels.items()},
        details={str(k): _detail_value(v) for k, v in details.items()},
        started_at=float(row["started_at"]),
        fired_at=float(row["fired_at"]),
        updated_at=float(row["updated_at"]),
        state=row["state"],
        muted=row["muted"],
        muted_by=tuple(str(m) for m in muted_by),
        acknowledged_by=row["acknowledged_by"],
        acknowledged_at=row["acknowledged_at"],
        resolved_by=row["resolved_by"],
        resolved_at=row["resolved_at"],
    )


def _silence_row(silence: Silence) -> dict[str, Any]:
    return {
        "id": silence.id,
        "site": silence.site,
        "box": silence.box,
        "kind": str(silence.kind) if silence.kind is not None else None,
        "starts_at": silence.starts_at,
        "ends_at": silence.ends_at,
        "planned_ends_at": silence.ends_at,
        "created_by": _clip(silence.created_by),
        "comment": _text(silence.comment),
        "ended_by": None,
    }


def _silence_record(row: Any) -> SilenceRecord:
    silence = Silence(
        id=row["id"],
        starts_at=float(row["starts_at"]),
        ends_at=float(row["ends_at"]),
        created_by=row["created_by"],
        comment=row["comment"],
        site=SiteId(row["site"]) if row["site"] is not None else None,
        box=BoxId(row["box"]) if row["box"] is not None else None,
        kind=AlertKind(row["kind"]) if row["kind"] is not None else None,
    )
    return SilenceRecord(silence, planned_ends_at=float(row["planned_ends_at"]), ended_by=row["ended_by"])
