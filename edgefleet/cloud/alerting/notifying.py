"""Notification planning: which messages to send now, to which channel, with what in them.

``plan_notifications(transitions, routes, state, now=...)`` is pure: it takes the transitions of the latest
reconcile (and acknowledgements), the routes and the planner's own state (what is waiting, what was told when,
what each DingTalk robot was sent in the last minute) and returns the messages to send now with the new state.
The controller's alert loop calls it after every reconcile, also with no transitions (timers run on ``now``), puts
the messages in the persisted outbox together with the new state, and the senders deliver them.

Behaviour (docs/alerting.md):
- routing: an alert goes to the channels of every route it matches (``routes.route_channels``);
- grouping: DingTalk and webhook messages are per site: a site's notices wait ``group_wait_s`` when its group
  starts, and a site gets at most one message per ``group_interval_s``. Alertmanager gets one batch of alerts
  per pass (it groups by itself);
- a notice is dropped before it is sent when the alert gets muted (silenced or inhibited), and a resolve is told
  only for an alert that was told firing on that channel;
- repeats: an alert still firing (not acknowledged) is told again every ``repeat_interval_s``; Alertmanager gets
  every firing alert again each minute, acknowledged or not (it expires alerts that are not re-sent);
- DingTalk limits: one message per robot per pass and at most ``dingtalk_per_minute`` a minute, spaced evenly
  (60 / dingtalk_per_minute seconds apart); everything due for a robot goes into that one message, one section
  per site (a digest when several sites are due), fitted under ``dingtalk_max_bytes`` by listing fewer lines and
  counting the rest. A group that cannot go yet waits in the state; nothing is dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from edgefleet.cloud.alerting.alerts import AlertKey, StoredAlert, Transition
from edgefleet.cloud.alerting.rendering import (
    ALERTMANAGER_RESEND_S,
    Notice,
    Section,
    render_alertmanager,
    render_dingtalk,
    render_webhook,
)
from edgefleet.cloud.alerting.routes import Channel, Routes, route_channels

# The Alertmanager batch is one group for the whole fleet; Alertmanager does its own grouping.
ALL_SITES: Final = "*"
# DingTalk counts a robot's messages over a minute.
RATE_WINDOW_S: Final = 60.0
# Alertmanager needs new alerts at once, not per site interval; one batch per pass is its grouping.
ALERTMANAGER_GROUP_INTERVAL_S: Final = 0.0

GroupRef = tuple[Channel, str]


@dataclass(frozen=True, slots=True)
class PendingGroup:
    """Notices of one site (or the Alertmanager batch) waiting to go to one channel."""

    since: float
    notices: Mapping[AlertKey, Notice]


@dataclass(frozen=True, slots=True)
class NotifierState:
    """The planner's memory, to be persisted with the outbox so a restart neither loses nor repeats a notice."""

    pending: Mapping[GroupRef, PendingGroup] = field(default_factory=dict)
    group_sent_at: Mapping[GroupRef, float] = field(default_factory=dict)
    # Send times of the last minute per DingTalk robot.
    sent_at: Mapping[Channel, tuple[float, ...]] = field(default_factory=dict)
    # When each firing alert was last told on each channel; a resolve is told only for these.
    told: Mapping[tuple[Channel, AlertKey], float] = field(default_factory=dict)
    # The latest version of each alert in ``told``, for repeats.
    alerts: Mapping[AlertKey, StoredAlert] = field(default_factory=dict)
    sequence: int = 0


@dataclass(frozen=True, slots=True)
class Notification:
    """One message to send: ``body`` as it goes on the wire (JSON); ``notices`` are every alert it covers, whether
    listed or counted; ``id`` is unique per planner state, for the outbox's "sent once" bookkeeping."""

    id: str
    channel: Channel
    groups: tuple[str, ...]
    notices: tuple[Notice, ...]
    body: bytes
    at: float
    listed: int


@dataclass(frozen=True, slots=True)
class Plan:
    """The messages to send now, the planner's new state, notifiable alerts no route took (log them), and how many
    groups wait for a robot's rate limit."""

    messages: tuple[Notification, ...]
    state: NotifierState
    unrouted: tuple[AlertKey, ...]
    waiting: int


def _group(channel: Channel, key: AlertKey) -> str:
    return ALL_SITES if channel.kind == "alertmanager" else key.site


class _Draft:
    """Mutable copies of the state's maps for one planning pass."""

    def __init__(self, state: NotifierState) -> None:
        self.pending = {ref: dict(group.notices) for ref, group in state.pending.items()}
        self.since = {ref: group.since for ref, group in state.pending.items()}
        self.group_sent_at = dict(state.group_sent_at)
        self.sent_at = dict(state.sent_at)
        self.told = dict(state.told)
        self.alerts = dict(state.alerts)
        self.sequence = state.sequence

    def add(self, ref: GroupRef, notice: Notice, now: float) -> None:
        if ref not in self.pending or not self.pending[ref]:
            self.pending[ref] = {}
            self.since[ref] = now
        self.pending[ref][notice.alert.key] = notice

    def drop(self, ref: GroupRef, key: AlertKey) -> None:
        notices = self.pending.get(ref)
        if notices is not None:
            notices.pop(key, None)

    def refresh(self, ref: GroupRef, alert: StoredAlert) -> None:
        """A waiting notice shows the alert as it is now (a new reading, an acknowledgement)."""
        notices = self.pending.get(ref)
        if notices is not None and alert.key in notices:
            notices[alert.key] = Notice(alert, notices[alert.key].kind)

    def freeze(self) -> NotifierState:
        return NotifierState(
            pending={ref: PendingGroup(self.since[ref], notices) for ref, notices in self.pending.items() if notices},
            group_sent_at=self.group_sent_at,
            sent_at=self.sent_at,
            told=self.told,
            alerts=self.alerts,
            sequence=self.sequence,
        )


