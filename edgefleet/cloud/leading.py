"""One controller per database: the lock a controller holds for its life, and the holder a refused one names.

Why: the controllers' ingest shares one broker subscription, so a second controller on the same database would
split the fleet with the first; each would see the other's half as lost and send its own notifications. Until
replicas are designed (leader election: the high-availability issue), a second ``edgefleet cloud serve`` on the
same database is refused at start. ``take_database_lock`` is called first thing by ``Controller.__init__``, and
``DatabaseLock.release`` by ``Controller.stop`` (and by a failed construction); a refusal is a
``DatabaseHeldError`` naming the holder (host, pid, since) and the database with its password masked.

How, per database:

- PostgreSQL: a session-level ``pg_try_advisory_lock(CONTROLLER_LOCK_KEY)`` on a connection of the lock's own,
  held for the controller's life in autocommit (it never sits idle in a transaction). The advisory lock is the
  lock; the connection's ``application_name`` names the holder, and a refused controller reads it from
  ``pg_locks`` joined with ``pg_stat_activity``, so the name always belongs to the session that holds the lock
  (a holder row in a table could be stale, and would need a schema). Advisory locks are per database: two
  edgefleet databases on one server do not exclude each other. A controller killed with -9: its kernel closes
  the socket, the server ends the session and frees the lock at once. A controller whose host vanishes (power
  cut, network gone) sends nothing more: server-side TCP keepalives set on this session end it, and free the
  lock, within ``LOCK_LEASE_S``.
- SQLite file: an OS lock (``flock``) on ``<database>-controller.lock`` beside the database, with the holder
  written into the file. Chosen over a lock row with a renewed lease: the kernel frees it the moment the process
  dies, so a successor never waits out a lease, no thread renews anything, and no clock is trusted. Being local
  to one host loses nothing: SQLite in WAL mode works on one host only anyway (its index is shared memory). The
  file is emptied on release but never deleted (deleting a lock file lets two processes lock two files).
- SQLite in memory: every process has its own database; nothing to lock.

What is not enforced yet (the high-availability issue): a controller cut off from PostgreSQL for longer than
``LOCK_LEASE_S``, or whose lock session ends otherwise (PostgreSQL restarted), has lost the lock without knowing;
it keeps running, and a second controller started then is accepted.

Pure: the holder's tag (``holder_tag``/``parse_holder_tag``), the lease arithmetic and the messages; I/O: the lock
session and the lock file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from edgefleet.clock import Clock
from edgefleet.cloud.store import POSTGRES_CONNECT_TIMEOUT_S, StoreError, engine_url
from edgefleet.errors import EdgefleetError, UnreachableError

# The lock session is always silent, so the server probes it every 10 s while the holder's host answers: the first
# unanswered probe comes at most this long after the host vanished.
KEEPALIVE_IDLE_S: Final = 10
# Then a probe every 5 s, and the session ends after 3 unanswered: a network blip shorter than 15 s keeps the lock.
KEEPALIVE_INTERVAL_S: Final = 5
KEEPALIVE_COUNT: Final = 3
# The longest a vanished controller host blocks its successor on PostgreSQL: short next to a restart on another
# machine. A controller killed with -9 on a host that lives, and any controller on SQLite, block it not at all.
LOCK_LEASE_S: Final = KEEPALIVE_IDLE_S + KEEPALIVE_INTERVAL_S * KEEPALIVE_COUNT

# One fixed 64-bit key for "the controller of this database", derived from a name so it is stable across releases
# and unlikely to meet another application's advisory lock in the same database.
CONTROLLER_LOCK_NAME: Final = "edgefleet.cloud controller"
CONTROLLER_LOCK_KEY: Final = int.from_bytes(hashlib.sha256(CONTROLLER_LOCK_NAME.encode()).digest()[:8], signed=True)

# PostgreSQL keeps 63 bytes of an application_name (NAMEDATALEN - 1), ASCII only.
_TAG_MAX: Final = 63
_TAG_PREFIX: Final = "edgefleet"
# The lock file's suffix, beside SQLite's own "-wal" and "-shm" (".lock" is what SQLite's dot-file VFS uses).
LOCK_FILE_SUFFIX: Final = "-controller.lock"


@dataclass(frozen=True, slots=True)
class Holder:
    """The controller that holds a database: its host, its process id, and since when (seconds since the epoch)."""

    host: str
    pid: int
    since: float


class DatabaseHeldError(EdgefleetError):
    """Another controller holds the database; ``holder`` is None when it has not written its name yet."""

    def __init__(self, database: str, holder: Holder | None) -> None:
        self.database = database
        self.holder = holder
        super().__init__(f"another controller holds the database {database}: {describe_holder(holder)}")


class DatabaseLock(Protocol):
    """Held from ``take_database_lock`` until ``release``; releasing twice is harmless."""

    def release(self) -> None: ...


# --- pure ------------------------------------------------------------------------------------------------


def holder_tag(holder: Holder) -> str:
    """``edgefleet PID SINCE HOST``, at most 63 ASCII characters: the host comes last, and is what gets cut."""
    host = "".join(c if c.isascii() and c.isprintable() and not c.isspace() else "_" for c in holder.host) or "_"
    return f"{_TAG_PREFIX} {holder.pid} {int(holder.since)} {host}"[:_TAG_MAX]


def parse_holder_tag(text: str) -> Holder | None:
    """The holder ``holder_tag`` wrote, or None for anything else (another application, an empty lock file)."""
    parts = text.strip().split(" ", 3)
    if len(parts) != 4 or parts[0] != _TAG_PREFIX or not parts[1].isdigit() or not parts[2].isdigit():
        return None
    return Holder(host=parts[3], pid=int(parts[1]), since=float(parts[2]))


def describe_holder(holder: Holder | None) -> str:
    """``host H, pid P, since 2027-01-15 08:00:00 UTC`` for the refusal line."""
    if holder is None:
        return "its host and pid are not known (it may be starting, or be another program)"
    since = datetime.fromtimestamp(holder.since, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"host {holder.host}, pid {holder.pid}, since {since}"


# --- taking the lock -------------------------------------------------------------------------------------


def take_database_lock(url: str, *, clock: Clock) -> DatabaseLock:
    """Take the controller lock of the database at ``url``, or raise ``DatabaseHeldError`` naming its holder.
    ``UnreachableError`` when the database (or the lock file's directory) cannot be reached."""
    parsed = engine_url(url)
    shown = parsed.render_as_string(hide_password=True)
    me = Holder(host=socket.gethostname(), pid=os.getpid(), since=clock.now())
    if parsed.drivername.startswith("postgresql"):
        return _AdvisoryLock.take(parsed, shown, me)
    if parsed.database in (None, "", ":memory:"):
        return _NoLock()
    return _FileLock.take(Path(parsed.database).resolve(), shown, me)


class _NoLock:
    def release(self) -> None:
        pass


class _FileLock:
    def __init__(self, fd: int | None) -> None:
        self._fd = fd

    @classmethod
    def take(cls, database: Path, shown: str, me: Holder) -> _FileLock:
        path = database.with_name(database.name + LOCK_FILE_SUFFIX)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise _unusable_lock_file(shown, path, exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            written = os.pread(fd, 256, 0).decode("ascii", errors="replace")
            os.close(fd)
            raise DatabaseHeldError(shown, parse_holder_tag(written)) from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{holder_tag(me)}\n".encode("ascii"), 0)
        except OSError as exc:
            os.close(fd)
            raise _unusable_lock_file(shown, path, exc) from None
        return cls(fd)

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)  # the next refused controller must not name a holder that is gone
        os.close(fd)  # closing frees the flock


def _unusable_lock_file(shown: str, path: Path, exc: OSError) -> UnreachableError:
    return UnreachableError(
        "database",
        shown,
        f"cannot use the lock file {path}: {exc.strerror}; "
        "check that the database's directory exists and is writable (EDGEFLEET_DATABASE_URL)",
    )


# The holder of the key in this database: a bigint key shows in pg_locks as classid (high half), objid (low half)
# and objsubid 1.
_HOLDER_QUERY: Final = sa.text(
    "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND l.classid::bigint = :high AND l.objid::bigint = :low"
)


class _AdvisoryLock:
    def __init__(self, engine: Engine, connection: Connection) -> None:
        self._engine = engine
        self._connection: Connection | None = connection

    @classmethod
    def take(cls, url: sa.URL, shown: str, me: Holder) -> _AdvisoryLock:
        keepalives = (
            f"-c tcp_keepalives_idle={KEEPALIVE_IDLE_S} -c tcp_keepalives_interval={KEEPALIVE_INTERVAL_S} "
            f"-c tcp_keepalives_count={KEEPALIVE_COUNT}"
        )
        engine = sa.create_engine(
            url,
            poolclass=NullPool,  # one connection, closed for good on release
            isolation_level="AUTOCOMMIT",
            connect_args={
                "connect_timeout": POSTGRES_CONNECT_TIMEOUT_S,
                # Named from the start: no moment where the lock is held by a session without a name.
                "application_name": holder_tag(me),
                "options": keepalives,
            },
        )
        try:
            connection = engine.connect()
        except SQLAlchemyError as exc:
            engine.dispose()
            raise UnreachableError(
                "database",
                shown,
                f"{_first_line(exc)}; check that PostgreSQL runs there and lets this user in (EDGEFLEET_DATABASE_URL)",
            ) from exc
        try:
            taken = connection.execute(sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": CONTROLLER_LOCK_KEY})
            if not taken.scalar_one():
                key = CONTROLLER_LOCK_KEY & 0xFFFF_FFFF_FFFF_FFFF
                row = connection.execute(_HOLDER_QUERY, {"high": key >> 32, "low": key & 0xFFFF_FFFF}).first()
                raise DatabaseHeldError(shown, parse_holder_tag(row[0] or "") if row else None)
        except SQLAlchemyError as exc:
            connection.close()
            engine.dispose()
            raise StoreError(f"database {shown}: failed to take the controller lock: {_first_line(exc)}") from exc
        except BaseException:
            connection.close()
            engine.dispose()
            raise
        return cls(engine, connection)

    def release(self) -> None:
        if self._connection is None:
            return
        connection, self._connection = self._connection, None
        # Ending the session frees the lock; a session already gone (PostgreSQL restarted) has freed it.
        with contextlib.suppress(SQLAlchemyError):
            connection.close()
        self._engine.dispose()


def _first_line(exc: BaseException) -> str:
    cause = getattr(exc, "orig", None) or exc
    text = str(cause).strip().splitlines()
    return text[0][:300] if text else type(cause).__name__
