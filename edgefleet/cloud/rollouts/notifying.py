"""Rollout notifications: what one tick of a rollout tells, to which channel, in what words.

``plan_rollout_notifications(about, notes, routes, regions=..., now=...)`` is pure. The reconciler's shell
(``announcing``) calls it with the ``Notify`` actions ``deciding.decide`` returned for one rollout in one tick,
the routes of the notification file and each named site's region, and puts the messages it returns in the alert
outbox, whose delivery worker sends them (retries, Retry-After, DingTalk's rate; docs/alerting.md).

Grouping, so that a rollout of a hundred sites is a handful of messages and never one per site:
- ``decide`` already makes one ``Notify`` per event of a tick, naming every site it concerns (all the sites
  deferred in a tick are one ``sites-deferred``);
- here every event of one rollout's tick that goes to a channel becomes one message to that channel: a canary
  that stops a rollout and rolls it back is one message saying both, with the sites reverted;
- a DingTalk message lists at most ``DINGTALK_SITES_LISTED`` sites per event and fewer when the message would pass
  the robot's byte limit; the rest are counted ("and 97 more"), never dropped silently. A webhook gets every site.
Nothing waits across ticks: a rollout's events are minutes apart (a wave's soak), and an abort must be told at once.

Message ids are derived from the rollout, the stored status the tick started from (``about.status_version``) and
the events, so a tick that is decided again after a failed status write plans the same ids, and the outbox keeps
each message once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

from edgefleet.cloud.alerting.notifying import Notification
from edgefleet.cloud.alerting.rendering import rfc3339
from edgefleet.cloud.alerting.routes import Channel, RolloutEvent, Routes, rollout_channels
from edgefleet.cloud.rollouts.deciding import Notify, the_wave
from edgefleet.ids import SiteId

# A phone screen of site names per event; the rest are counted.
DINGTALK_SITES_LISTED: Final = 50
# An event's own sentence is cut here in a DingTalk message (a deferral's sentence names every site itself).
DINGTALK_MESSAGE_CHARS: Final = 300
# Shorter than this a sentence says nothing; events are counted instead ("and 3 more events").
DINGTALK_MESSAGE_CHARS_LEAST: Final = 40
# Message ids fit the outbox's column (200).
MESSAGE_ID_CHARS: Final = 200

# The order events are told in one message, and their words.
_ORDER: Final[tuple[RolloutEvent, ...]] = (
    "started",
    "sites-deferred",
    "wave-passed",
    "awaiting-approval",
    "aborted",
    "rolled-back",
    "done",
)
_WORDS: Final[Mapping[RolloutEvent, str]] = {
    "started": "started",
    "sites-deferred": "sites deferred",
    "wave-passed": "wave passed",
    "awaiting-approval": "waiting for approval",
    "aborted": "stopped",
    "rolled-back": "rolled back",
    "done": "done",
}
_ICON: Final[Mapping[RolloutEvent, str]] = {
    "started": "🚀",
    "sites-deferred": "⏸️",
    "wave-passed": "✅",
    "awaiting-approval": "✋",
    "aborted": "🛑",
    "rolled-back": "↩️",
    "done": "🏁",
}


@dataclass(frozen=True, slots=True)
class RolloutAbout:
    """The rollout a tick's notes are about. ``status_version``: when its stored status was last written (the
    tick's starting point), for message ids that a repeated tick repeats."""

    id: str
    release: str
    app: str
    status_version: float


def next_step(event: RolloutEvent, rollout_id: str) -> str | None:
    """What ops can do about ``event``, as a command (None when nothing is to be done)."""
    status = f"edgefleet rollout status {rollout_id}"
    steps: Mapping[RolloutEvent, str | None] = {
        "started": f"follow it: {status}",
        "sites-deferred": f"they get the release once back online; hold one out: edgefleet site hold SITE; {status}",
        "wave-passed": f"follow it: {status}",
        "awaiting-approval": f"promote the next wave: edgefleet rollout promote {rollout_id}",
        "aborted": f"see why and what was reverted: {status}",
        "rolled-back": f"see what each site runs: {status}",
        "done": None,
    }
    return steps[event]


