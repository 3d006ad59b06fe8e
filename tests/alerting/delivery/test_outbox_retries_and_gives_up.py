"""The outbox delivers what is due, oldest first per channel; it retries temporary failures with growing,
jittered delays, keeps permanent failures with their reason (logged once), and keeps DingTalk's rate limit even
when a backlog drains. On SQLite and PostgreSQL, against a recording receiver."""

from __future__ import annotations

import logging
import random

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgefleet.clock import FakeClock
from edgefleet.cloud.alerting import Channel, Notification, NotifierState
from edgefleet.cloud.alerting.config import ChannelTarget
from edgefleet.cloud.alerting.delivery import DINGTALK_BLOCKED_RETRY_S, Sender, build_senders
from edgefleet.cloud.alerting.outbox import (
    BACKOFF_CAP_S,
    BACKOFF_FIRST_S,
    BACKOFF_JITTER,
    DELIVERED_KEEP_S,
    MESSAGE_MAX_AGE_S,
    DeliveryReport,
    Outbox,
    retry_delay,
)
from edgefleet.cloud.store import Store
from tests.support.receivers import RecordingReceiver

T0 = 1_800_000_000.0
HOOK = Channel("webhook", "tickets")
OTHER_HOOK = Channel("webhook", "audit")
ROBOT = Channel("dingtalk", "ops")
TOKEN = "tok3f9a0c1d2e"


def note(channel: Channel, n: int, at: float = T0) -> Notification:
    return Notification(
        f"{channel.kind}:{channel.name}:{n}", channel, ("bj-daxing",), (), f'{{"n":{n}}}'.encode(), at, 1
    )


def targets_for(receiver: RecordingReceiver) -> dict[str, ChannelTarget]:
    return {
        HOOK.name: ChannelTarget(HOOK, f"{receiver.url}/hooks/tickets"),
        OTHER_HOOK.name: ChannelTarget(OTHER_HOOK, f"{receiver.url}/hooks/audit"),
        ROBOT.name: ChannelTarget(ROBOT, f"{receiver.url}/robot/send?access_token={TOKEN}", "SECops"),
    }


@pytest.fixture
def senders(client: httpx.Client) -> dict[str, Sender]:
    return build_senders(client, clock=FakeClock(T0))


def bodies(receiver: RecordingReceiver, path: str | None = None) -> list[str]:
    return [r.body.decode() for r in receiver.received if path is None or r.path == path]


def test_due_messages_are_sent_once_and_marked_delivered(
    outbox: Outbox, receiver: RecordingReceiver, senders: dict[str, Sender]
) -> None:
    targets = targets_for(receiver)
    outbox.put([note(HOOK, 1), note(ROBOT, 2)], NotifierState(sequence=2))
    assert outbox.next_due() == T0
    assert outbox.backlog() == {"webhook": 1, "dingtalk": 1}
    assert outbox.deliver_due(senders, targets, now=T0) == DeliveryReport(delivered=2)
    assert sorted(bodies(receiver)) == ['{"n":1}', '{"n":2}']
    assert outbox.deliver_due(senders, targets, now=T0 + 60) == DeliveryReport()
    assert len(receiver.received) == 2
    entries = {e.message_id: e for e in outbox.entries()}
    assert {e.state for e in entries.values()} == {"delivered"}
    assert entries["webhook:tickets:1"].attempts == 1
    assert entries["webhook:tickets:1"].delivered_at == T0
    assert outbox.backlog() == {}
    assert outbox.next_due() is None
    assert outbox.counters == {("delivered", "webhook"): 1, ("delivered", "dingtalk"): 1}


def test_a_message_that_is_not_due_yet_waits(
    outbox: Outbox, receiver: RecordingReceiver, senders: dict[str, Sender]
) -> None:
    outbox.put([note(HOOK, 1, at=T0 + 10)], NotifierState(sequence=1))
    assert outbox.deliver_due(senders, targets_for(receiver), now=T0) == DeliveryReport()
    assert receiver.received == []


def test_http_500_is_retried_with_growing_delays_until_it_goes_through(
    store: Store, receiver: RecordingReceiver, senders: dict[str, Sender]
) -> None:
    outbox = Outbox(store, rng=random.Random(7))
    outbox.create_schema()
    targets = targets_for(receiver)
    receiver.answer(status=500, times=2)
    outbox.put([note(HOOK, 1)], NotifierState(sequence=1))
    now = T0
    delays = []
    for _ in range(2):
        assert outbox.deliver_due(senders, targets, now=now) == DeliveryReport(retried=1)
        [entry] = outbox.entries()
        assert entry.state == "pending"
        assert "HTTP 500" in (entry.last_error or "")
        delays.append(entry.next_attempt_at - now)
        assert outbox.deliver_due(senders, targets, now=entry.next_attempt_at - 0.01) == DeliveryReport()
        now = entry.next_attempt_at
    assert BACKOFF_FIRST_S * (1 - BACKOFF_JITTER) <= delays[0] <= BACKOFF_FIRST_S * (1 + BACKOFF_JITTER)
    assert 2 * BACKOFF_FIRST_S * (1 - BACKOFF_JITTER) <= delays[1] <= 2 * BACKOFF_FIRST_S * (1 + BACKOFF_JITTER)
    assert outbox.deliver_due(senders, targets, now=now) == DeliveryReport(delivered=1)
    assert bodies(receiver) == ['{"n":1}'] * 3
    [entry] = outbox.entries()
    assert (entry.state, entry.attempts) == ("delivered", 3)
    assert outbox.counters == {("retried", "webhook"): 2, ("delivered", "webhook"): 1}


