"""From "what should fire now" to "what changes in the store and what to tell": ``reconcile_alerts``.

Level-triggered and idempotent: it compares the stored active alerts with an ``evaluating.Evaluation`` and the
silences, and returns the transitions that make the store match (fire a new alert, update one, resolve one).
Applying them and reconciling again with the same inputs gives no transition. Pure; the controller's alert loop
calls it after ``evaluate``, writes every ``Transition.alert`` to the store, and hands the transitions to the
notification planner (``notifying.plan_notifications``), which tells people about those with ``notify`` set.

When a transition notifies:
- fire: unless the alert is muted (silenced or inhibited);
- update: when it is no longer muted (a silence ended, the site alert that inhibited it resolved, a hold ended)
  or its severity rose; a changed reading alone is stored, not notified;
- resolve: unless it was muted (the planner also drops resolves of alerts it never told).
The resolve of a site-unreachable alert carries ``details["not_back"]``: the site's boxes still lost then, whose
own box-lost alerts stop being inhibited in the same pass (so both go out in the same site message).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Final

from edgefleet.cloud.alerting.alerts import (
    RESOLVED_BY_CONTROLLER,
    AlertKey,
    AlertKind,
    DesiredAlert,
    Muting,
    StoredAlert,
    Transition,
    alert_id,
)
from edgefleet.cloud.alerting.evaluating import Evaluation
from edgefleet.cloud.alerting.silences import Silence, is_silenced, matching_silences
from edgefleet.inventory import Inventory


def _muting(
    key: AlertKey, evaluation: Evaluation, silences: list[Silence], now: float
) -> tuple[Muting | None, tuple[str, ...]]:
    silenced_by = matching_silences(key, silences, now)
    if silenced_by:
        return "silenced", silenced_by
    if key in evaluation.inhibited:
        return "inhibited", (evaluation.inhibited_by.get(key, "inhibited"),)
    return None, ()


def _fired(want: DesiredAlert, muted: Muting | None, muted_by: tuple[str, ...], now: float) -> StoredAlert:
    return StoredAlert(
        id=alert_id(want.key, now),
        key=want.key,
        severity=want.severity,
        summary=want.summary,
        description=want.description,
        labels=dict(want.labels),
        details=dict(want.details),
        started_at=want.started_at,
        fired_at=now,
        updated_at=now,
        muted=muted,
        muted_by=muted_by,
    )


def reconcile_alerts(
    stored: Mapping[AlertKey, StoredAlert],
    evaluation: Evaluation,
    silences: Iterable[Silence],
    *,
    now: float,
) -> list[Transition]:
    """The transitions that bring ``stored`` (the latest alert of each key; resolved ones are history) to
    ``evaluation``, in a stable order: fires and updates by key, then resolves by key."""
    active_silences = [s for s in silences if s.is_active(now)]
    out: list[Transition] = []
    for key in sorted(evaluation.desired, key=lambda k: k.sort_key):
        want = evaluation.desired[key]
        muted, muted_by = _muting(key, evaluation, active_silences, now)
        existing = stored.get(key)
        if existing is None or not existing.active:
            alert = _fired(want, muted, muted_by, now)
            out.append(Transition("fire", alert, None, notify=muted is None, at=now))
            continue
        if (
            existing.muted == muted
            and existing.muted_by == muted_by
            and existing.severity == want.severity
            and existing.summary == want.summary
            and existing.started_at == want.started_at
            and existing.details == want.details
            and existing.labels == want.labels
            and existing.description == want.description
        ):
            continue  # the common case, every pass, for every active alert: nothing to build
        candidate = dataclasses.replace(
            existing,
            severity=want.severity,
            summary=want.summary,
            description=want.description,
            labels=dict(want.labels),
            details=dict(want.details),
            started_at=want.started_at,
            muted=muted,
            muted_by=muted_by,
        )
        unmuted = existing.muted is not None and muted is None
        worse = want.severity.rank > existing.severity.rank and muted is None
        updated = dataclasses.replace(candidate, updated_at=now)
        out.append(Transition("update", updated, existing, notify=unmuted or worse, at=now))

    for key in sorted(stored, key=lambda k: k.sort_key):
        existing = stored[key]
        if not existing.active or key in evaluation.desired:
            continue
        details = dict(existing.details)
        if key.kind == AlertKind.SITE_UNREACHABLE:
            details["not_back"] = tuple(
                sorted(
                    k.box
                    for k in evaluation.desired
                    if k.kind == AlertKind.BOX_LOST and k.site == key.site and k.box is not None
                )
            )
        resolved = dataclasses.replace(
            existing,
            state="resolved",
            resolved_by=RESOLVED_BY_CONTROLLER,
            resolved_at=now,
            updated_at=now,
            details=details,
        )
        quiet = existing.muted is not None or is_silenced(key, active_silences, now)
        out.append(Transition("resolve", resolved, existing, notify=not quiet, at=now))
    return out


# Why an alert of a box or site that left the inventory resolved: the notice and the API say it in these words.
RESOLVED_REMOVED: Final = "removed from inventory"


def resolve_removed(stored: Mapping[AlertKey, StoredAlert], inventory: Inventory, *, now: float) -> list[Transition]:
    """Resolve every active alert whose site or box is no longer in ``inventory``, with the reason
    ``RESOLVED_REMOVED`` in its details. Level-triggered: every pass asks, so a removal is never missed. Told like
    any resolve (a muted alert's quietly)."""
    out = []
    for key in sorted(stored, key=lambda k: k.sort_key):
        alert = stored[key]
        gone = key.site not in inventory.sites or (key.box is not None and key.box not in inventory.boxes)
        if not alert.active or not gone:
            continue
        resolved = dataclasses.replace(
            alert,
            state="resolved",
            resolved_by=RESOLVED_BY_CONTROLLER,
            resolved_at=now,
            updated_at=now,
            details={**alert.details, "resolved_because": RESOLVED_REMOVED},
        )
        out.append(Transition("resolve", resolved, alert, notify=alert.muted is None, at=now))
    return out


def apply_transitions(
    stored: Mapping[AlertKey, StoredAlert], transitions: Iterable[Transition]
) -> dict[AlertKey, StoredAlert]:
    """``stored`` with ``transitions`` applied (what the alert store does, kept here for tests and tools)."""
    out = dict(stored)
    for transition in transitions:
        out[transition.alert.key] = transition.alert
    return out
