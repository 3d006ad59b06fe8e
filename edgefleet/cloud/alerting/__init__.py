"""Lost-contact detection and alerting: the pure decision logic (no I/O, no threads, time is a parameter).

One pass of the controller's alert loop, every second or so::

    evaluation = evaluate(fleet_snapshot, track, rules, now=now)          # evaluating.py
    transitions = reconcile_alerts(stored, evaluation, silences, now=now)  # reconciling.py
    plan = plan_notifications(transitions, routes, notifier_state, now=now)  # notifying.py
    # store every transition.alert, put plan.messages and plan.state in the outbox, keep evaluation.track
    # (at start-up: track = resume_track(active stored alerts))

Modules: ``alerts`` (kinds, keys, the stored alert and its lifecycle, ``acknowledge``), ``rules`` (thresholds and
their validation), ``tracking`` (evaluation's memory), ``health`` (health rules), ``evaluating``, ``silences``,
``reconciling``, ``routes`` (channels, routes, timers), ``notifying`` (grouping, repeats, DingTalk limits) and
``rendering`` (DingTalk markdown, webhook JSON, Alertmanager v2 alerts). The alert store, outbox, senders, API and
CLI are a thin I/O layer over these. docs/alerting.md describes the rules and why.
"""

from __future__ import annotations

from edgefleet.cloud.alerting.alerts import (
    AlertingError,
    AlertKey,
    AlertKind,
    AlertState,
    AlertStateError,
    DesiredAlert,
    Severity,
    StoredAlert,
    Transition,
    acknowledge,
)
from edgefleet.cloud.alerting.evaluating import Evaluation, FleetView, evaluate, resume_track
from edgefleet.cloud.alerting.notifying import Notification, NotifierState, Plan, plan_notifications
from edgefleet.cloud.alerting.reconciling import apply_transitions, reconcile_alerts
from edgefleet.cloud.alerting.rendering import Notice, alertmanager_alert, render_dingtalk, rfc3339
from edgefleet.cloud.alerting.routes import Channel, Route, Routes, Timing, route_channels, validate_routes
from edgefleet.cloud.alerting.rules import AlertRules, Overrides, RuleProblem, Thresholds, validate
from edgefleet.cloud.alerting.silences import Silence, is_silenced, matching_silences, validate_silence
from edgefleet.cloud.alerting.tracking import BoxTrack, FleetTrack, SiteTrack, observe

__all__ = [
    "AlertKey",
    "AlertKind",
    "AlertRules",
    "AlertState",
    "AlertStateError",
    "AlertingError",
    "BoxTrack",
    "Channel",
    "DesiredAlert",
    "Evaluation",
    "FleetTrack",
    "FleetView",
    "Notice",
    "Notification",
    "NotifierState",
    "Overrides",
    "Plan",
    "Route",
    "Routes",
    "RuleProblem",
    "Severity",
    "Silence",
    "SiteTrack",
    "StoredAlert",
    "Thresholds",
    "Timing",
    "Transition",
    "acknowledge",
    "alertmanager_alert",
    "apply_transitions",
    "evaluate",
    "is_silenced",
    "matching_silences",
    "observe",
    "plan_notifications",
    "reconcile_alerts",
    "render_dingtalk",
    "resume_track",
    "rfc3339",
    "route_channels",
    "validate",
    "validate_routes",
    "validate_silence",
]
