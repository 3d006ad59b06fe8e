"""Who leads a database: one leader among the controllers that share it, and the fence on the leader's writes.

Why: every controller on a database hears the whole fleet (each has its own plain broker subscription) and serves
reads, but only one may write the fleet state, run the alert passes, send notifications and reconcile rollouts;
two would send each notification twice. ``Controller`` asks ``take_leadership`` first thing, and the answer is a
``Leadership``: ``leader`` (whether this controller leads now), ``epoch``, ``fence`` (called at the start of every
fenced write transaction) and ``view`` (who leads, since when, for /healthz and ``edgefleet cloud status``:
answered from the election's own last read of the lease row, so a probe opens no session).

PostgreSQL (``Election``): replicas share the database and elect a leader through the one row of ``leader_lease``
(migration 0007): ``epoch`` (the fencing epoch, +1 at every takeover), the holder's tag and address, ``since`` and
``expires_at``. Every time is the DATABASE's ``now()``: replicas' clocks are never compared. The times below are
the default lease's (6 s); an operator may set another length (``EDGEFLEET_LEADER_LEASE``), and ``LeaseTiming``
derives the others from it in the same proportions.

- A candidate tries every ``CONTEND_EVERY_S``: ``UPDATE ... SET epoch = epoch + 1 ... WHERE expires_at < now()``.
  One statement: two candidates cannot both win. A candidate that does not hear its broker waits
  ``DEAF_GRACE_S`` more, so a replica that hears the fleet wins when there is one.
- The leader renews every ``RENEW_EVERY_S``: ``SET expires_at = now() + LEASE_S WHERE epoch = :mine``. No row
  means another replica took over: the leader steps down at once. It also counts itself leader only until
  ``local_deadline``: the local monotonic time it sent its last successful renewal, plus ``LEASE_S`` less
  ``CLOCK_MARGIN_S``. The database set ``expires_at`` no earlier than that send, so the old leader stops
  believing before any candidate can take over, whatever pauses it (a SIGSTOP, a swap storm, a cut network).
- A clean stop sets ``expires_at`` to the past: a successor takes over at its next try. A leader killed with -9
  or frozen is replaced once its lease runs out: at most ``LEASE_S`` + ``CONTEND_EVERY_S`` (docs/reliability.md).
- The fence: each fenced write transaction first reads the lease row ``FOR KEY SHARE`` and is refused
  (``NotLeaderError``) unless its epoch is this leader's and the local deadline holds. ``epoch`` has a unique
  index, so a takeover's UPDATE of it needs the row's FOR UPDATE lock, which waits for every fenced transaction in
  flight; a write either commits before the takeover or sees the new epoch and is refused. Renewals change no
  key column and never wait for the writers. A takeover blocked longer than ``TAKEOVER_LOCK_WAIT_S`` (a leader
  frozen inside a fenced transaction, whose lease has run out) ends the blocking sessions.

Why not the advisory lock the single-controller guard used: it is freed at once when the leader's session ends,
but the session also ends when the network between the leader and PostgreSQL is cut, while the leader lives and
still believes it leads; a successor taking over at once would overlap it. Waiting out the lease is the price of
never overlapping: a -9 takeover takes up to ``LEASE_S``, well inside the 15 s target.

SQLite (``SoleLeadership``): one host only (WAL's index is shared memory), and a second controller on the same
file is refused at start, as before: an OS lock (``flock``) on ``<database>-controller.lock`` beside the database,
with the holder written into the file, freed by the kernel the moment the process dies. A standby on the same host
would add nothing a process supervisor's restart does not. The lock is the fence: the holder is always leader,
epoch 1. SQLite in memory: every process has its own database; nothing to lock.

Pure: the holder's tag (``holder_tag``/``parse_holder_tag``), the lease arithmetic (``local_deadline``,
``contend_grace``, ``takeover_within``) and the messages; I/O: the lease row, the election's thread and the lock
file.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, NamedTuple, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from edgefleet.clock import Clock
from edgefleet.cloud.settings import DEFAULT_LEADER_LEASE_S, check_leader_lease
from edgefleet.cloud.store import POSTGRES_CONNECT_TIMEOUT_S, StoreError, engine_url
from edgefleet.errors import EdgefleetError, UnreachableError

log = logging.getLogger(__name__)

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
        raise ValueError("PostgreSQL databases are led by election (Election), not locked")
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


def _first_line(exc: BaseException) -> str:
    cause = getattr(exc, "orig", None) or exc
    text = str(cause).strip().splitlines()
    return text[0][:300] if text else type(cause).__name__


# --- leadership ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LeaseTiming:
    """The election's times, all derived from one: ``lease_s``, how long a lease runs from its holder's last
    renewal by the database's clock, the longest a frozen or killed leader blocks its successor (the operator's
    ``EDGEFLEET_LEADER_LEASE``, default 6 s: short next to the 15 s takeover target, long next to a renewal's round
    trip). The rest keep the proportions the default was reasoned with, whatever the length:

    - ``renew_every_s`` (a sixth: 1 s): the leader renews this often, so a lease survives five failed renewals (a
      database blip) before it runs out;
    - ``contend_every_s`` (a twelfth: 0.5 s): a candidate tries this often, so a takeover comes at most this long
      after the lease ran out;
    - ``clock_margin_s`` (a sixth: 1 s): what the leader takes off its own deadline for its clock running faster
      than the database's over one lease: a clock up to 1/6 fast (1,000 ppm drifts 6 ms in 6 s);
    - ``statement_timeout_s`` (a half: 3 s): no statement of the election's own hangs its thread past a few
      renewals;
    - ``takeover_lock_wait_s`` (a third: 2 s): a takeover waits this long for the fenced transactions in flight
      (each takes milliseconds); longer means the old leader is frozen inside one, and its sessions are ended. Below
      the statement timeout, so that the lock wait is what ends first."""

    lease_s: float = DEFAULT_LEADER_LEASE_S

    def __post_init__(self) -> None:
        check_leader_lease(self.lease_s, name="lease_s")

    @property
    def renew_every_s(self) -> float:
        return self.lease_s / 6

    @property
    def contend_every_s(self) -> float:
        return self.lease_s / 12

    @property
    def clock_margin_s(self) -> float:
        return self.lease_s / 6

    @property
    def statement_timeout_s(self) -> float:
        return self.lease_s / 2

    @property
    def takeover_lock_wait_s(self) -> float:
        return self.lease_s / 3


DEFAULT_TIMING: Final = LeaseTiming()
# The default's times, by name (docs and tests quote them).
LEASE_S: Final = DEFAULT_TIMING.lease_s
RENEW_EVERY_S: Final = DEFAULT_TIMING.renew_every_s
CONTEND_EVERY_S: Final = DEFAULT_TIMING.contend_every_s
CLOCK_MARGIN_S: Final = DEFAULT_TIMING.clock_margin_s
TAKEOVER_LOCK_WAIT_S: Final = DEFAULT_TIMING.takeover_lock_wait_s
ELECTION_STATEMENT_TIMEOUT_S: Final = DEFAULT_TIMING.statement_timeout_s
# A candidate that does not hear its broker lets a lease lie expired this long before taking it, so a replica that
# hears the fleet wins whenever there is one; a leader that has not heard its broker this long steps down. About
# the broker's keepalive, not the lease: it does not follow the lease's length.
DEAF_GRACE_S: Final = 5.0
# ``view`` answers from what the election's thread last read of the lease row (after each step, on its own session)
# while that is at most this old: a step that hangs its whole statement timeout and the next try still fit. Older
# means the database has not answered the election for that long, and ``view`` says so: a /healthz probe reports a
# database outage within this, and costs the database nothing (issue 19: a probe opened a session each time).
# For another lease length: ``view_fresh_s(timing)``.
VIEW_FRESH_S: Final = ELECTION_STATEMENT_TIMEOUT_S + RENEW_EVERY_S + 1.0


def view_fresh_s(timing: LeaseTiming) -> float:
    """How old the election's last read of the lease row may be for ``view`` to answer from it (``VIEW_FRESH_S``)."""
    return timing.statement_timeout_s + timing.renew_every_s + 1.0


