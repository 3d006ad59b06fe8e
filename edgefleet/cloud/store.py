"""The controller's database: box state, a bounded history of health samples, unknown boxes (SQLModel tables on
SQLite or PostgreSQL).

The history has two resolutions: ``health_sample`` holds every sample of the recent past, ``health_rollup`` one
row per box and ``DOWNSAMPLE_S`` bucket of the older past (``trim_history`` moves samples from the first to the
second and deletes past the retention; ``history`` reads both as one series). docs/operations.md, "Disk", says
what that costs.

The only module that talks to the database, but for the controller lock's own session (``edgefleet.cloud.leading``).
``Store`` is called by the persister (``save`` in batches, ``trim``),
by the controller (``load`` at start-up, ``history`` for charts older than memory holds) and
by the API's health check (``check``). Tables never leave this module: callers pass and get the fleet state's
own dataclasses. Database errors are translated here, once: ``UnreachableError`` when the database cannot be
reached, ``StoreError`` otherwise; both name the URL with its password masked.

SQLite runs in WAL mode with ``synchronous=NORMAL``: the persister writes while the API reads, and a power cut
loses at most the last flush (the boxes' next heartbeats restore it). PostgreSQL is reached through psycopg 3.
The schema is migrated with alembic (``edgefleet.cloud.migrating``); ``create_schema`` creates missing tables
only, for tests of one store.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Any, Final

import msgspec
import sqlalchemy as sa
from sqlalchemy import BigInteger, Column, Index, Integer, LargeBinary
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import StaticPool
from sqlmodel import Field, SQLModel

from edgefleet import messages
from edgefleet.cloud.fleet import BoxLive, HealthPoint, UnknownBox
from edgefleet.cloud.settings import hide_password
from edgefleet.errors import EdgefleetError, MessageRejected, UnreachableError
from edgefleet.ids import BoxId, SiteId

log = logging.getLogger(__name__)

# Long enough to outlast the persister's own transaction when the API or a second process reads meanwhile.
SQLITE_BUSY_TIMEOUT_S: Final = 5.0
# A dead PostgreSQL host must fail the start-up (or one flush) in seconds, not after the OS's TCP timeout.
POSTGRES_CONNECT_TIMEOUT_S: Final = 5
# ``Store.check`` answers from its last check while it is younger than this: probes cost the database one query per
# this however often they come, and an outage shows within it (issue 19).
CHECK_EVERY_S: Final = 2.0

# Older samples are kept as one point per box and 5 minutes: 288 a day, what a day's chart can show, against
# 8,640 at 10 s. Each bucket keeps the mean of the loads (CPU, GPU utilisation) and the maximum of the levels that
# alert at a threshold (GPU temperature, memory and disk used): the hottest minute of a GPU must not average away.
DOWNSAMPLE_S: Final = 300.0

Sample = tuple[BoxId, HealthPoint]


class StoreError(EdgefleetError):
    """The database refused an operation, or its URL is unusable; the message names the URL (password masked)."""


# --- tables -----------------------------------------------------------------------------------------------


class BoxStateBase(SQLModel):
    """Everything of ``fleet.BoxLive`` but the in-memory history and bookkeeping."""

    site: str = Field(max_length=63)
    boot: str | None = Field(default=None, max_length=64)
    boot_started_at: float | None = None
    seq: int = Field(default=0, sa_type=BigInteger)
    first_seen: float | None = None
    last_seen: float | None = None
    clock_skew_s: float | None = None
    status_state: str | None = Field(default=None, max_length=8)
    status_reason: str | None = Field(default=None, max_length=256)
    status_session: int = Field(default=0, sa_type=BigInteger)
    status_at: float | None = None
    status_boot: str | None = Field(default=None, max_length=64)
    status_seq: int = Field(default=0, sa_type=BigInteger)
    # The latest heartbeat as its wire JSON: one column that follows the message schema without migrations.
    heartbeat: bytes | None = Field(default=None, sa_type=LargeBinary)


class BoxStateRow(BoxStateBase, table=True):
    __tablename__ = "box_state"

    box: str = Field(primary_key=True, max_length=63)


class HealthSampleBase(SQLModel):
    box: str = Field(max_length=63)
    at: float = Field(index=True)
    cpu_percent: float | None = None
    memory_used_percent: float | None = None
    disk_used_percent: float | None = None
    gpu_temperature_max_c: float | None = None
    gpu_utilization_avg_percent: float | None = None


class HealthSampleRow(HealthSampleBase, table=True):
    __tablename__ = "health_sample"
    __table_args__ = (Index("ix_health_sample_box_at", "box", "at"),)

    # 64 bits on PostgreSQL: ~200 samples/s exhaust 32-bit ids within a year; SQLite's rowid is 64-bit already.
    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    )


class HealthRollupRow(HealthSampleBase, table=True):
    """One bucket of ``DOWNSAMPLE_S`` of a box's older samples; ``at`` is the bucket's start."""

    __tablename__ = "health_rollup"

    box: str = Field(primary_key=True, max_length=63)
    at: float = Field(primary_key=True, index=True)
    samples: int = 0


class UnknownBoxRow(SQLModel, table=True):
    __tablename__ = "unknown_box"

    box: str = Field(primary_key=True, max_length=63)
    claimed_site: str | None = Field(default=None, max_length=63)
    first_seen: float
    last_seen: float
    messages: int = Field(default=0, sa_type=BigInteger)


_BOX: Final[sa.Table] = BoxStateRow.__table__  # type: ignore[attr-defined]
_SAMPLE: Final[sa.Table] = HealthSampleRow.__table__  # type: ignore[attr-defined]
_ROLLUP: Final[sa.Table] = HealthRollupRow.__table__  # type: ignore[attr-defined]
_UNKNOWN: Final[sa.Table] = UnknownBoxRow.__table__  # type: ignore[attr-defined]
TABLES: Final = [_BOX, _SAMPLE, _ROLLUP, _UNKNOWN]
_SAMPLE_FIELDS: Final = (
    "at",
    "cpu_percent",
    "memory_used_percent",
    "disk_used_percent",
    "gpu_temperature_max_c",
    "gpu_utilization_avg_percent",
)
# How a bucket sums up its samples (see DOWNSAMPLE_S).
_MEAN_FIELDS: Final = ("cpu_percent", "gpu_utilization_avg_percent")
_MAX_FIELDS: Final = ("memory_used_percent", "disk_used_percent", "gpu_temperature_max_c")


# --- the store --------------------------------------------------------------------------------------------


def engine_url(url: str) -> URL:
    """The SQLAlchemy URL for ``url``: ``postgresql://`` and ``postgres://`` go through psycopg 3."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise StoreError(
            f"{hide_password(url)!r} is no database URL; expected sqlite:///PATH or postgresql://USER@HOST:PORT/DATABASE"
        ) from None
    if parsed.drivername in {"postgresql", "postgres", "postgresql+psycopg"}:
        return parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername in {"sqlite", "sqlite+pysqlite"}:
        return parsed
    raise StoreError(
        f"{parsed.render_as_string(hide_password=True)!r}: the {parsed.drivername!r} database is not supported; "
        "use sqlite:///PATH or postgresql://USER@HOST:PORT/DATABASE"
    )