def plan_rollout_notifications(
    about: RolloutAbout,
    notes: Sequence[Notify],
    routes: Routes,
    *,
    regions: Mapping[SiteId, str],
    now: float,
) -> tuple[Notification, ...]:
    """One message per channel for ``notes`` (one rollout's tick), to the channels ``routes`` gives each event
    (``routes.rollout_channels``); none when nothing routes them."""
    ordered = sorted(notes, key=lambda n: (_ORDER.index(n.kind), n.wave or ""))
    by_channel: dict[Channel, list[Notify]] = {}
    for note in ordered:
        named_regions = sorted({regions[s] for s in note.sites if s in regions})
        for channel in rollout_channels(routes, note.kind, note.sites, named_regions):
            by_channel.setdefault(channel, []).append(note)
    digest = _digest(about, ordered)
    messages: list[Notification] = []
    for channel, told in sorted(by_channel.items(), key=lambda item: str(item[0])):
        message_id = f"rollout:{digest}:{channel}:{about.id}"[:MESSAGE_ID_CHARS]
        if channel.kind == "dingtalk":
            body, listed = render_rollout_dingtalk(
                about, told, max_bytes=routes.dingtalk_max_bytes, timezone=routes.timezone, now=now
            )
        else:
            body = render_rollout_webhook(about, told, channel=channel, message_id=message_id, now=now)
            listed = sum(len(n.sites) for n in told)
        messages.append(Notification(message_id, channel, (f"rollout:{about.id}",), (), body, now, listed))
    return tuple(messages)


def unrouted_events(notes: Sequence[Notify], routes: Routes, *, regions: Mapping[SiteId, str]) -> list[RolloutEvent]:
    """The events of ``notes`` that no channel takes (the shell logs them)."""
    return [
        n.kind
        for n in notes
        if not rollout_channels(routes, n.kind, n.sites, sorted({regions[s] for s in n.sites if s in regions}))
    ]


def _digest(about: RolloutAbout, notes: Sequence[Notify]) -> str:
    parts = [about.id, repr(about.status_version)]
    parts += [f"{n.kind}|{n.wave or ''}|{','.join(n.sites)}|{n.message}" for n in notes]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _title(about: RolloutAbout, notes: Sequence[Notify]) -> str:
    words = ", ".join(dict.fromkeys(_WORDS[n.kind] for n in notes))
    return f"Rollout {about.id} of {about.release}: {words}"


def _cut(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: max(chars - 1, 0)] + "…"


def _dingtalk_text(
    about: RolloutAbout, notes: Sequence[Notify], zone: ZoneInfo, now: float, *, cap: int, chars: int, events: int
) -> tuple[str, int]:
    lines = [f"### {_ICON[notes[0].kind]} {_title(about, notes)}", "", f"App {about.app}, release {about.release}", ""]
    listed = 0
    for note in notes[:events]:
        wave = f" ({the_wave(note.wave)})" if note.wave else ""
        lines.append(f"- {_ICON[note.kind]} **{_WORDS[note.kind]}**{wave}: {_cut(note.message, chars)}")
        if note.sites:
            shown = note.sites[:cap]
            listed += len(shown)
            rest = len(note.sites) - len(shown)
            names = ", ".join(shown) if shown else ""
            more = f"{' and ' if shown else ''}{rest} more" if rest else ""
            lines.append(f"  - sites ({len(note.sites)}): {names}{more}")
        step = next_step(note.kind, about.id)
        if step is not None:
            lines.append(f"  - next: `{step}`")
    if len(notes) > events:
        lines.append(f"- and {len(notes) - events} more events: `edgefleet rollout status {about.id}`")
    lines += ["", f"{datetime.fromtimestamp(now, zone).strftime('%Y-%m-%d %H:%M:%S %Z')}"]
    return "\n".join(lines), listed


def render_rollout_dingtalk(
    about: RolloutAbout, notes: Sequence[Notify], *, max_bytes: int, timezone: str, now: float
) -> tuple[bytes, int]:
    """One DingTalk markdown message for ``notes`` of at most ``max_bytes`` bytes, and how many sites it names:
    as many sites per event as fit (at most DINGTALK_SITES_LISTED), the rest counted; then shorter sentences;
    then fewer events, the rest counted with the command that shows them all."""
    zone = ZoneInfo(timezone)
    cap, chars, events = DINGTALK_SITES_LISTED, DINGTALK_MESSAGE_CHARS, len(notes)
    while True:
        text, listed = _dingtalk_text(about, notes, zone, now, cap=cap, chars=chars, events=events)
        payload = {"msgtype": "markdown", "markdown": {"title": _cut(_title(about, notes), 100), "text": text}}
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        if len(body) <= max_bytes or events == 0:
            return body, listed
        if cap > 0:
            cap //= 2
        elif chars > DINGTALK_MESSAGE_CHARS_LEAST:
            chars //= 2
        else:
            events -= 1


def render_rollout_webhook(
    about: RolloutAbout, notes: Sequence[Notify], *, channel: Channel, message_id: str, now: float
) -> bytes:
    """The generic webhook body of a rollout notification: every event with every site (no size limit to fit)."""
    events: list[dict[str, Any]] = [
        {
            "event": n.kind,
            "message": n.message,
            "wave": n.wave,
            "sites": list(n.sites),
            "next": next_step(n.kind, about.id),
        }
        for n in notes
    ]
    body = {
        "version": 1,
        "id": message_id,
        "channel": channel.name,
        "sentAt": rfc3339(now),
        "rollout": {"id": about.id, "release": about.release, "app": about.app},
        "events": events,
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
