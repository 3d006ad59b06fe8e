"""Message bodies, as bytes ready to send: a DingTalk markdown message (fitted under the robot's byte limit by
listing fewer lines and counting the rest), a generic JSON webhook body, and Alertmanager v2 alert objects.

Pure; called by ``notifying.plan_notifications``, which decides what goes into each message. A DingTalk message
never leaves an alert out silently: every alert it covers is either listed or counted in an "and N more" line,
and the title counts them all.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

from edgefleet.cloud.alerting.alerts import AlertKind, Severity, StoredAlert
from edgefleet.cloud.alerting.routes import Channel

NoticeKind = Literal["firing", "repeat", "resolved"]

# A phone screen of lines per site; the rest of a site's alerts are counted, not listed.
DINGTALK_MAX_LINES_PER_SITE: Final = 25
# Boxes named in a site's resolve notice ("did not come back: ..."); the rest are counted.
NOT_BACK_LISTED: Final = 10
# Alertmanager resolves an alert by itself at endsAt: we re-send firing alerts every minute (as Prometheus does)
# and set endsAt four re-sends ahead, so a controller that dies leaves no alert firing there forever.
ALERTMANAGER_RESEND_S: Final = 60.0
ALERTMANAGER_ENDS_AFTER_S: Final = 4 * ALERTMANAGER_RESEND_S

_ICON: Final = {Severity.CRITICAL: "🔴", Severity.WARNING: "🟠", Severity.INFO: "🔵"}
_RESOLVED_ICON: Final = "✅"


@dataclass(frozen=True, slots=True)
class Notice:
    """One alert to tell about: newly firing (or no longer muted), a repeat of a still-firing one, or resolved."""

    alert: StoredAlert
    kind: NoticeKind


@dataclass(frozen=True, slots=True)
class Section:
    """The notices of one group (a site) in a message."""

    group: str
    notices: tuple[Notice, ...]


@dataclass(frozen=True, slots=True)
class Rendered:
    body: bytes
    # Alerts named on a line of their own; the others the message covers are counted in "and N more" lines.
    listed: int


def rfc3339(ts: float) -> str:
    """``2026-11-28T04:00:01.250Z``: the form Alertmanager and most webhook receivers parse."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _local(ts: float | None, zone: ZoneInfo) -> str:
    if ts is None:
        return "?"
    return datetime.fromtimestamp(ts, zone).strftime("%m-%d %H:%M:%S")


def _order(notice: Notice) -> tuple[bool, int, tuple[str, str, str, str]]:
    return (notice.kind == "resolved", -notice.alert.severity.rank, notice.alert.key.sort_key)


def _counts(notices: Sequence[Notice]) -> tuple[int, int]:
    resolved = sum(1 for n in notices if n.kind == "resolved")
    return len(notices) - resolved, resolved


def _one_line(text: str) -> str:
    """Summaries carry text from boxes (an app's detail): a line break there must not start a list item."""
    return " ".join(text.split())


def _line(notice: Notice, zone: ZoneInfo) -> str:
    alert = notice.alert
    summary = _one_line(alert.summary)
    if notice.kind == "resolved":
        line = f"- {_RESOLVED_ICON} {summary} · resolved {_local(alert.resolved_at, zone)}"
        because = alert.details.get("resolved_because")
        if isinstance(because, str):  # not cleared: its box or site left the inventory
            return f"{line} · {_one_line(because)}"
        if alert.key.kind == AlertKind.SITE_UNREACHABLE:
            not_back = alert.details.get("not_back")
            boxes = list(not_back) if isinstance(not_back, tuple) else []
            if boxes:
                shown = ", ".join(boxes[:NOT_BACK_LISTED])
                more = f" and {len(boxes) - NOT_BACK_LISTED} more" if len(boxes) > NOT_BACK_LISTED else ""
                line += f" · {len(boxes)} did not come back: {shown}{more}"
            else:
                line += " · every box is back"
        return line
    line = f"- {_ICON[alert.severity]} {summary} · since {_local(alert.started_at, zone)}"
    if alert.state == "acknowledged":
        line += f" · acknowledged by {alert.acknowledged_by}"
    if notice.kind == "repeat":
        line += " · still firing"
    return line


def _title(sections: Sequence[Section]) -> str:
    notices = [n for s in sections for n in s.notices]
    firing, resolved = _counts(notices)
    worst = max((n.alert.severity for n in notices if n.kind != "resolved"), key=lambda s: s.rank, default=None)
    icon = _ICON[worst] if worst is not None else _RESOLVED_ICON
    where = sections[0].group if len(sections) == 1 else f"{len(sections)} sites"
    return f"{icon} {where}: {firing} firing, {resolved} resolved"


