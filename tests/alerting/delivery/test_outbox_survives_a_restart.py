"""A controller restart loses no notification and sends none twice: messages and the planner's state are put in
one transaction, a new outbox on the same database delivers what the old one left (each message exactly once),
and the planner resumes from the state it saved. The one window that can repeat a message - a crash after the
receiver took it and before the "delivered" mark - repeats just that message."""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from collections import Counter
from contextlib import closing
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgefleet.cloud.alerting import (
    AlertKey,
    AlertKind,
    Channel,
    Notification,
    NotifierState,
    Route,
    Routes,
    Severity,
    StoredAlert,
    Timing,
)
from edgefleet.cloud.alerting.config import ChannelTarget
from edgefleet.cloud.alerting.delivery import Sender, TemporaryDeliveryError, build_senders
from edgefleet.cloud.alerting.notifying import PendingGroup
from edgefleet.cloud.alerting.outbox import DeliveryReport, Outbox, decode_state, encode_state
from edgefleet.cloud.alerting.rendering import Notice
from edgefleet.cloud.store import Store, StoreError
from edgefleet.ids import BoxId, SiteId
from tests.alerting.builders import Scenario, make_inventory
from tests.support.receivers import RecordingReceiver

T0 = 1_800_000_000.0
HOOK = Channel("webhook", "tickets")
ROBOT = Channel("dingtalk", "ops")
MANAGER = Channel("alertmanager", "am")


def note(channel: Channel, n: int, at: float = T0) -> Notification:
    return Notification(f"{channel.kind}:{channel.name}:{n}", channel, ("alpha",), (), f'{{"n":{n}}}'.encode(), at, 1)


def busy_fleet() -> Scenario:
    """Twelve sites, four cut at once, health alerts and a flapping box: DingTalk's rate limit leaves groups
    waiting, so the planner's state holds pending groups, send times, told alerts and repeats."""
    sites = {f"s{i:02d}": 6 for i in range(12)}
    routes = Routes(
        routes=(Route(channels=(ROBOT, HOOK)), Route(channels=(MANAGER,), severities=frozenset({Severity.CRITICAL}))),
        # New groups wait a little, so that the state is caught with notices waiting.
        timing=Timing(group_wait_s=5.0),
    )
    scenario = Scenario(make_inventory(sites), routes=routes)
    first = scenario.site("s00")
    scenario.readings = {BoxId(first[0]): {"gpu_temperature": 97.0}, BoxId(first[1]): {"skew_s": 50.0}}
    scenario.start()
    for site in ("s01", "s02", "s03", "s04"):
        scenario.cut(scenario.site(site))
    scenario.drop([scenario.site("s05")[0]])
    scenario.run(150)
    scenario.drop([scenario.site("s06")[0]])
    scenario.run(2)
    return scenario


@pytest.fixture(scope="module")
def busy_state() -> NotifierState:
    state = busy_fleet().notifier
    assert state.pending
    assert state.told
    assert state.alerts
    assert state.sent_at
    assert state.group_sent_at
    return state


def test_the_planner_state_round_trips_exactly(busy_state: NotifierState) -> None:
    assert decode_state(encode_state(busy_state)) == busy_state


def test_the_saved_state_is_loaded_back_and_planning_goes_on_as_if_nothing_happened(
    outbox: Outbox, store: Store
) -> None:
    scenario = busy_fleet()
    outbox.put(scenario.messages, scenario.notifier)
    restarted = Outbox(store)
    assert restarted.load_state() == scenario.notifier
    # The same next minute, planned from the saved state and from the one in memory, gives the same messages.
    twin = busy_fleet()
    twin.notifier = restarted.load_state()
    scenario.run(60)
    twin.run(60)
    assert [(m.id, m.body) for m in twin.messages] == [(m.id, m.body) for m in scenario.messages]


def test_a_fresh_database_has_a_fresh_state(outbox: Outbox) -> None:
    assert outbox.load_state() == NotifierState()


