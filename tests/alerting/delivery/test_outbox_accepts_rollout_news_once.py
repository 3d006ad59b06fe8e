"""Messages planned outside the alert planner (a rollout's news) are accepted into the outbox without touching the
planner's state, and a message id accepted twice (a tick decided again after a failed status write) is kept and
sent once. On SQLite and PostgreSQL."""

from __future__ import annotations

from edgefleet.cloud.alerting import Channel, Notification, NotifierState
from edgefleet.cloud.alerting.outbox import Outbox

T0 = 1_800_000_000.0
HOOK = Channel("webhook", "releases")


def news(message_id: str) -> Notification:
    return Notification(message_id, HOOK, ("rollout:r-7",), (), b'{"events":[]}', T0, 2)


def test_the_same_rollout_message_accepted_twice_is_kept_once_and_the_planner_state_is_untouched(
    outbox: Outbox,
) -> None:
    outbox.put([], NotifierState(sequence=41))
    outbox.accept([news("rollout:abc:webhook:releases:r-7")])
    outbox.accept([news("rollout:abc:webhook:releases:r-7"), news("rollout:def:webhook:releases:r-7")])
    outbox.accept([])

    entries = outbox.entries()
    assert sorted(e.message_id for e in entries) == [
        "rollout:abc:webhook:releases:r-7",
        "rollout:def:webhook:releases:r-7",
    ]
    assert {(e.state, e.groups) for e in entries} == {("pending", ("rollout:r-7",))}
    assert outbox.backlog() == {"webhook": 2}
    assert outbox.load_state().sequence == 41
