"""A central cluster's Kubernetes Events as notifications: which are forwarded (the cluster policy's event rules),
how they are grouped and deduplicated, and the messages' words. Pure; the shell is ``event_forwarding``.

- **Forwarded**: an Event its cluster's rules forward (``ClusterPolicy.forwards``: level, involved kind,
  namespace, reason; exclude beats include). A cluster with no event rule forwards nothing: forwarding every
  Event of a busy cluster is what nobody wants by default.
- **Deduplicated by Kubernetes' own count**: the API server aggregates a repeated Event into one object whose
  ``count`` climbs; edgefleet tells each Event once, with its count when told - never once per repeat. An Event
  still repeating ``REPEAT_S`` after it was told is told again, once per ``REPEAT_S`` of repeats, with its count
  then. The key of what was told (``told_key``: the Event's uid and that period) comes from the Event alone, so a
  restarted controller that lists the Events again finds the same keys.
- **Grouped by involved object**: the untold Events of one object (a Pod, a Node) go out as one message, once the
  oldest has waited ``group_wait_s`` for its burst to gather.

``plan_event_groups(cluster, policy, events, told, now=..., group_wait_s=...)`` returns the groups to send; the
renderers make a DingTalk markdown message (cut to the robot's byte limit) or a webhook's JSON of a group.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

from edgefleet.policies import ClusterPolicy

# An Event still repeating is told again after four hours (a shift), as a firing alert is.
REPEAT_S: Final = 4 * 3600.0
# How long the first Event of an object waits for the rest of its burst (a crash loop's BackOff and its Failed).
GROUP_WAIT_S: Final = 30.0
# A DingTalk message lists this many Events of an object and counts the rest; a sentence is cut here.
DINGTALK_EVENTS_LISTED: Final = 20
MESSAGE_CHARS: Final = 300
MESSAGE_ID_CHARS: Final = 200


@dataclass(frozen=True, slots=True, order=True)
class Involved:
    kind: str
    namespace: str
    name: str
    uid: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"


@dataclass(frozen=True, slots=True)
class ClusterEvent:
    """One Event as the API serves it, read once: ``first_at`` / ``last_at`` epoch seconds."""

    uid: str
    namespace: str
    level: str
    reason: str
    message: str
    count: int
    first_at: float
    last_at: float
    involved: Involved

    @property
    def period(self) -> int:
        """Which ``REPEAT_S`` of its repeats the Event is in (0: its first four hours)."""
        return max(0, int((self.last_at - self.first_at) // REPEAT_S))

    @property
    def told_key(self) -> str:
        return f"{self.uid}@{self.period}"


@dataclass(frozen=True, slots=True)
class EventGroup:
    """The untold Events of one involved object, oldest first; ``id`` is the same whoever plans the same keys."""

    cluster: str
    involved: Involved
    events: tuple[ClusterEvent, ...]

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(e.told_key for e in self.events)

    @property
    def level(self) -> str:
        return "Warning" if any(e.level == "Warning" for e in self.events) else "Normal"

    @property
    def id(self) -> str:
        digest = hashlib.sha256("\n".join(sorted(self.keys)).encode()).hexdigest()[:16]
        return f"event:{self.cluster}:{digest}"


def _time(text: Any) -> float | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def read_event(raw: Mapping[str, Any]) -> ClusterEvent | None:
    """An Event of core/v1 (``lastTimestamp``, ``count``) or one written by events/v1 clients (``eventTime``,
    ``series``); None for one without a uid or a time (nothing to key or order it by)."""
    metadata = raw.get("metadata") or {}
    uid = str(metadata.get("uid") or "")
    series = raw.get("series") or {}
    first = _time(raw.get("firstTimestamp")) or _time(raw.get("eventTime")) or _time(metadata.get("creationTimestamp"))
    last = _time(raw.get("lastTimestamp")) or _time(series.get("lastObservedTime")) or first
    if not uid or first is None or last is None:
        return None
    involved = raw.get("involvedObject") or raw.get("regarding") or {}
    count = raw.get("count") or series.get("count") or 1
    return ClusterEvent(
        uid=uid,
        namespace=str(metadata.get("namespace") or ""),
        level=str(raw.get("type") or "Normal"),
        reason=str(raw.get("reason") or ""),
        message=str(raw.get("message") or raw.get("note") or ""),
        count=int(count) if isinstance(count, int) else 1,
        first_at=first,
        last_at=max(first, last),
        involved=Involved(
            str(involved.get("kind") or ""),
            str(involved.get("namespace") or ""),
            str(involved.get("name") or ""),
            str(involved.get("uid") or ""),
        ),
    )


def forwarded(policy: ClusterPolicy, event: ClusterEvent) -> bool:
    """Whether the cluster's rules forward ``event`` (none at all: none is)."""
    namespace = event.involved.namespace or event.namespace
    return bool(policy.events) and policy.forwards(event.level, event.involved.kind, namespace, event.reason)