def test_an_unreadable_state_is_replaced_and_keeps_the_message_numbering(
    outbox: Outbox, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    outbox.put([], NotifierState(sequence=41))
    with store.engine.begin() as connection:
        connection.execute(sa.text("UPDATE alert_notifier_state SET state = :s"), {"s": b'{"version": 99}'})
    with caplog.at_level(logging.WARNING):
        assert Outbox(store).load_state() == NotifierState(sequence=41)
    assert "Dropped unreadable notifier state" in caplog.text


def test_messages_and_state_are_put_in_one_transaction(outbox: Outbox, store: Store) -> None:
    with store.engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE alert_notifier_state"))
    with pytest.raises(StoreError, match="failed to put notifications in the outbox"):
        outbox.put([note(HOOK, 1)], NotifierState(sequence=1))
    outbox.create_schema()
    assert outbox.entries() == []


def test_putting_a_message_twice_keeps_one(outbox: Outbox) -> None:
    outbox.put([note(HOOK, 1)], NotifierState(sequence=1))
    outbox.put([note(HOOK, 1), note(HOOK, 2)], NotifierState(sequence=2))
    assert sorted(e.message_id for e in outbox.entries()) == ["webhook:tickets:1", "webhook:tickets:2"]


def test_a_quiet_pass_writes_nothing(outbox: Outbox, store: Store) -> None:
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    outbox.put([], NotifierState(sequence=3))
    sa.event.listen(store.engine, "before_cursor_execute", count)
    try:
        outbox.put([], NotifierState(sequence=3))
        assert statements == []
        outbox.put([], NotifierState(sequence=4))
        assert any("alert_notifier_state" in s for s in statements)
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", count)


def test_a_new_outbox_on_the_same_database_delivers_each_message_exactly_once(
    database_url: str, receiver: RecordingReceiver, client: httpx.Client
) -> None:
    targets = {
        HOOK.name: ChannelTarget(HOOK, f"{receiver.url}/hook"),
        ROBOT.name: ChannelTarget(ROBOT, f"{receiver.url}/robot/send?access_token=t0ken"),
    }
    senders = build_senders(client)
    with closing(Store(database_url)) as first:
        outbox = Outbox(first)
        outbox.create_schema()
        outbox.put([note(HOOK, 1), note(ROBOT, 2)], NotifierState(sequence=2))
        outbox.put([note(HOOK, 3)], NotifierState(sequence=3))
        receiver.answer(status=503, path="/hook")  # the oldest webhook message's first try fails: it waits
        assert outbox.deliver_due(senders, targets, now=T0) == DeliveryReport(delivered=1, retried=1)
        outbox.put([note(ROBOT, 4, at=T0 + 1)], NotifierState(sequence=4))
        del outbox  # the controller dies: nothing is flushed
    with closing(Store(database_url)) as second:
        restarted = Outbox(second)
        assert restarted.load_state() == NotifierState(sequence=4)
        assert restarted.deliver_due(senders, targets, now=T0 + 600) == DeliveryReport(delivered=3)
        assert restarted.deliver_due(senders, targets, now=T0 + 1200) == DeliveryReport()
    sent = Counter(r.body.decode() for r in receiver.received)
    assert sent == {'{"n":1}': 2, '{"n":2}': 1, '{"n":3}': 1, '{"n":4}': 1}  # n=1 twice: its 503, then success
    webhook = [r.body.decode() for r in receiver.received if r.path == "/hook"]
    assert webhook == ['{"n":1}', '{"n":1}', '{"n":3}']


class Crash(BaseException):
    """The process dies (not an error anything in the controller handles)."""


class Recording:
    """An in-memory receiver behind our Sender seam; ``crash_after_send`` kills the "process" once, right after
    the receiver took a message - inside the window the outbox documents."""

    def __init__(self) -> None:
        self.received: list[str] = []
        self.down: set[str] = set()
        self.crash_after_send = False

    def deliver(self, notification: Notification, target: ChannelTarget) -> None:
        if target.channel.name in self.down:
            raise TemporaryDeliveryError(f"{target.channel} is down")
        self.received.append(notification.id)
        if self.crash_after_send:
            self.crash_after_send = False
            raise Crash


def test_a_crash_between_send_and_mark_repeats_only_that_message(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    receiver = Recording()
    senders = {"webhook": receiver}
    targets = {HOOK.name: ChannelTarget(HOOK, "http://127.0.0.1:1/hook")}
    with closing(Store(url)) as store:
        outbox = Outbox(store)
        outbox.create_schema()
        outbox.put([note(HOOK, n) for n in (1, 2, 3)], NotifierState(sequence=3))
        assert outbox.deliver_due(senders, targets, now=T0) == DeliveryReport(delivered=3)
        outbox.put([note(HOOK, n) for n in (4, 5)], NotifierState(sequence=5))
        receiver.crash_after_send = True
        with pytest.raises(Crash):
            outbox.deliver_due(senders, targets, now=T0 + 1)
    with closing(Store(url)) as store:
        assert Outbox(store).deliver_due(senders, targets, now=T0 + 2) == DeliveryReport(delivered=2)
    assert receiver.received == [
        "webhook:tickets:1",
        "webhook:tickets:2",
        "webhook:tickets:3",
        "webhook:tickets:4",
        "webhook:tickets:4",
        "webhook:tickets:5",
    ]


CHANNELS = [HOOK, Channel("webhook", "audit"), ROBOT]


@dataclasses.dataclass(frozen=True)
class Put:
    channel: int
    count: int


@dataclasses.dataclass(frozen=True)
class Deliver:
    down: frozenset[str]


@dataclasses.dataclass(frozen=True)
class Restart:
    pass


@dataclasses.dataclass(frozen=True)
class Wait:
    seconds: float


Step = Put | Deliver | Restart | Wait
steps_strategy = st.lists(
    st.one_of(
        st.builds(Put, st.integers(0, len(CHANNELS) - 1), st.integers(1, 3)),
        st.builds(Deliver, st.frozensets(st.sampled_from([c.name for c in CHANNELS]))),
        st.builds(Restart),
        st.builds(Wait, st.sampled_from([1.0, 10.0, 400.0])),
    ),
    max_size=14,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=steps_strategy)
def test_whatever_the_order_of_puts_failures_and_restarts_each_message_arrives_once_in_order(
    steps: list[Step],
) -> None:
    receiver = Recording()
    senders: dict[str, Sender] = {"webhook": receiver, "dingtalk": receiver}
    targets = {c.name: ChannelTarget(c, f"http://127.0.0.1:1/{c.name}") for c in CHANNELS}
    put: list[Notification] = []
    now = T0
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{Path(directory) / 'outbox.db'}"
        store = Store(url)
        outbox = Outbox(store, dingtalk_per_minute=20)
        outbox.create_schema()
        try:
            for step in steps:
                if isinstance(step, Put):
                    batch = [note(CHANNELS[step.channel], len(put) + i, at=now) for i in range(step.count)]
                    put += batch
                    outbox.put(batch, NotifierState(sequence=len(put)))
                elif isinstance(step, Deliver):
                    receiver.down = set(step.down)
                    outbox.deliver_due(senders, targets, now=now)
                elif isinstance(step, Restart):  # the old outbox is dropped as it is, mid-way
                    store.close()
                    store = Store(url)
                    outbox = Outbox(store, dingtalk_per_minute=20)
                    assert outbox.load_state().sequence == len(put)
                else:
                    now += step.seconds
            receiver.down = set()
            for _ in range(20):  # everyone is back: what is left drains
                now += 600
                outbox.deliver_due(senders, targets, now=now)
            assert outbox.backlog() == {}
        finally:
            store.close()
    assert sorted(receiver.received) == sorted(n.id for n in put)  # each exactly once
    for channel in CHANNELS:
        mine = [n.id for n in put if n.channel == channel]
        assert [i for i in receiver.received if i in set(mine)] == mine  # in the order they were put


# --- the state codec on states the planner could hold ------------------------------------------------------

sites = st.sampled_from([SiteId("alpha"), SiteId("beta")])
keys = st.builds(
    AlertKey,
    kind=st.sampled_from(list(AlertKind)),
    site=sites,
    box=st.none() | st.sampled_from([BoxId("alpha-box-01"), BoxId("beta-box-02")]),
    detail=st.none() | st.sampled_from(["gpu-0", "sorter"]),
)
times = st.floats(1_700_000_000, 1_900_000_000)
# Explicit characters (some outside ASCII, quotes, a newline): no charmap to build, and what JSON must escape.
words = st.text(alphabet='az09 -_.告警站点✅\n"\\', max_size=20)
detail_values = (
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | times | words | st.lists(words, max_size=3).map(tuple)
)


@st.composite
def alerts(draw: st.DrawFn) -> StoredAlert:
    key = draw(keys)
    state = draw(st.sampled_from(["firing", "acknowledged", "resolved"]))
    return StoredAlert(
        id=f"{key.fingerprint}-{draw(st.integers(0, 2**40)):x}",
        key=key,
        severity=draw(st.sampled_from(list(Severity))),
        summary=draw(words),
        description=draw(words),
        labels=draw(st.dictionaries(st.sampled_from(["site", "box", "region", "kind"]), words)),
        details=draw(st.dictionaries(st.sampled_from(["not_back", "celsius", "path", "free"]), detail_values)),
        started_at=draw(times),
        fired_at=draw(times),
        updated_at=draw(times),
        state=state,  # type: ignore[arg-type]
        muted=draw(st.none() | st.sampled_from(["silenced", "inhibited"])),
        muted_by=tuple(draw(st.lists(words, max_size=2))),
        acknowledged_by=draw(st.none() | words),
        acknowledged_at=draw(st.none() | times),
        resolved_by="edgefleet" if state == "resolved" else None,
        resolved_at=draw(times) if state == "resolved" else None,
    )


channels = st.sampled_from([*CHANNELS, MANAGER])


@st.composite
def states(draw: st.DrawFn) -> NotifierState:
    known = draw(st.lists(alerts(), max_size=6, unique_by=lambda a: a.key))
    notices = [Notice(a, draw(st.sampled_from(["firing", "repeat", "resolved"]))) for a in known]
    groups = draw(st.lists(st.tuples(channels, sites), max_size=4, unique=True))
    pending = {
        (channel, str(group)): PendingGroup(
            draw(times), {n.alert.key: n for n in draw(st.lists(st.sampled_from(notices), max_size=3))}
        )
        for channel, group in groups
        if notices
    }
    return NotifierState(
        pending=pending,
        group_sent_at={(c, str(g)): draw(times) for c, g in groups},
        sent_at={
            c: tuple(draw(st.lists(times, max_size=3))) for c in draw(st.lists(channels, max_size=2, unique=True))
        },
        told={(c, a.key): draw(times) for a in known for c in draw(st.lists(channels, max_size=2, unique=True))},
        alerts={a.key: a for a in known if a.state != "resolved"},
        sequence=draw(st.integers(0, 2**50)),
    )


@settings(max_examples=50)
@given(state=states())
def test_any_planner_state_round_trips(state: NotifierState) -> None:
    decoded = decode_state(encode_state(state))
    assert decoded == state
    for key, alert in decoded.alerts.items():  # tuples stay tuples (the renderer tests isinstance)
        assert all(type(v) is type(state.alerts[key].details[k]) for k, v in alert.details.items())


def test_a_changed_alert_changes_the_saved_state(busy_state: NotifierState) -> None:
    key, alert = next(iter(busy_state.alerts.items()))
    changed = dataclasses.replace(
        busy_state, alerts={**busy_state.alerts, key: dataclasses.replace(alert, summary="x")}
    )
    assert encode_state(changed) != encode_state(busy_state)
    assert decode_state(encode_state(changed)) == changed