def _take(draft: _Draft, transitions: Iterable[Transition], routes: Routes, now: float) -> list[AlertKey]:
    unrouted: list[AlertKey] = []
    for transition in transitions:
        alert = transition.alert
        key = alert.key
        channels = route_channels(routes, alert)
        if not channels and transition.notify:
            unrouted.append(key)
        for channel in channels:
            ref = (channel, _group(channel, key))
            told = (channel, key) in draft.told
            if alert.state == "resolved":
                draft.drop(ref, key)
                if transition.notify and told:
                    draft.add(ref, Notice(alert, "resolved"), now)
                draft.told.pop((channel, key), None)
            elif alert.muted is not None:
                # Not told while muted, and told afresh (an update with notify) when it is no longer.
                draft.drop(ref, key)
                draft.told.pop((channel, key), None)
            elif transition.notify:
                draft.add(ref, Notice(alert, "firing"), now)
            else:
                draft.refresh(ref, alert)
        if alert.active and alert.muted is None:
            draft.alerts[key] = alert
        else:
            draft.alerts.pop(key, None)
    return unrouted


def _queue_repeats(draft: _Draft, routes: Routes, now: float) -> None:
    for (channel, key), last in draft.told.items():
        alert = draft.alerts.get(key)
        if alert is None:
            continue
        if channel.kind == "alertmanager":
            interval = ALERTMANAGER_RESEND_S
        elif alert.state == "acknowledged":
            continue
        else:
            interval = routes.timing.repeat_interval_s
        ref = (channel, _group(channel, key))
        if now - last >= interval and key not in draft.pending.get(ref, {}):
            draft.add(ref, Notice(alert, "repeat"), now)


def _due(draft: _Draft, routes: Routes, now: float) -> dict[Channel, list[str]]:
    due: dict[Channel, list[str]] = {}
    for ref, notices in draft.pending.items():
        if not notices:
            continue
        channel, group = ref
        interval = ALERTMANAGER_GROUP_INTERVAL_S if channel.kind == "alertmanager" else routes.timing.group_interval_s
        due_at = draft.since[ref] + routes.timing.group_wait_s
        last = draft.group_sent_at.get(ref)
        if last is not None:
            due_at = max(due_at, last + interval)
        if now >= due_at:
            due.setdefault(channel, []).append(group)
    return due


def _robot_free(draft: _Draft, channel: Channel, routes: Routes, now: float) -> bool:
    """Whether a DingTalk robot may get a message now: under its per-minute budget and evenly spaced."""
    recent = tuple(t for t in draft.sent_at.get(channel, ()) if now - t < RATE_WINDOW_S)
    draft.sent_at[channel] = recent
    if len(recent) >= routes.dingtalk_per_minute:
        return False
    return not recent or now - recent[-1] >= RATE_WINDOW_S / routes.dingtalk_per_minute


def _worst_first(draft: _Draft, channel: Channel, group: str) -> tuple[int, str]:
    notices = draft.pending[(channel, group)].values()
    return (-max(n.alert.severity.rank for n in notices), group)


def plan_notifications(transitions: Iterable[Transition], routes: Routes, state: NotifierState, *, now: float) -> Plan:
    """The messages to send at ``now`` and the planner's new state (``state`` is not changed). Call it after
    every reconcile and at least every few seconds without transitions, so waiting groups and repeats go out."""
    draft = _Draft(state)
    unrouted = _take(draft, transitions, routes, now)
    _queue_repeats(draft, routes, now)
    messages: list[Notification] = []
    waiting = 0
    for channel, groups in sorted(_due(draft, routes, now).items(), key=lambda item: str(item[0])):
        groups.sort(key=lambda g: _worst_first(draft, channel, g))
        if channel.kind == "dingtalk":
            if not _robot_free(draft, channel, routes, now):
                waiting += len(groups)
                continue
            batches = [groups]
        elif channel.kind == "webhook":
            batches = [[group] for group in groups]
        else:
            batches = [groups]
        for batch in batches:
            messages.append(_send(draft, channel, batch, routes, now))
    return Plan(tuple(messages), draft.freeze(), tuple(unrouted), waiting)


def _send(draft: _Draft, channel: Channel, groups: list[str], routes: Routes, now: float) -> Notification:
    sections = [Section(group, tuple(draft.pending[(channel, group)].values())) for group in groups]
    notices = tuple(n for s in sections for n in s.notices)
    draft.sequence += 1
    message_id = f"{channel.kind}:{channel.name}:{draft.sequence}"
    if channel.kind == "dingtalk":
        rendered = render_dingtalk(sections, max_bytes=routes.dingtalk_max_bytes, timezone=routes.timezone)
        body, listed = rendered.body, rendered.listed
        draft.sent_at[channel] = (*draft.sent_at.get(channel, ()), now)
    elif channel.kind == "webhook":
        body, listed = render_webhook(sections, channel=channel, message_id=message_id, now=now), len(notices)
    else:
        body, listed = render_alertmanager(notices, now=now), len(notices)
    for group in groups:
        ref = (channel, group)
        draft.pending[ref] = {}
        draft.group_sent_at[ref] = now
    for notice in notices:
        if notice.kind != "resolved":
            draft.told[(channel, notice.alert.key)] = now
    return Notification(message_id, channel, tuple(groups), notices, body, now, listed)