def plan_event_groups(
    cluster: str,
    policy: ClusterPolicy,
    events: Iterable[ClusterEvent],
    told: frozenset[str] | set[str],
    *,
    now: float,
    group_wait_s: float = GROUP_WAIT_S,
) -> list[EventGroup]:
    """The groups to send now: per involved object, its forwarded Events not yet told, once the oldest of them
    (from the start of its current period) has waited ``group_wait_s``; ordered by object."""
    by_object: dict[Involved, list[ClusterEvent]] = {}
    for event in events:
        if forwarded(policy, event) and event.told_key not in told:
            by_object.setdefault(event.involved, []).append(event)
    groups: list[EventGroup] = []
    for involved, found in sorted(by_object.items()):
        since = min(e.first_at + e.period * REPEAT_S for e in found)
        if now - since >= group_wait_s:
            ordered = tuple(sorted(found, key=lambda e: (e.first_at, e.reason, e.uid)))
            groups.append(EventGroup(cluster, involved, ordered))
    return groups


# --- words ----------------------------------------------------------------------------------------------------


def _cut(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: max(chars - 1, 0)] + "…"


def title(group: EventGroup) -> str:
    return f"{group.level} events of {group.involved} in cluster {group.cluster}"


def render_event_dingtalk(group: EventGroup, *, max_bytes: int, timezone: str) -> bytes:
    """One DingTalk markdown message for ``group``: each Event with its count and when (local time), at most
    ``DINGTALK_EVENTS_LISTED`` and fewer when the message would pass ``max_bytes``; the rest counted."""
    zone = ZoneInfo(timezone)
    listed, chars = min(len(group.events), DINGTALK_EVENTS_LISTED), MESSAGE_CHARS
    while True:
        icon = "⚠️" if group.level == "Warning" else "ℹ️"
        lines = [f"### {icon} {title(group)}", ""]
        for event in group.events[:listed]:
            first = datetime.fromtimestamp(event.first_at, zone).strftime("%m-%d %H:%M:%S")
            last = datetime.fromtimestamp(event.last_at, zone).strftime("%m-%d %H:%M:%S")
            times = f"{event.count} times, {first} to {last}" if event.count > 1 else f"once, {first}"
            lines.append(f"- **{event.reason}** ({event.level}, {times}): {_cut(event.message, chars)}")
        if len(group.events) > listed:
            lines.append(f"- and {len(group.events) - listed} more events")
        namespace = group.involved.namespace
        where = f" -n {namespace}" if namespace else ""
        lines += ["", f"`kubectl --context {group.cluster} get events{where} --field-selector "
                      f"involvedObject.name={group.involved.name}`"]  # fmt: skip
        payload = {"msgtype": "markdown", "markdown": {"title": _cut(title(group), 100), "text": "\n".join(lines)}}
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        if len(body) <= max_bytes or (listed == 0 and chars <= 40):
            return body
        if chars > 40:
            chars //= 2
        else:
            listed -= 1


def render_event_webhook(group: EventGroup, *, channel: str, now: float) -> bytes:
    """The generic webhook body of ``group``: every Event, its count and times (RFC 3339, UTC)."""

    def utc(ts: float) -> str:
        return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")

    body = {
        "version": 1,
        "id": group.id,
        "channel": channel,
        "sentAt": utc(now),
        "cluster": group.cluster,
        "involvedObject": {
            "kind": group.involved.kind,
            "namespace": group.involved.namespace,
            "name": group.involved.name,
            "uid": group.involved.uid,
        },
        "events": [
            {
                "type": e.level,
                "reason": e.reason,
                "message": e.message,
                "count": e.count,
                "firstTimestamp": utc(e.first_at),
                "lastTimestamp": utc(e.last_at),
            }
            for e in group.events
        ],
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