def test_a_throttled_robot_is_tried_again_after_its_block(
    outbox: Outbox, receiver: RecordingReceiver, senders: dict[str, Sender]
) -> None:
    targets = targets_for(receiver)
    receiver.answer(errcode=130101)
    outbox.put([note(ROBOT, 1)], NotifierState(sequence=1))
    assert outbox.deliver_due(senders, targets, now=T0) == DeliveryReport(retried=1)
    [entry] = outbox.entries()
    assert entry.next_attempt_at >= T0 + DINGTALK_BLOCKED_RETRY_S
    assert "errcode 130101" in (entry.last_error or "")
    assert outbox.deliver_due(senders, targets, now=T0 + 300) == DeliveryReport()
    assert outbox.deliver_due(senders, targets, now=entry.next_attempt_at) == DeliveryReport(delivered=1)
    first, second = receiver.received
    assert first.body == second.body
    assert first.query["sign"]
    assert second.query["timestamp"] == str(round(T0 * 1000))


def test_a_permanent_failure_is_kept_with_its_reason_logged_once_and_does_not_block_the_channel(
    outbox: Outbox, receiver: RecordingReceiver, senders: dict[str, Sender], caplog: pytest.LogCaptureFixture
) -> None:
    targets = targets_for(receiver)
    receiver.answer(errcode=310000)
    outbox.put([note(ROBOT, 1), note(ROBOT, 2)], NotifierState(sequence=2))
    with caplog.at_level(logging.INFO, logger="edgefleet.cloud.alerting.outbox"):
        assert outbox.deliver_due(senders, targets, now=T0) == DeliveryReport(delivered=1, failed=1)
        for later in (1, 60, 3600):
            assert outbox.deliver_due(senders, targets, now=T0 + later) == DeliveryReport()
    [failed] = outbox.entries(state="failed")
    assert failed.message_id == "dingtalk:ops:1"
    assert failed.failed_at == T0
    assert "errcode 310000" in (failed.last_error or "")
    assert "check the robot's security settings" in (failed.last_error or "")
    assert TOKEN not in (failed.last_error or "")
    gave_up = [r for r in caplog.records if r.getMessage() == "Gave up on notification"]
    assert len(gave_up) == 1
    assert gave_up[0].levelno == logging.ERROR
    assert gave_up[0].message == "Gave up on notification"
    assert getattr(gave_up[0], "channel") == "dingtalk:ops"  # noqa: B009 - set through extra=
    assert TOKEN not in caplog.text
    assert bodies(receiver) == ['{"n":1}', '{"n":2}']
    assert outbox.counters == {("failed", "dingtalk"): 1, ("delivered", "dingtalk"): 1}


def test_a_waiting_message_holds_back_newer_ones_of_its_channel_only(
    outbox: Outbox, receiver: RecordingReceiver, senders: dict[str, Sender]
) -> None:
    targets = targets_for(receiver)
    receiver.answer(status=503)
    outbox.put([note(HOOK, 1), note(HOOK, 2), note(HOOK, 3)], NotifierState(sequence=3))
    assert outbox.deliver_due(senders, targets, now=T0) == DeliveryReport(retried=1)
    # Another channel is not held back by the waiting one.
    outbox.put([note(OTHER_HOOK, 4, at=T0 + 1)], NotifierState(sequence=4))
    assert outbox.deliver_due(senders, targets, now=T0 + 1) == DeliveryReport(delivered=1)
    assert outbox.deliver_due(senders, targets, now=T0 + BACKOFF_CAP_S) == DeliveryReport(delivered=3)
    assert bodies(receiver, "/hooks/tickets") == ['{"n":1}', '{"n":1}', '{"n":2}', '{"n":3}']
    assert bodies(receiver, "/hooks/audit") == ['{"n":4}']


