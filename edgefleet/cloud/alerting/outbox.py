"""The persisted outbox: every planned notification is written to the controller's database before it is sent,
together with the planner's state, and stays there until it is delivered or has failed for good.

The controller's alert loop calls, on every pass::

    plan = plan_notifications(transitions, routes, outbox_state, now=now)
    outbox.put(plan.messages, plan.state)                       # one transaction: messages and planner state
    outbox.deliver_due(senders, config.targets, now=now)        # sends what is due, marks each as it goes

and ``load_state`` once at start-up, so the planner resumes where it stopped. The tables live in the database
of the controller's ``store.Store`` and use its engine (SQLite or PostgreSQL); they never leave this module:
callers get ``OutboxEntry`` views.

Guarantees ("a controller restart loses no notification and sends none twice"):
- nothing planned is lost: ``put`` commits the messages and the state that planned them in one transaction, so
  after a crash either both are there or neither is (and then the planner plans the same messages again);
- a message is sent again only when the controller dies in one window: after the receiver answered 2xx and
  before the "delivered" mark is committed. The mark is a one-row UPDATE committed right after each send (never
  batched), so the window is one commit long (about a millisecond on SQLite, one round trip on PostgreSQL) and
  repeats at most the one message per channel that was in flight. Receivers can drop such a repeat by the
  message id (the webhook body carries it);
- per channel, messages go out oldest first and one at a time: a message waiting for a retry holds back the
  newer ones of its channel, so a "resolved" never overtakes its "firing";
- temporary errors are retried with exponential backoff and jitter (``retry_delay``), for at most
  ``MESSAGE_MAX_AGE_S``; permanent errors mark the message failed with its reason, logged once and kept for ops;
- DingTalk's rate limit is kept here too (the planner keeps it when planning; a backlog after an outage could
  otherwise go out in one burst): at most ``dingtalk_per_minute`` requests per robot in any minute.

One controller delivers at a time: the leader (``edgefleet.cloud.leading``). Every write here is fenced by the
leader's epoch, and each send is preceded by a fenced claim that the message is still pending, so a leader that was
frozen while a successor took over sends nothing when it wakes. What is left: a leader frozen between its claim and
the send's first byte (microseconds of code) sends once more; the webhook body's message id lets receivers drop it.
"""

from __future__ import annotations

import logging
import random
import threading
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final, Literal

import msgspec
import sqlalchemy as sa
from sqlalchemy import BigInteger, Column, Index, Integer, LargeBinary, Text
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Field, SQLModel

from edgefleet.cloud.alerting.alerts import AlertKey, StoredAlert
from edgefleet.cloud.alerting.config import ChannelTarget
from edgefleet.cloud.alerting.delivery import PermanentDeliveryError, Sender, TemporaryDeliveryError
from edgefleet.cloud.alerting.notifying import Notification, NotifierState, PendingGroup
from edgefleet.cloud.alerting.rendering import Notice
from edgefleet.cloud.alerting.routes import DEFAULT_DINGTALK_PER_MINUTE, Channel
from edgefleet.cloud.leading import NotLeaderError
from edgefleet.cloud.store import Store

log = logging.getLogger(__name__)

# The first retry comes soon: a webhook that restarts or a proxy that hiccups is back within seconds.
BACKOFF_FIRST_S: Final = 2.0
# Doubling stops at 5 minutes: once a receiver is back, an alert waits at most this long for the next try.
BACKOFF_CAP_S: Final = 300.0
# +-20%: 100 site groups whose robot failed together do not all retry in the same second.
BACKOFF_JITTER: Final = 0.2
# After a day a notification is news no longer (repeats and resolves have followed it): it is marked failed
# unsent instead of arriving a day late.
MESSAGE_MAX_AGE_S: Final = 24 * 3600.0
# Sends run per channel in parallel, so a receiver that times out (5 s) does not hold back the others.
DELIVERY_THREADS: Final = 8
# Messages read per pass; a backlog larger than this drains over the following passes.
PENDING_PER_PASS: Final = 1000
# DingTalk counts a robot's messages over a minute.
RATE_WINDOW_S: Final = 60.0
# What ops can look back on: delivered messages a day, failed ones (which someone must look at) a week.
DELIVERED_KEEP_S: Final = 24 * 3600.0
FAILED_KEEP_S: Final = 7 * 24 * 3600.0
# The persisted planner state's format; another number is read as "no state" (see load_state).
STATE_VERSION: Final = 1
MAX_REASON_CHARS: Final = 1000