LEASE_TABLE: Final = "leader_lease"
_LEASE = sa.Table(
    LEASE_TABLE,
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    # Unique so that changing it needs the row's FOR UPDATE lock, which waits for every fenced transaction.
    sa.Column("epoch", sa.BigInteger, nullable=False, unique=True),
    sa.Column("holder", sa.String(63), nullable=True),
    sa.Column("address", sa.String(255), nullable=True),
    sa.Column("since", sa.DateTime(timezone=True), nullable=True),
    sa.Column("renewed_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
)
# For the models the migrations are compared with (``migrating.model_metadata``).
TABLES: Final = (_LEASE,)


class NotLeaderError(EdgefleetError):
    """A write this controller may make only as the leader: it is a standby now, or its epoch was superseded."""


@dataclass(frozen=True, slots=True)
class LeaderView:
    """Who leads the database, as /healthz and ``edgefleet cloud status`` show it: ``leader`` (its tag's holder,
    None when nobody leads), its ``address`` (where its API listens, when it said), the ``epoch`` and ``since``
    (seconds since the epoch, the database's clock), and whether this controller ``is_me``."""

    leader: Holder | None
    address: str | None
    epoch: int
    since: float | None
    is_me: bool
    expires_in_s: float | None


class Leadership(Protocol):
    """Whether this controller leads, with the fence its writes go through."""

    @property
    def leader(self) -> bool: ...

    @property
    def epoch(self) -> int | None: ...

    def fence(self, connection: Connection) -> None:
        """Raise ``NotLeaderError`` unless this controller leads; in the write's own transaction."""

    def view(self) -> LeaderView: ...

    def contend(self) -> bool:
        """Try to lead now (the controller asks again once its schema is migrated); True when it leads."""
        ...

    def start(
        self,
        on_elected: Callable[[int], None],
        on_deposed: Callable[[str], None],
        hears_broker: Callable[[], bool] = lambda: True,
    ) -> None:
        """Call ``on_elected(epoch)`` whenever this controller becomes the leader (now, when it is), and
        ``on_deposed(why)`` when it stops being it; ``hears_broker`` says whether its ingest is connected."""

    def stop(self) -> None: ...


def local_deadline(renewal_sent_at: float, timing: LeaseTiming = DEFAULT_TIMING) -> float:
    """Until when (local monotonic) a leader may act on a renewal it sent at ``renewal_sent_at``: the database
    set the lease's end at ``now() + lease_s`` no earlier than the send, so this ends before it does."""
    return renewal_sent_at + timing.lease_s - timing.clock_margin_s


def contend_grace(*, hears_broker: bool) -> float:
    """How long past its end a candidate lets a lease lie before taking it (0 when it hears its broker)."""
    return 0.0 if hears_broker else DEAF_GRACE_S


def takeover_within(timing: LeaseTiming = DEFAULT_TIMING) -> float:
    """The longest from a leader's last renewal to its successor's takeover, for a successor that hears."""
    return timing.lease_s + timing.contend_every_s


def should_step_down_deaf(*, deaf_for_s: float | None, elected_deaf: bool) -> bool:
    """A leader steps down when it has not heard its broker for ``DEAF_GRACE_S``, unless it was elected deaf
    (then no replica heard better, and stepping down would only hand the lease round)."""
    return deaf_for_s is not None and deaf_for_s >= DEAF_GRACE_S and not elected_deaf


class SoleLeadership:
    """SQLite: the lock file's holder leads, alone, at epoch 1 (the flock is the fence). ``lock`` None: nothing to
    release (an in-memory database, a test's controller)."""

    def __init__(self, lock: DatabaseLock | None, me: Holder, address: str | None) -> None:
        self._lock = lock
        self._me = me
        self._address = address

    @property
    def leader(self) -> bool:
        return True

    @property
    def epoch(self) -> int | None:
        return 1

    def fence(self, connection: Connection) -> None:
        pass

    def view(self) -> LeaderView:
        return LeaderView(self._me, self._address, 1, self._me.since, True, None)

    def contend(self) -> bool:
        return True

    def start(
        self,
        on_elected: Callable[[int], None],
        on_deposed: Callable[[str], None],
        hears_broker: Callable[[], bool] = lambda: True,
    ) -> None:
        on_elected(1)

    def stop(self) -> None:
        if self._lock is not None:
            self._lock.release()


def take_leadership(
    url: str, *, clock: Clock, address: str | None = None, timing: LeaseTiming = DEFAULT_TIMING
) -> Leadership:
    """SQLite: the lock file (``DatabaseHeldError`` when another controller holds it). PostgreSQL: an ``Election``
    that has made its first try (so a lone controller leads before it starts), ``UnreachableError`` when the
    database cannot be reached. ``address``: where this controller's API listens, shown to standbys' clients;
    ``timing``: the lease's length and the times derived from it (``LeaseTiming``; SQLite has no lease)."""
    parsed = engine_url(url)
    me = Holder(host=socket.gethostname(), pid=os.getpid(), since=clock.now())
    if parsed.drivername.startswith("postgresql"):
        # It hears its broker as far as the first try goes: nothing is connected yet, and a lone controller that
        # starts after a clean stop must lead at once (``start`` gives the ingest's own answer).
        election = Election(parsed, me, address=address, hears_broker=lambda: True, timing=timing)
        election.contend()
        with contextlib.suppress(StoreError):  # the thread reads it again after its first step
            election.observe()
        # Renewing from now on: a controller that leads before it starts (a test's, a slow start) keeps its lease.
        election.run()
        return election
    return SoleLeadership(take_database_lock(url, clock=clock), me, address)


_TAKE_OVER: Final = sa.text(
    "UPDATE leader_lease SET epoch = epoch + 1, holder = :holder, address = :address, since = now(), "
    "renewed_at = now(), expires_at = now() + make_interval(secs => :lease_s) "
    "WHERE id = 1 AND expires_at < now() - make_interval(secs => :grace_s) RETURNING epoch"
)
_RENEW: Final = sa.text(
    "UPDATE leader_lease SET renewed_at = now(), expires_at = now() + make_interval(secs => :lease_s) "
    "WHERE id = 1 AND epoch = :epoch RETURNING epoch"
)
_RELEASE: Final = sa.text(
    "UPDATE leader_lease SET expires_at = now() - interval '1 second' WHERE id = 1 AND epoch = :epoch"
)
_FENCE: Final = sa.text("SELECT epoch FROM leader_lease WHERE id = 1 FOR KEY SHARE")
_VIEW: Final = sa.text(
    "SELECT epoch, holder, address, extract(epoch from since) AS since, "
    "extract(epoch from expires_at - now()) AS expires_in FROM leader_lease WHERE id = 1"
)
# The sessions that hold a lock on the lease row's table other than this one: a frozen old leader's fenced writes.
_END_BLOCKERS: Final = sa.text(
    "SELECT pg_terminate_backend(pid) FROM pg_locks "
    "WHERE relation = 'leader_lease'::regclass AND granted AND pid <> pg_backend_pid()"
)
_LOCK_NOT_AVAILABLE: Final = "55P03"


class _LeaseRow(NamedTuple):
    """The lease row as ``_VIEW`` reads it; ``expires_in`` in seconds by the database's clock (negative: ran out)."""

    epoch: int
    holder: str | None
    address: str | None
    since: float | None
    expires_in: float


class Election:
    """PostgreSQL: one replica's part in the election (module docstring). ``contend`` and ``renew`` are one step
    each (tests call them); ``start`` runs them on a thread of its own until ``stop``."""

    def __init__(
        self,
        url: sa.URL,
        me: Holder,
        *,
        address: str | None,
        hears_broker: Callable[[], bool],
        monotonic: Callable[[], float] = time.monotonic,
        timing: LeaseTiming = DEFAULT_TIMING,
    ) -> None:
        self._shown = url.render_as_string(hide_password=True)
        self._me = me
        self._tag = holder_tag(me)
        self._address = address
        # The real monotonic clock, not the controller's: the lease is judged against PostgreSQL's real now(),
        # which no test clock moves.
        self._monotonic = monotonic
        self._hears_broker = hears_broker
        self.timing = timing
        timeouts = (
            f"-c statement_timeout={int(timing.statement_timeout_s * 1000)} "
            f"-c lock_timeout={int(timing.takeover_lock_wait_s * 1000)}"
        )
        self._engine: Engine = sa.create_engine(
            url,
            poolclass=NullPool,
            isolation_level="AUTOCOMMIT",
            connect_args={
                "connect_timeout": POSTGRES_CONNECT_TIMEOUT_S,
                "application_name": self._tag,
                "options": timeouts,
            },
        )
        self._connection: Connection | None = None
        self._io_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._epoch: int | None = None
        self._deadline = 0.0
        self._elected_deaf = False
        self._deaf_since: float | None = None
        self._contend_failing = False
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._on_elected: Callable[[int], None] = lambda epoch: None
        self._on_deposed: Callable[[str], None] = lambda why: None
        # The lease row as the election last read it, and the local monotonic time of the read: what ``view``
        # answers from (``is_me`` is judged against the epoch at the time of asking).
        self._seen: tuple[_LeaseRow, float] | None = None
        self.takeovers = 0
        try:
            self._connect()
        except UnreachableError:
            self._engine.dispose()
            raise

    # --- what others ask ---------------------------------------------------------------------------------

    @property
    def leader(self) -> bool:
        with self._state_lock:
            return self._epoch is not None and self._monotonic() < self._deadline

    @property
    def epoch(self) -> int | None:
        with self._state_lock:
            return self._epoch

    def fence(self, connection: Connection) -> None:
        mine = self.epoch
        if mine is None or not self.leader:
            raise NotLeaderError(f"this controller does not lead the database {self._shown} now")
        current = connection.execute(_FENCE).scalar_one()
        if current != mine:
            self._deposed(f"epoch {mine} superseded by epoch {current}")
            raise NotLeaderError(f"this controller's epoch {mine} was superseded by epoch {current}: it stepped down")
        if not self.leader:  # the row lock may have waited past the deadline
            raise NotLeaderError(f"this controller's lease on the database {self._shown} ran out")

    def view(self) -> LeaderView:
        """Who leads, from the election's last read of the lease row while it is fresh (``view_fresh_s``): a probe
        opens no session and never waits for the database. ``StoreError`` when the election's thread has not read
        it for longer (the database is away or hangs). Read now, on the election's session, only when its thread
        does not run (tests that step it)."""
        with self._state_lock:
            seen = self._seen
        now = self._monotonic()
        if seen is not None and now - seen[1] <= view_fresh_s(self.timing):
            return self._view_of(seen[0], age_s=now - seen[1])
        if self._thread is not None:
            since = "since it started" if seen is None else f"for {now - seen[1]:.0f} s"
            raise StoreError(
                f"database {self._shown}: the election has not read the leader lease {since}; "
                "check that PostgreSQL runs and answers (the controller's log says what failed)"
            )
        with self._io_lock:
            row = self._observe_alone()
        return self._view_of(row, age_s=0.0)

    def observe(self) -> None:
        """Read the lease row on the election's session for ``view`` (the thread does after each step, a takeover
        before it counts itself leader); ``StoreError`` when the database does not answer."""
        with self._io_lock:
            self._observe_alone()

    def _observe_alone(self) -> _LeaseRow:
        try:
            connection = self._connect()
            got = connection.execute(_VIEW).mappings().one()
            row = _LeaseRow(
                epoch=int(got["epoch"]),
                holder=got["holder"],
                address=got["address"],
                since=None if got["since"] is None else float(got["since"]),
                expires_in=float(got["expires_in"]),
            )
        except (SQLAlchemyError, UnreachableError) as exc:
            self._drop_connection()
            raise StoreError(f"database {self._shown}: failed to read the leader lease: {_first_line(exc)}") from exc
        with self._state_lock:
            self._seen = (row, self._monotonic())
        return row

    def _view_of(self, row: _LeaseRow, *, age_s: float) -> LeaderView:
        """The view of a lease row read ``age_s`` ago: the lease has run that much further since."""
        expires_in = row.expires_in - age_s
        live = expires_in > 0
        holder = parse_holder_tag(row.holder or "") if live else None
        return LeaderView(
            leader=holder,
            address=row.address if live else None,
            epoch=row.epoch,
            since=row.since if live else None,
            is_me=live and row.holder == self._tag and row.epoch == self.epoch,
            expires_in_s=round(expires_in, 1) if live else None,
        )

    # --- one step each -------------------------------------------------------------------------------------

    def contend(self) -> bool:
        """Try to take over; True when this replica leads now."""
        if self.epoch is not None:
            return True
        hears = self._hears_broker()
        sent_at = self._monotonic()
        try:
            epoch = self._execute(
                _TAKE_OVER,
                {
                    "holder": self._tag,
                    "address": self._address,
                    "lease_s": self.timing.lease_s,
                    "grace_s": contend_grace(hears_broker=hears),
                },
            )
        except _LockWaitTooLong:
            # The lease ran out and still a session holds the row: a frozen leader inside a fenced write.
            self._end_blockers()
            return False
        except StoreError as exc:
            if not self._contend_failing:  # once per streak: a database away for 30 s is 60 tries
                log.warning(
                    "Failed to contend for leadership; trying again until the database answers",
                    extra={"error": str(exc), "every_s": self.timing.contend_every_s},
                )
            self._contend_failing = True
            return False
        if self._contend_failing:
            log.info("Reached the database again to contend for leadership")
        self._contend_failing = False
        if epoch is None:
            return False
        # Read the row this takeover wrote before counting itself leader: a probe that sees it lead names it too.
        with contextlib.suppress(StoreError):
            self.observe()
        with self._state_lock:
            self._epoch = int(epoch)
            self._deadline = local_deadline(sent_at, self.timing)
            self._elected_deaf = not hears
            self._deaf_since = None
        self.takeovers += 1
        log.warning(
            "Took over as leader",
            extra={"epoch": epoch, "holder": self._tag, "address": self._address, "hears_broker": hears},
        )
        self._on_elected(int(epoch))
        return True

    def renew(self) -> bool:
        """Renew the lease; False when this replica does not lead (any more)."""
        mine = self.epoch
        if mine is None:
            return False
        now = self._monotonic()
        if self._hears_broker():
            self._deaf_since = None
            self._elected_deaf = False
        elif self._deaf_since is None:
            self._deaf_since = now
        deaf_for = None if self._deaf_since is None else now - self._deaf_since
        if should_step_down_deaf(deaf_for_s=deaf_for, elected_deaf=self._elected_deaf):
            self._deposed(f"has not heard its broker for {deaf_for:.0f} s")
            self._release(mine)
            return False
        try:
            renewed = self._execute(_RENEW, {"lease_s": self.timing.lease_s, "epoch": mine})
        except (StoreError, _LockWaitTooLong) as exc:
            if not self.leader:
                self._deposed(f"could not renew its lease before it ran out: {exc}")
                return False
            return True  # the next renewal may get through before the deadline
        if renewed is None:
            self._deposed(f"epoch {mine} was superseded")
            return False
        with self._state_lock:
            if self._epoch == mine:
                self._deadline = local_deadline(now, self.timing)
        return True

    # --- the thread ----------------------------------------------------------------------------------------

    def start(
        self,
        on_elected: Callable[[int], None],
        on_deposed: Callable[[str], None],
        hears_broker: Callable[[], bool] = lambda: True,
    ) -> None:
        self._on_elected = on_elected
        self._on_deposed = on_deposed
        self._hears_broker = hears_broker
        epoch = self.epoch
        if epoch is not None:
            on_elected(epoch)  # the thread may call it too, at the same moment: the controller takes it once
        self.run()

    def run(self) -> None:
        """Renew (or contend) on the election's own thread until ``stop``."""
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name="edgefleet-election", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        timing = self.timing
        while not self._stopping.is_set():
            try:
                if self.epoch is not None:
                    self.renew()
                    wait = timing.renew_every_s
                else:
                    self.contend()
                    wait = timing.renew_every_s if self.epoch is not None else timing.contend_every_s
            except Exception:  # the election's thread must outlive whatever one step does
                log.exception("Failed an election step")
                wait = timing.contend_every_s
            # One more statement on the session the step used (no new connection): what ``view`` answers from. A
            # failure is the step's to report (it failed too, or will at the next try); ``view`` says when stale.
            with contextlib.suppress(StoreError):
                self.observe()
            self._stopping.wait(wait)

    def stop(self) -> None:
        """Stop contending; a leader hands over (its lease ends now, a successor takes over at its next try)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(self.timing.statement_timeout_s * 2)
            self._thread = None
        mine = self.epoch
        with self._state_lock:
            self._epoch = None
        if mine is not None:
            self._release(mine)
        if self._connection is not None:
            with contextlib.suppress(SQLAlchemyError):
                self._connection.close()
            self._connection = None
        self._engine.dispose()

    # --- I/O -------------------------------------------------------------------------------------------------

    def _deposed(self, why: str) -> None:
        with self._state_lock:
            was, self._epoch = self._epoch, None
        if was is None:
            return
        log.warning("Stepped down as leader", extra={"epoch": was, "reason": why})
        self._on_deposed(why)

    def _release(self, epoch: int) -> None:
        with contextlib.suppress(StoreError, _LockWaitTooLong):
            self._execute(_RELEASE, {"epoch": epoch}, returns=False)

    def _connect(self) -> Connection:
        if self._connection is None:
            try:
                self._connection = self._engine.connect()
            except SQLAlchemyError as exc:
                raise UnreachableError(
                    "database",
                    self._shown,
                    f"{_first_line(exc)}; check that PostgreSQL runs there and lets this user in "
                    "(EDGEFLEET_DATABASE_URL)",
                ) from exc
        return self._connection

    def _execute(self, statement: sa.TextClause, params: dict[str, object], *, returns: bool = True) -> int | None:
        """One statement on the election's session (reconnected after a failure); the first column of the first
        row when ``returns``, None when no row came."""
        with self._io_lock:  # the session is the election thread's, but the controller's start contends once too
            return self._execute_alone(statement, params, returns=returns)

    def _execute_alone(self, statement: sa.TextClause, params: dict[str, object], *, returns: bool) -> int | None:
        try:
            connection = self._connect()
        except UnreachableError as exc:
            raise StoreError(str(exc)) from exc
        try:
            result = connection.execute(statement, params)
            value = result.scalar() if returns else None
            return None if value is None else int(value)
        except SQLAlchemyError as exc:
            self._drop_connection()
            if getattr(getattr(exc, "orig", None), "sqlstate", None) == _LOCK_NOT_AVAILABLE:
                raise _LockWaitTooLong from exc
            raise StoreError(f"database {self._shown}: election step failed: {_first_line(exc)}") from exc

    def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(SQLAlchemyError):
                connection.close()

    def _end_blockers(self) -> None:
        try:
            with self._io_lock:
                ended = self._connect().execute(_END_BLOCKERS).fetchall()
        except (SQLAlchemyError, UnreachableError) as exc:
            self._drop_connection()
            log.warning("Failed to end the sessions that block a takeover", extra={"error": str(exc)})
            return
        log.warning("Ended the sessions of a frozen leader that blocked a takeover", extra={"sessions": len(ended)})


class _LockWaitTooLong(Exception):
    """The lease row stayed locked past the takeover's lock wait (PostgreSQL's lock_timeout)."""