class Store:
    """The database behind one controller. Thread-safe: the engine pools connections."""

    def __init__(
        self, url: str, *, check_every_s: float = CHECK_EVERY_S, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        """``monotonic``: the real clock, not the controller's: it paces ``check``'s load on a real database."""
        self.url = engine_url(url)
        self.check_every_s = check_every_s
        self._monotonic = monotonic
        self._check_lock = threading.Lock()
        # When the last ``check`` ran and how it failed (None: it passed).
        self._last_check: tuple[float, StoreError | UnreachableError | None] | None = None
        self.url_shown = self.url.render_as_string(hide_password=True)
        self.dialect = "sqlite" if self.url.drivername.startswith("sqlite") else "postgresql"
        # Set by the controller to its leadership's fence: fenced transactions check the leader's epoch in them.
        self.fence: Callable[[Connection], None] | None = None
        try:
            self.engine = self._create_engine()
        except (ArgumentError, NoSuchModuleError, ImportError) as exc:
            raise StoreError(f"cannot use the database URL {self.url_shown!r}: {exc}") from exc

    def _create_engine(self) -> Engine:
        if self.dialect == "postgresql":
            return sa.create_engine(
                self.url, pool_pre_ping=True, connect_args={"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S}
            )
        memory = self.url.database in (None, "", ":memory:")
        engine = sa.create_engine(
            self.url,
            # The persister, the API and the scheduler use the engine from different threads.
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_S},
            # Every connection to ":memory:" is a database of its own: share one.
            poolclass=StaticPool if memory else None,
        )

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            if not memory:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
            cursor.close()

        return engine

    def __repr__(self) -> str:
        return f"Store({self.url_shown!r})"

    @contextlib.contextmanager
    def transaction(self, doing: str, *, fenced: bool = False) -> Iterator[Connection]:
        """One transaction on this store's engine; the one place where the driver's errors become ours
        (``UnreachableError`` when the database cannot be reached, else ``StoreError`` saying what failed while
        ``doing``). The alert store and the outbox share it. ``fenced``: a write only the leader may make; the
        transaction first passes ``fence`` (``leading.Leadership.fence``: its ``NotLeaderError`` propagates)."""
        try:
            connection = self.engine.connect()
        except SQLAlchemyError as exc:
            raise UnreachableError("database", self.url_shown, self._hint(exc)) from exc
        try:
            with connection.begin():
                if fenced and self.fence is not None:
                    self.fence(connection)
                yield connection
        except SQLAlchemyError as exc:
            raise StoreError(f"database {self.url_shown}: failed to {doing}: {_first_line(exc)}") from exc
        finally:
            connection.close()

    def _hint(self, exc: SQLAlchemyError) -> str:
        reason = _first_line(exc)
        if self.dialect == "sqlite":
            return f"{reason}; check that the file's directory exists and is writable (EDGEFLEET_DATABASE_URL)"
        return f"{reason}; check that PostgreSQL runs there and lets this user in (EDGEFLEET_DATABASE_URL)"

    def create_schema(self) -> None:
        """Create the tables that are missing (existing ones are left as they are):
        for tests of this store alone. The controller migrates instead (``edgefleet.cloud.migrating``)."""
        with self.transaction("create the tables") as connection:
            SQLModel.metadata.create_all(connection, tables=TABLES)

    def check(self) -> None:
        """Raise UnreachableError or StoreError when the database cannot be used now (for /healthz and /readyz).

        The answer of the last check is given again while it is younger than ``check_every_s``: a load balancer
        probing every second, or several probing at once, costs the database one query on a pooled session per
        ``check_every_s``, and an outage still shows within it (plus the check's own wait for the database).
        Concurrent callers wait for the check in flight and take its answer."""
        with self._check_lock:
            now = self._monotonic()
            if self._last_check is not None and now - self._last_check[0] < self.check_every_s:
                failure = self._last_check[1]
            else:
                failure = None
                try:
                    with self.transaction("run a check query") as connection:
                        connection.execute(sa.select(sa.func.count()).select_from(_UNKNOWN)).scalar_one()
                except (StoreError, UnreachableError) as exc:
                    failure = exc
                self._last_check = (self._monotonic(), failure)
        if failure is not None:
            # The same error again, without the frames of every earlier raise of it.
            raise failure.with_traceback(None)

    def close(self) -> None:
        self.engine.dispose()

    # --- writing ------------------------------------------------------------------------------------------

    def save(self, boxes: Sequence[BoxLive], samples: Sequence[Sample], unknown: Sequence[UnknownBox]) -> None:
        """Upsert ``boxes`` and ``unknown`` and append ``samples``, all in one transaction."""
        if not (boxes or samples or unknown):
            return
        with self.transaction("save the fleet state", fenced=True) as connection:
            if boxes:
                connection.execute(self._upsert(_BOX, "box"), [_box_row(b) for b in boxes])
            if samples:
                connection.execute(sa.insert(_SAMPLE), [_sample_row(box, point) for box, point in samples])
            if unknown:
                connection.execute(self._upsert(_UNKNOWN, "box"), [_unknown_row(u) for u in unknown])

    def _upsert(self, table: sa.Table, key: str) -> sa.Insert:
        insert = sqlite.insert(table) if self.dialect == "sqlite" else postgresql.insert(table)
        update = {c.name: insert.excluded[c.name] for c in table.columns if c.name != key}
        return insert.on_conflict_do_update(index_elements=[table.c[key]], set_=update)

    def trim_history(
        self,
        *,
        older_than: float,
        boxes: Collection[BoxId] = (),
        keep: int | None = None,
        downsample_before: float | None = None,
    ) -> int:
        """In one transaction: fold the samples received before ``downsample_before`` into their boxes'
        ``DOWNSAMPLE_S`` buckets; delete samples and buckets before ``older_than``; and of each of ``boxes`` delete
        all samples but the newest ``keep``. Returns how many sample rows went."""
        deleted = 0
        with self.transaction("trim the health history", fenced=True) as connection:
            if downsample_before is not None:
                connection.execute(self._downsample(downsample_before))
                deleted += connection.execute(sa.delete(_SAMPLE).where(_SAMPLE.c.at < downsample_before)).rowcount
            deleted += connection.execute(sa.delete(_SAMPLE).where(_SAMPLE.c.at < older_than)).rowcount
            connection.execute(sa.delete(_ROLLUP).where(_ROLLUP.c.at < older_than))
            if keep is not None:
                for box in boxes:
                    # The newest ``keep`` by the (box, at) index; everything of the box older than the last goes.
                    cutoff = (
                        sa.select(_SAMPLE.c.at)
                        .where(_SAMPLE.c.box == box)
                        .order_by(_SAMPLE.c.at.desc())
                        .offset(keep - 1)
                        .limit(1)
                        .scalar_subquery()
                    )
                    deleted += connection.execute(
                        sa.delete(_SAMPLE).where(_SAMPLE.c.box == box, _SAMPLE.c.at < cutoff)
                    ).rowcount
        return deleted

    def _downsample(self, before: float) -> sa.Insert:
        """INSERT ... SELECT of the samples before ``before``, one row per box and bucket. A bucket already there
        (samples saved late, after a database outage) is merged with the new one: means weighted by samples."""
        bucket: sa.ColumnElement[Any]
        if self.dialect == "sqlite":  # no floor() without SQLite's math functions; ``at`` is positive
            bucket = sa.cast(_SAMPLE.c.at / DOWNSAMPLE_S, Integer) * DOWNSAMPLE_S
        else:
            bucket = sa.func.floor(_SAMPLE.c.at / DOWNSAMPLE_S) * DOWNSAMPLE_S
        bucket = bucket.label("at")
        columns = [_SAMPLE.c.box, bucket, sa.func.count().label("samples")]
        columns += [sa.func.avg(_SAMPLE.c[name]).label(name) for name in _MEAN_FIELDS]
        columns += [sa.func.max(_SAMPLE.c[name]).label(name) for name in _MAX_FIELDS]
        select = sa.select(*columns).where(_SAMPLE.c.at < before).group_by(_SAMPLE.c.box, bucket)
        names = ["box", "at", "samples", *_MEAN_FIELDS, *_MAX_FIELDS]
        insert = sqlite.insert(_ROLLUP) if self.dialect == "sqlite" else postgresql.insert(_ROLLUP)
        insert = insert.from_select(names, select)
        new, old = insert.excluded, _ROLLUP.c
        merged: dict[str, Any] = {"samples": old.samples + new.samples}
        for name in _MEAN_FIELDS:
            weighted = (old[name] * old.samples + new[name] * new.samples) / (old.samples + new.samples)
            merged[name] = sa.case((old[name].is_(None), new[name]), (new[name].is_(None), old[name]), else_=weighted)
        for name in _MAX_FIELDS:
            merged[name] = sa.case(
                (old[name].is_(None), new[name]), (new[name] > old[name], new[name]), else_=old[name]
            )
        return insert.on_conflict_do_update(index_elements=[_ROLLUP.c.box, _ROLLUP.c.at], set_=merged)

    # --- reading ------------------------------------------------------------------------------------------

    def load(self) -> tuple[list[BoxLive], list[UnknownBox]]:
        """Every saved box state and unknown box, so a restarted controller resumes where it stopped."""
        with self.transaction("load the fleet state") as connection:
            box_rows = connection.execute(sa.select(_BOX)).mappings().all()
            unknown_rows = connection.execute(sa.select(_UNKNOWN)).mappings().all()
        boxes = [_box_live(row) for row in box_rows]
        unknown = [
            UnknownBox(
                box=row["box"],
                claimed_site=row["claimed_site"],
                first_seen=row["first_seen"],
                last_seen=row["last_seen"],
                messages=row["messages"],
                dirty=False,
            )
            for row in unknown_rows
        ]
        return boxes, unknown

    def saved_last_seen(self) -> dict[BoxId, float]:
        """Each saved box's ``last_seen``: the receive time of the newest heartbeat whose health point the leader
        has saved (a box row and its points are saved in one transaction). A read: standbys ask it."""
        with self.transaction("read what the leader saved") as connection:
            rows = connection.execute(sa.select(_BOX.c.box, _BOX.c.last_seen).where(_BOX.c.last_seen.is_not(None)))
            return {BoxId(box): float(last_seen) for box, last_seen in rows}

    def history(
        self, box: BoxId, *, since: float | None = None, before: float | None = None, limit: int | None = None
    ) -> list[HealthPoint]:
        """The box's points in [since, before), oldest first; with ``limit``, the newest that many. Older points
        are ``DOWNSAMPLE_S`` buckets (at their start), recent ones the samples as received: one series."""
        points: list[HealthPoint] = []
        with self.transaction("read the health history") as connection:
            for table in (_ROLLUP, _SAMPLE):
                query = sa.select(*(table.c[name] for name in _SAMPLE_FIELDS)).where(table.c.box == box)
                if since is not None:
                    query = query.where(table.c.at >= since)
                if before is not None:
                    query = query.where(table.c.at < before)
                query = query.order_by(table.c.at.desc())
                if limit is not None:
                    query = query.limit(limit)
                points += [HealthPoint(*row) for row in connection.execute(query).all()]
        # Buckets end before the samples begin, but for samples saved late (after a database outage): sort.
        points.sort(key=lambda point: point.at)
        return points[max(0, len(points) - limit) :] if limit is not None else points

    def count_rollups(self, box: BoxId | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(_ROLLUP)
        if box is not None:
            query = query.where(_ROLLUP.c.box == box)
        with self.transaction("count health buckets") as connection:
            return int(connection.execute(query).scalar_one())

    def count_samples(self, box: BoxId | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(_SAMPLE)
        if box is not None:
            query = query.where(_SAMPLE.c.box == box)
        with self.transaction("count health samples") as connection:
            return int(connection.execute(query).scalar_one())


# --- rows <-> fleet dataclasses ---------------------------------------------------------------------------


def _text(value: str | None) -> str | None:
    # PostgreSQL text cannot hold NUL, and JSON lets a box send "\u0000": one such value would fail every flush.
    return None if value is None else value.replace("\x00", "\ufffd")


def _box_row(box: BoxLive) -> dict[str, Any]:
    return {
        "box": box.box,
        "site": box.site,
        "boot": _text(box.boot),
        "boot_started_at": box.boot_started_at,
        "seq": box.seq,
        "first_seen": box.first_seen,
        "last_seen": box.last_seen,
        "clock_skew_s": box.clock_skew_s,
        "status_state": box.status_state,
        "status_reason": _text(box.status_reason),
        "status_session": box.status_session,
        "status_at": box.status_at,
        "status_boot": _text(box.status_boot),
        "status_seq": box.status_seq,
        "heartbeat": messages.encode(box.heartbeat) if box.heartbeat is not None else None,
    }


def _sample_row(box: BoxId, point: HealthPoint) -> dict[str, Any]:
    return {
        "box": box,
        "at": point.at,
        "cpu_percent": point.cpu_percent,
        "memory_used_percent": point.memory_used_percent,
        "disk_used_percent": point.disk_used_percent,
        "gpu_temperature_max_c": point.gpu_temperature_max_c,
        "gpu_utilization_avg_percent": point.gpu_utilization_avg_percent,
    }


def _unknown_row(unknown: UnknownBox) -> dict[str, Any]:
    return {
        "box": unknown.box,
        "claimed_site": _text(unknown.claimed_site),
        "first_seen": unknown.first_seen,
        "last_seen": unknown.last_seen,
        "messages": unknown.messages,
    }


def _box_live(row: Any) -> BoxLive:
    heartbeat = None
    if row["heartbeat"] is not None:
        try:
            heartbeat = messages.decode_heartbeat(bytes(row["heartbeat"]))
        except (MessageRejected, msgspec.DecodeError) as exc:
            # Saved by an older controller with another schema: the box's next heartbeat replaces it.
            log.warning("Dropped saved heartbeat of box", extra={"box": row["box"], "error": str(exc)[:200]})
    state = row["status_state"] if row["status_state"] in ("online", "offline") else None
    return BoxLive(
        box=BoxId(row["box"]),
        site=SiteId(row["site"]),
        boot=row["boot"],
        boot_started_at=row["boot_started_at"],
        seq=row["seq"],
        first_seen=row["first_seen"],
        last_seen=row["last_seen"],
        heartbeat=heartbeat,
        clock_skew_s=row["clock_skew_s"],
        status_state=state,
        status_reason=row["status_reason"] if state else None,
        status_session=row["status_session"],
        status_at=row["status_at"],
        status_boot=row["status_boot"] if state else None,
        status_seq=row["status_seq"],
    )


def _first_line(exc: BaseException) -> str:
    cause = getattr(exc, "orig", None) or exc
    text = str(cause).strip().splitlines()
    return text[0][:300] if text else type(cause).__name__