EntryState = Literal["pending", "delivered", "failed"]
Outcome = Literal["delivered", "retried", "failed"]
OUTCOMES: Final[tuple[Outcome, ...]] = ("delivered", "retried", "failed")


# --- tables -----------------------------------------------------------------------------------------------


class OutboxMessageRow(SQLModel, table=True):
    __tablename__ = "alert_outbox"
    __table_args__ = (Index("ix_alert_outbox_state_position", "state", "position"),)

    # Insertion order is sending order within a channel. 64 bits on PostgreSQL like the other growing tables.
    position: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    )
    message_id: str = Field(max_length=200, unique=True)
    channel_kind: str = Field(max_length=16)
    channel_name: str = Field(max_length=63)
    # The sites (groups) the message covers, comma-separated, for ops.
    groups: str = Field(sa_type=Text)
    alerts: int
    listed: int
    body: bytes = Field(sa_type=LargeBinary)
    created_at: float
    state: str = Field(max_length=10)
    attempts: int = 0
    next_attempt_at: float
    last_attempt_at: float | None = None
    last_error: str | None = Field(default=None, sa_type=Text)
    delivered_at: float | None = None
    failed_at: float | None = None


class NotifierStateRow(SQLModel, table=True):
    __tablename__ = "alert_notifier_state"

    id: int = Field(primary_key=True)
    version: int
    # Kept outside the blob so that a state that cannot be read any more still gives fresh message ids.
    sequence: int = Field(sa_type=BigInteger)
    state: bytes = Field(sa_type=LargeBinary)


_MESSAGES: Final[sa.Table] = OutboxMessageRow.__table__  # type: ignore[attr-defined]
_STATE: Final[sa.Table] = NotifierStateRow.__table__  # type: ignore[attr-defined]
TABLES: Final = [_MESSAGES, _STATE]
_STATE_ROW_ID: Final = 1


# --- the planner's state on disk --------------------------------------------------------------------------


class _PendingWire(msgspec.Struct, frozen=True):
    channel: Channel
    group: str
    since: float
    # Keyed by each notice's alert key, as the planner keys them.
    notices: list[Notice]


class _StateWire(msgspec.Struct, frozen=True):
    version: int
    sequence: int
    pending: list[_PendingWire]
    group_sent_at: list[tuple[Channel, str, float]]
    sent_at: list[tuple[Channel, tuple[float, ...]]]
    told: list[tuple[Channel, AlertKey, float]]
    # Keyed by each alert's key, as the planner keys them.
    alerts: list[StoredAlert]


_state_encoder = msgspec.json.Encoder()
_state_decoder = msgspec.json.Decoder(_StateWire)


def encode_state(state: NotifierState) -> bytes:
    """The planner's state as JSON (its maps, keyed by tuples, become lists of entries)."""
    wire = _StateWire(
        version=STATE_VERSION,
        sequence=state.sequence,
        pending=[
            _PendingWire(channel, group, pending.since, list(pending.notices.values()))
            for (channel, group), pending in state.pending.items()
        ],
        group_sent_at=[(channel, group, at) for (channel, group), at in state.group_sent_at.items()],
        sent_at=[(channel, times) for channel, times in state.sent_at.items()],
        told=[(channel, key, at) for (channel, key), at in state.told.items()],
        alerts=list(state.alerts.values()),
    )
    return _state_encoder.encode(wire)


def decode_state(data: bytes) -> NotifierState:
    """The state ``encode_state`` wrote; raises ValueError when ``data`` is no state of this version."""
    try:
        wire = _state_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise ValueError(f"the saved notifier state cannot be read: {exc}") from exc
    if wire.version != STATE_VERSION:
        raise ValueError(f"the saved notifier state has version {wire.version}, this controller reads {STATE_VERSION}")
    return NotifierState(
        pending={
            (p.channel, p.group): PendingGroup(p.since, {n.alert.key: n for n in p.notices}) for p in wire.pending
        },
        group_sent_at={(channel, group): at for channel, group, at in wire.group_sent_at},
        sent_at={channel: tuple(times) for channel, times in wire.sent_at},
        told={(channel, key): at for channel, key, at in wire.told},
        alerts={alert.key: alert for alert in wire.alerts},
        sequence=wire.sequence,
    )


# --- backoff ----------------------------------------------------------------------------------------------