def _compose(sections: Sequence[Section], zone: ZoneInfo, line_cap: int, section_cap: int) -> tuple[str, int]:
    title = _title(sections)
    parts = [f"### {title}"]
    listed = 0
    for section in sections[:section_cap]:
        firing, resolved = _counts(section.notices)
        region = section.notices[0].alert.labels.get("region") if section.notices else None
        where = f"{section.group} ({region})" if region else section.group
        lines = [f"#### {where}: {firing} firing, {resolved} resolved"]
        ordered = sorted(section.notices, key=_order)
        shown = ordered[:line_cap]
        lines += [_line(n, zone) for n in shown]
        listed += len(shown)
        rest = ordered[line_cap:]
        if rest:
            rest_firing, rest_resolved = _counts(rest)
            lines.append(f"- … and {len(rest)} more ({rest_firing} firing, {rest_resolved} resolved)")
        parts.append("\n".join(lines))
    hidden = sections[section_cap:]
    if hidden:
        notices = [n for s in hidden for n in s.notices]
        firing, resolved = _counts(notices)
        parts.append(
            f"#### … and {len(hidden)} more sites ({len(notices)} alerts: {firing} firing, {resolved} resolved)"
        )
    return "\n\n".join(parts), listed


def _dingtalk_payload(title: str, text: str) -> bytes:
    payload = {"msgtype": "markdown", "markdown": {"title": title, "text": text}}
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def render_dingtalk(sections: Sequence[Section], *, max_bytes: int, timezone: str) -> Rendered:
    """One DingTalk markdown message for ``sections`` of at most ``max_bytes`` bytes: as many lines per site as
    fit (at most DINGTALK_MAX_LINES_PER_SITE), then as many sites as fit; the rest counted."""
    zone = ZoneInfo(timezone)
    title = _title(sections)

    def attempt(line_cap: int, section_cap: int) -> Rendered | None:
        text, listed = _compose(sections, zone, line_cap, section_cap)
        body = _dingtalk_payload(title, text)
        return Rendered(body, listed) if len(body) <= max_bytes else None

    longest = min(DINGTALK_MAX_LINES_PER_SITE, max((len(s.notices) for s in sections), default=0))
    everything = len(sections)
    # The body grows with the lines listed per site, then with the sites listed: find the most that fit.
    if attempt(0, everything) is not None:
        lines = _largest(lambda cap: attempt(cap, everything) is not None, 0, longest)
        shown = attempt(lines, everything)
    else:
        shown = attempt(0, _largest(lambda cap: attempt(0, cap) is not None, 0, everything))
    if shown is None:
        raise ValueError(f"max_bytes {max_bytes} cannot hold even a message's title; allow at least 2000 bytes")
    return shown


def _largest(fits: Callable[[int], bool], lo: int, hi: int) -> int:
    """The largest n in [lo, hi] with ``fits(n)``, for a ``fits`` that is true up to some n and false after;
    ``lo`` when none is."""
    if fits(hi):
        return hi
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _alert_json(notice: Notice) -> dict[str, Any]:
    alert = notice.alert
    return {
        "id": alert.id,
        "fingerprint": alert.key.fingerprint,
        "notice": notice.kind,
        "kind": str(alert.key.kind),
        "site": alert.key.site,
        "box": alert.key.box,
        "detail": alert.key.detail,
        "severity": str(alert.severity),
        "state": alert.state,
        "summary": alert.summary,
        "description": alert.description,
        "labels": dict(alert.labels),
        "details": {k: list(v) if isinstance(v, tuple) else v for k, v in alert.details.items()},
        "startsAt": rfc3339(alert.started_at),
        "firedAt": rfc3339(alert.fired_at),
        "resolvedAt": rfc3339(alert.resolved_at) if alert.resolved_at is not None else None,
        "acknowledgedBy": alert.acknowledged_by,
        "acknowledgedAt": rfc3339(alert.acknowledged_at) if alert.acknowledged_at is not None else None,
    }


def render_webhook(sections: Sequence[Section], *, channel: Channel, message_id: str, now: float) -> bytes:
    """The generic webhook body: every alert in full (a webhook has no size limit to fit)."""
    notices = [n for s in sections for n in s.notices]
    firing, resolved = _counts(notices)
    body = {
        "version": 1,
        "id": message_id,
        "channel": channel.name,
        "sentAt": rfc3339(now),
        "sites": [s.group for s in sections],
        "firing": firing,
        "resolved": resolved,
        "alerts": [_alert_json(n) for s in sections for n in sorted(s.notices, key=_order)],
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def alertmanager_alert(alert: StoredAlert, *, now: float) -> dict[str, Any]:
    """One alert object of Alertmanager's ``POST /api/v2/alerts``: labels (alertname = kind, site, box, kind,
    severity, region, ...), annotations summary/description, startsAt, and endsAt (the resolve time, or a few
    re-sends ahead while firing)."""
    labels = {"alertname": str(alert.key.kind), **{k: str(v) for k, v in alert.labels.items()}}
    ends = alert.resolved_at if alert.resolved_at is not None else now + ALERTMANAGER_ENDS_AFTER_S
    return {
        "labels": labels,
        "annotations": {"summary": alert.summary, "description": alert.description, "edgefleet_id": alert.id},
        "startsAt": rfc3339(alert.started_at),
        "endsAt": rfc3339(ends),
    }


def render_alertmanager(notices: Sequence[Notice], *, now: float) -> bytes:
    return json.dumps([alertmanager_alert(n.alert, now=now) for n in notices], ensure_ascii=False).encode()