def test_a_backlog_for_a_robot_drains_within_its_rate_limit(
    store: Store, receiver: RecordingReceiver, senders: dict[str, Sender]
) -> None:
    outbox = Outbox(store, dingtalk_per_minute=18)
    outbox.create_schema()
    targets = targets_for(receiver)
    outbox.put([note(ROBOT, n) for n in range(1, 26)], NotifierState(sequence=25))
    assert outbox.deliver_due(senders, targets, now=T0) == DeliveryReport(delivered=18, throttled=7)
    assert outbox.deliver_due(senders, targets, now=T0 + 59.9) == DeliveryReport(throttled=7)
    # A restarted controller knows what was sent in the last minute.
    restarted = Outbox(store, dingtalk_per_minute=18)
    assert restarted.deliver_due(senders, targets, now=T0 + 30) == DeliveryReport(throttled=7)
    assert restarted.deliver_due(senders, targets, now=T0 + 60) == DeliveryReport(delivered=7)
    assert bodies(receiver) == [f'{{"n":{n}}}' for n in range(1, 26)]


def test_a_message_for_a_channel_no_longer_configured_fails_with_the_reason(
    outbox: Outbox, receiver: RecordingReceiver, senders: dict[str, Sender]
) -> None:
    targets = targets_for(receiver)
    del targets[HOOK.name]
    targets[ROBOT.name] = ChannelTarget(Channel("webhook", "ops"), f"{receiver.url}/ops")
    outbox.put([note(HOOK, 1), note(ROBOT, 2)], NotifierState(sequence=2))
    assert outbox.deliver_due(senders, targets, now=T0) == DeliveryReport(failed=2)
    reasons = {e.message_id: e.last_error for e in outbox.entries(state="failed")}
    assert reasons == {
        "webhook:tickets:1": "channel 'tickets' is no longer in the notification file; the message cannot be sent",
        "dingtalk:ops:2": "channel 'ops' is now a webhook channel; the message was made for dingtalk",
    }
    assert receiver.received == []


def test_a_message_older_than_a_day_is_given_up_unsent(
    outbox: Outbox, receiver: RecordingReceiver, senders: dict[str, Sender]
) -> None:
    outbox.put([note(HOOK, 1)], NotifierState(sequence=1))
    assert outbox.deliver_due(senders, targets_for(receiver), now=T0 + MESSAGE_MAX_AGE_S + 1) == DeliveryReport(
        failed=1
    )
    [entry] = outbox.entries()
    assert entry.state == "failed"
    assert entry.last_error == "not delivered within 24 h; given up"
    assert receiver.received == []


class BrokenSender:
    def deliver(self, notification: Notification, target: ChannelTarget) -> None:
        raise KeyError("a bug")


def test_a_sender_bug_keeps_the_message_for_later(
    outbox: Outbox, receiver: RecordingReceiver, senders: dict[str, Sender], caplog: pytest.LogCaptureFixture
) -> None:
    outbox.put([note(HOOK, 1)], NotifierState(sequence=1))
    with caplog.at_level(logging.ERROR):
        assert outbox.deliver_due({"webhook": BrokenSender()}, targets_for(receiver), now=T0) == DeliveryReport(
            retried=1
        )
    assert "Failed to deliver notification" in caplog.text
    [entry] = outbox.entries()
    assert entry.state == "pending"
    assert entry.last_error == "the sender failed: KeyError: 'a bug'"
    assert outbox.deliver_due(senders, targets_for(receiver), now=entry.next_attempt_at) == DeliveryReport(delivered=1)


def test_prune_drops_old_delivered_messages_and_keeps_failed_ones_longer(
    outbox: Outbox, receiver: RecordingReceiver, senders: dict[str, Sender]
) -> None:
    receiver.answer(status=400)
    outbox.put([note(HOOK, 1), note(HOOK, 2)], NotifierState(sequence=2))
    outbox.deliver_due(senders, targets_for(receiver), now=T0)
    assert outbox.prune(now=T0 + 60) == 0
    assert outbox.prune(now=T0 + DELIVERED_KEEP_S + 1) == 1
    assert [e.state for e in outbox.entries()] == ["failed"]


@given(
    attempts=st.integers(1, 60),
    retry_after_s=st.none() | st.floats(0, 4000),
    seed=st.integers(0, 2**32),
)
def test_retry_delays_grow_stay_capped_and_respect_the_receiver(
    attempts: int, retry_after_s: float | None, seed: int
) -> None:
    delay = retry_delay(attempts, retry_after_s, random.Random(seed))
    nominal = min(BACKOFF_CAP_S, BACKOFF_FIRST_S * 2 ** (attempts - 1))
    assert delay >= nominal * (1 - BACKOFF_JITTER)
    assert delay >= (retry_after_s or 0.0)
    assert delay <= max(BACKOFF_CAP_S, retry_after_s or 0.0)
    if retry_after_s is None:
        assert delay <= nominal * (1 + BACKOFF_JITTER)


def test_retry_delays_are_spread_by_jitter() -> None:
    delays = {round(retry_delay(3, None, random.Random(seed)), 6) for seed in range(50)}
    assert len(delays) > 40