def retry_delay(attempts: int, retry_after_s: float | None, rng: random.Random) -> float:
    """Seconds to wait after the ``attempts``-th failed try: BACKOFF_FIRST_S doubled per try up to BACKOFF_CAP_S,
    spread by BACKOFF_JITTER, and never sooner than the receiver's ``retry_after_s``."""
    exponent = min(max(attempts, 1) - 1, 32)  # 2**32 tries is far past the cap; keeps the float finite
    delay = min(BACKOFF_CAP_S, BACKOFF_FIRST_S * 2.0**exponent)
    delay = min(BACKOFF_CAP_S, delay * rng.uniform(1 - BACKOFF_JITTER, 1 + BACKOFF_JITTER))
    return max(delay, retry_after_s or 0.0)


# --- what callers see -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One message in the outbox, for ops (the API, the CLI) and tests."""

    message_id: str
    channel: Channel
    groups: tuple[str, ...]
    alerts: int
    state: EntryState
    attempts: int
    created_at: float
    next_attempt_at: float
    last_attempt_at: float | None
    last_error: str | None
    delivered_at: float | None
    failed_at: float | None


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What one ``deliver_due`` pass did. ``throttled``: messages due but held back by a DingTalk robot's rate."""

    delivered: int = 0
    retried: int = 0
    failed: int = 0
    throttled: int = 0


@dataclass(slots=True)
class _Row:
    position: int
    message_id: str
    channel: Channel
    groups: tuple[str, ...]
    listed: int
    body: bytes
    created_at: float
    attempts: int
    next_attempt_at: float

    def notification(self) -> Notification:
        # The notices are not kept: the body already carries them, and a sender sends the body.
        return Notification(self.message_id, self.channel, self.groups, (), self.body, self.created_at, self.listed)


@dataclass(slots=True)
class _Pass:
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    throttled: int = 0


# --- the outbox -------------------------------------------------------------------------------------------


class Outbox:
    """The notification outbox in ``store``'s database. ``put`` and ``deliver_due`` are meant for one thread
    (the alert loop); ``entries``, ``backlog`` and ``counters`` may be read from any."""

    def __init__(
        self,
        store: Store,
        *,
        dingtalk_per_minute: int = DEFAULT_DINGTALK_PER_MINUTE,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.dingtalk_per_minute = dingtalk_per_minute
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._counters: Counter[tuple[Outcome, str]] = Counter()
        # What the database holds, so an unchanged state is not written again on every quiet pass.
        self._saved_state: bytes | None = None
        # Request times per DingTalk robot (channel name) in the last minute; seeded from the database.
        self._robot_attempts: dict[str, deque[float]] | None = None

    def __repr__(self) -> str:
        return f"Outbox({self.store.url_shown!r})"

    def create_schema(self) -> None:
        """Create the outbox's tables when they are missing (existing ones are left as they are):
        for tests of this store alone. The controller migrates instead (``edgefleet.cloud.migrating``)."""
        with self.store.transaction("create the outbox tables") as connection:
            SQLModel.metadata.create_all(connection, tables=TABLES)

    # --- writing --------------------------------------------------------------------------------------------

    def put(self, notifications: Sequence[Notification], state: NotifierState) -> None:
        """Accept ``notifications`` for delivery and save the planner ``state`` that planned them, in one
        transaction. Putting a message id that is already in the outbox again is a no-op for that message."""
        encoded = encode_state(state)
        if not notifications and encoded == self._saved_state:
            return
        rows = [_message_row(n) for n in notifications]
        state_row = {"id": _STATE_ROW_ID, "version": STATE_VERSION, "sequence": state.sequence, "state": encoded}
        with self.store.transaction("put notifications in the outbox", fenced=True) as connection:
            if rows:
                insert = self._insert(_MESSAGES).on_conflict_do_nothing(index_elements=[_MESSAGES.c.message_id])
                connection.execute(insert, rows)
            if encoded != self._saved_state:
                upsert = self._insert(_STATE)
                connection.execute(
                    upsert.on_conflict_do_update(
                        index_elements=[_STATE.c.id],
                        set_={name: upsert.excluded[name] for name in ("version", "sequence", "state")},
                    ),
                    state_row,
                )
        self._saved_state = encoded

    def accept(self, notifications: Sequence[Notification]) -> None:
        """Accept ``notifications`` planned outside the alert planner (a rollout's news, ``rollouts.announcing``)
        for delivery, in one transaction; the planner's state is not touched. A message id already in the outbox
        is a no-op for that message, so a caller that plans the same ids again after a failure sends each once.
        Safe to call from another thread than ``put``'s (one statement in a transaction of its own)."""
        if not notifications:
            return
        insert = self._insert(_MESSAGES).on_conflict_do_nothing(index_elements=[_MESSAGES.c.message_id])
        with self.store.transaction("accept notifications in the outbox", fenced=True) as connection:
            connection.execute(insert, [_message_row(n) for n in notifications])

    def _insert(self, table: sa.Table) -> Any:
        return sqlite.insert(table) if self.store.dialect == "sqlite" else postgresql.insert(table)

    def load_state(self) -> NotifierState:
        """The planner state saved by the last ``put``, or a fresh one. A state this controller cannot read (an
        older format) is logged and replaced by a fresh one that keeps the message numbering; the outbox's
        messages are unaffected."""
        with self.store.transaction("load the notifier state") as connection:
            row = connection.execute(sa.select(_STATE).where(_STATE.c.id == _STATE_ROW_ID)).mappings().first()
        if row is None:
            return NotifierState()
        data = bytes(row["state"])
        try:
            state = decode_state(data)
        except ValueError as exc:
            log.warning(
                "Dropped unreadable notifier state",
                extra={"database": self.store.url_shown, "error": str(exc)[:300]},
            )
            return NotifierState(sequence=int(row["sequence"]))
        self._saved_state = data
        return state

    # --- delivering -----------------------------------------------------------------------------------------

    def deliver_due(
        self, senders: Mapping[str, Sender], targets: Mapping[str, ChannelTarget], *, now: float
    ) -> DeliveryReport:
        """Send every message due at ``now``, oldest first per channel, channels in parallel; mark each right
        after its send. ``senders`` by channel kind, ``targets`` by channel name (``NotificationConfig``'s)."""
        with self.store.transaction("read the due notifications") as connection:
            result = connection.execute(
                sa.select(_MESSAGES)
                .where(_MESSAGES.c.state == "pending")
                .order_by(_MESSAGES.c.position)
                .limit(PENDING_PER_PASS)
            )
            pending = [_row(r) for r in result.mappings()]
        queues: dict[Channel, list[_Row]] = {}
        for row in pending:
            queues.setdefault(row.channel, []).append(row)
        # Only a channel whose oldest message is due has work: the others wait behind it.
        due = [rows for rows in queues.values() if rows[0].next_attempt_at <= now]
        if not due:
            return DeliveryReport()
        if any(rows[0].channel.kind == "dingtalk" for rows in due):
            self._seed_robot_attempts(now)
        passes: list[_Pass]
        if len(due) == 1:
            passes = [self._deliver_channel(due[0], senders, targets, now)]
        else:
            with ThreadPoolExecutor(
                max_workers=min(DELIVERY_THREADS, len(due)), thread_name_prefix="edgefleet-deliver"
            ) as pool:
                passes = list(pool.map(lambda rows: self._deliver_channel(rows, senders, targets, now), due))
        return DeliveryReport(
            delivered=sum(p.delivered for p in passes),
            retried=sum(p.retried for p in passes),
            failed=sum(p.failed for p in passes),
            throttled=sum(p.throttled for p in passes),
        )

    def _deliver_channel(
        self, rows: Sequence[_Row], senders: Mapping[str, Sender], targets: Mapping[str, ChannelTarget], now: float
    ) -> _Pass:
        done = _Pass()
        for i, row in enumerate(rows):
            if row.next_attempt_at > now:
                break
            channel = row.channel
            if now - row.created_at > MESSAGE_MAX_AGE_S:
                self._fail(row, f"not delivered within {MESSAGE_MAX_AGE_S / 3600:g} h; given up", now)
                done.failed += 1
                continue
            target = targets.get(channel.name)
            sender = senders.get(channel.kind)
            if target is None or target.channel != channel or sender is None:
                self._fail(row, _unconfigured(channel, target, sender), now)
                done.failed += 1
                continue
            if channel.kind == "dingtalk" and not self._take_robot_slot(channel.name, now):
                done.throttled += sum(1 for r in rows[i:] if r.next_attempt_at <= now)
                break
            if not self._claim(row):
                break  # another leader took over (or delivered it): this one sends nothing more
            try:
                sender.deliver(row.notification(), target)
            except TemporaryDeliveryError as exc:
                self._retry(row, exc.reason, exc.retry_after_s, now)
                done.retried += 1
                break
            except PermanentDeliveryError as exc:
                self._fail(row, exc.reason, now)
                done.failed += 1
                continue
            except Exception as exc:
                # A sender's bug must not lose the message or stop the loop: kept and tried again later.
                log.exception(
                    "Failed to deliver notification", extra={"channel": str(channel), "notification": row.message_id}
                )
                self._retry(row, f"the sender failed: {type(exc).__name__}: {str(exc)[:200]}", None, now)
                done.retried += 1
                break
            self._mark_delivered(row, now)
            done.delivered += 1
        return done

    def _claim(self, row: _Row) -> bool:
        """Right before a send: this controller still leads (the fence, in the transaction) and the message is still
        pending (a successor may have sent it while this one was frozen). A refusal is logged, never raised: the
        worker stops sending and the controller steps down (``leading``)."""
        try:
            with self.store.transaction("claim a notification to send", fenced=True) as connection:
                state = connection.execute(
                    sa.select(_MESSAGES.c.state).where(_MESSAGES.c.position == row.position)
                ).scalar_one_or_none()
        except NotLeaderError as exc:
            log.warning(
                "Did not send notification: no longer the leader",
                extra={"channel": str(row.channel), "notification": row.message_id, "reason": str(exc)},
            )
            return False
        return state == "pending"

    def _mark_delivered(self, row: _Row, now: float) -> None:
        # Committed at once and alone: this commit is the whole window in which a crash repeats the message.
        with self.store.transaction("mark a notification delivered", fenced=True) as connection:
            connection.execute(
                sa.update(_MESSAGES)
                .where(_MESSAGES.c.position == row.position)
                .values(state="delivered", attempts=row.attempts + 1, last_attempt_at=now, delivered_at=now)
            )
        self._count("delivered", row.channel)
        log.info(
            "Delivered notification",
            extra={"channel": str(row.channel), "notification": row.message_id, "attempts": row.attempts + 1},
        )

    def _retry(self, row: _Row, reason: str, retry_after_s: float | None, now: float) -> None:
        attempts = row.attempts + 1
        delay = retry_delay(attempts, retry_after_s, self._rng)
        with self.store.transaction("reschedule a notification", fenced=True) as connection:
            connection.execute(
                sa.update(_MESSAGES)
                .where(_MESSAGES.c.position == row.position)
                .values(attempts=attempts, last_attempt_at=now, next_attempt_at=now + delay, last_error=_clip(reason))
            )
        self._count("retried", row.channel)
        log.warning(
            "Postponed notification after a failed send",
            extra={
                "channel": str(row.channel),
                "notification": row.message_id,
                "attempts": attempts,
                "retry_in_s": round(delay, 1),
                "reason": reason,
            },
        )

    def _fail(self, row: _Row, reason: str, now: float) -> None:
        with self.store.transaction("mark a notification failed", fenced=True) as connection:
            connection.execute(
                sa.update(_MESSAGES)
                .where(_MESSAGES.c.position == row.position)
                .values(state="failed", failed_at=now, last_error=_clip(reason))
            )
        self._count("failed", row.channel)
        log.error(
            "Gave up on notification",
            extra={
                "channel": str(row.channel),
                "notification": row.message_id,
                "groups": list(row.groups),
                "reason": reason,
            },
        )

    def _count(self, outcome: Outcome, channel: Channel) -> None:
        with self._lock:
            self._counters[outcome, channel.kind] += 1

    def _seed_robot_attempts(self, now: float) -> None:
        """Learn, once per outbox, which robots were sent to in the last minute (by a controller before a restart)."""
        if self._robot_attempts is not None:
            return
        with self.store.transaction("read the recent DingTalk sends") as connection:
            recent = connection.execute(
                sa.select(_MESSAGES.c.channel_name, _MESSAGES.c.last_attempt_at)
                .where(_MESSAGES.c.channel_kind == "dingtalk", _MESSAGES.c.last_attempt_at > now - RATE_WINDOW_S)
                .order_by(_MESSAGES.c.last_attempt_at)
            ).all()
        attempts: dict[str, deque[float]] = {}
        for name, at in recent:
            attempts.setdefault(name, deque()).append(at)
        with self._lock:
            if self._robot_attempts is None:
                self._robot_attempts = attempts

    def _take_robot_slot(self, robot: str, now: float) -> bool:
        """Whether the robot may get a request now (under its per-minute budget); counts the request if so."""
        with self._lock:
            if self._robot_attempts is None:
                self._robot_attempts = {}
            times = self._robot_attempts.setdefault(robot, deque())
            while times and now - times[0] >= RATE_WINDOW_S:
                times.popleft()
            if len(times) >= self.dingtalk_per_minute:
                return False
            times.append(now)
            return True

    # --- reading --------------------------------------------------------------------------------------------

    def next_due(self) -> float | None:
        """When the earliest waiting message is due (None when nothing waits), so the loop can sleep till then."""
        with self.store.transaction("read the next due notification") as connection:
            value = connection.execute(
                sa.select(sa.func.min(_MESSAGES.c.next_attempt_at)).where(_MESSAGES.c.state == "pending")
            ).scalar_one()
        return None if value is None else float(value)

    def entries(self, *, state: EntryState | None = None, limit: int = 100) -> list[OutboxEntry]:
        """Messages, newest first; with ``state``, only those in it."""
        query = sa.select(_MESSAGES).order_by(_MESSAGES.c.position.desc()).limit(limit)
        if state is not None:
            query = query.where(_MESSAGES.c.state == state)
        with self.store.transaction("list the outbox") as connection:
            rows = connection.execute(query).mappings().all()
        return [_entry(r) for r in rows]

    def backlog(self) -> dict[str, int]:
        """Messages waiting to be delivered, by channel kind."""
        query = (
            sa.select(_MESSAGES.c.channel_kind, sa.func.count())
            .where(_MESSAGES.c.state == "pending")
            .group_by(_MESSAGES.c.channel_kind)
        )
        with self.store.transaction("count the outbox backlog") as connection:
            return {kind: int(count) for kind, count in connection.execute(query).all()}

    @property
    def counters(self) -> dict[tuple[Outcome, str], int]:
        """Sends since this outbox was made, by (outcome, channel kind): delivered, retried (a temporary error,
        tried again later) and failed (given up), for /metrics."""
        with self._lock:
            return dict(self._counters)

    def prune(self, *, now: float) -> int:
        """Delete delivered messages older than DELIVERED_KEEP_S and failed ones older than FAILED_KEEP_S;
        returns how many went."""
        with self.store.transaction("prune the outbox", fenced=True) as connection:
            delivered = connection.execute(
                sa.delete(_MESSAGES).where(
                    _MESSAGES.c.state == "delivered", _MESSAGES.c.delivered_at < now - DELIVERED_KEEP_S
                )
            ).rowcount
            failed = connection.execute(
                sa.delete(_MESSAGES).where(_MESSAGES.c.state == "failed", _MESSAGES.c.failed_at < now - FAILED_KEEP_S)
            ).rowcount
        return int(delivered) + int(failed)


def _message_row(n: Notification) -> dict[str, Any]:
    return {
        "message_id": n.id,
        "channel_kind": n.channel.kind,
        "channel_name": n.channel.name,
        "groups": ",".join(n.groups),
        "alerts": len(n.notices),
        "listed": n.listed,
        "body": n.body,
        "created_at": n.at,
        "state": "pending",
        "attempts": 0,
        "next_attempt_at": n.at,
    }


def _unconfigured(channel: Channel, target: ChannelTarget | None, sender: Sender | None) -> str:
    if target is None:
        return f"channel {channel.name!r} is no longer in the notification file; the message cannot be sent"
    if target.channel != channel:
        return (
            f"channel {channel.name!r} is now a {target.channel.kind} channel; the message was made for {channel.kind}"
        )
    return f"no sender for {channel.kind} channels was given to the outbox"


def _row(row: Any) -> _Row:
    return _Row(
        position=int(row["position"]),
        message_id=row["message_id"],
        channel=Channel(row["channel_kind"], row["channel_name"]),
        groups=tuple(g for g in row["groups"].split(",") if g),
        listed=int(row["listed"]),
        body=bytes(row["body"]),
        created_at=float(row["created_at"]),
        attempts=int(row["attempts"]),
        next_attempt_at=float(row["next_attempt_at"]),
    )


def _entry(row: Any) -> OutboxEntry:
    return OutboxEntry(
        message_id=row["message_id"],
        channel=Channel(row["channel_kind"], row["channel_name"]),
        groups=tuple(g for g in row["groups"].split(",") if g),
        alerts=int(row["alerts"]),
        state=row["state"],
        attempts=int(row["attempts"]),
        created_at=float(row["created_at"]),
        next_attempt_at=float(row["next_attempt_at"]),
        last_attempt_at=row["last_attempt_at"],
        last_error=row["last_error"],
        delivered_at=row["delivered_at"],
        failed_at=row["failed_at"],
    )


def _clip(reason: str) -> str:
    # PostgreSQL text cannot hold NUL; a receiver's answer is quoted in the reason.
    return reason.replace("\x00", "\ufffd")[:MAX_REASON_CHARS]
