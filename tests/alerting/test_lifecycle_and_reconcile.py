"""Stored alerts follow firing -> acknowledged -> resolved with who and when, and reconciling is level-triggered and
idempotent: applying its transitions and reconciling again with the same inputs gives nothing."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgefleet.cloud.alerting import (
    AlertKey,
    AlertKind,
    AlertStateError,
    DesiredAlert,
    Evaluation,
    FleetTrack,
    Severity,
    Silence,
    StoredAlert,
    acknowledge,
    apply_transitions,
    reconcile_alerts,
)
from edgefleet.ids import BoxId, SiteId
from tests.alerting.builders import T0

KEYS = [
    AlertKey(kind, SiteId(site), BoxId(f"{site}-box-{b}") if kind != AlertKind.SITE_UNREACHABLE else None, detail)
    for site in ("alpha", "beta")
    for kind, detail in [
        (AlertKind.SITE_UNREACHABLE, None),
        (AlertKind.BOX_LOST, None),
        (AlertKind.APP_DOWN, "sorter"),
        (AlertKind.GPU_ECC, "gpu-0"),
    ]
    for b in (0, 1)
]
KEYS = list(dict.fromkeys(KEYS))


def desired(key: AlertKey, *, severity: Severity = Severity.CRITICAL, summary: str = "it broke") -> DesiredAlert:
    return DesiredAlert(key, severity, summary, "what to do", {"site": key.site}, T0 - 30, {"n": 1})


def evaluation(alerts: list[DesiredAlert], inhibited: dict[AlertKey, str] | None = None) -> Evaluation:
    inhibited = inhibited or {}
    return Evaluation({a.key: a for a in alerts}, frozenset(inhibited), inhibited, FleetTrack(), T0)


KEY = KEYS[1]


def fired(now: float = T0) -> StoredAlert:
    (transition,) = reconcile_alerts({}, evaluation([desired(KEY)]), [], now=now)
    return transition.alert


def test_an_alert_fires_once_updates_on_change_and_resolves_by_the_controller() -> None:
    alert = fired()
    assert (alert.state, alert.fired_at, alert.updated_at, alert.started_at) == ("firing", T0, T0, T0 - 30)
    stored = {KEY: alert}
    assert reconcile_alerts(stored, evaluation([desired(KEY)]), [], now=T0 + 1) == []
    (update,) = reconcile_alerts(stored, evaluation([desired(KEY, summary="worse")]), [], now=T0 + 2)
    assert (update.action, update.notify, update.alert.summary, update.alert.updated_at) == (
        "update",
        False,
        "worse",
        T0 + 2,
    )
    assert update.alert.fired_at == T0
    assert update.alert.id == alert.id
    (resolve,) = reconcile_alerts(stored, evaluation([]), [], now=T0 + 3)
    assert resolve.action == "resolve"
    assert resolve.notify
    assert (resolve.alert.state, resolve.alert.resolved_by, resolve.alert.resolved_at) == (
        "resolved",
        "edgefleet",
        T0 + 3,
    )


def test_a_rise_in_severity_is_told_a_fall_is_not() -> None:
    warning = reconcile_alerts({}, evaluation([desired(KEY, severity=Severity.WARNING)]), [], now=T0)[0].alert
    (up,) = reconcile_alerts({KEY: warning}, evaluation([desired(KEY)]), [], now=T0 + 1)
    assert up.notify
    (down,) = reconcile_alerts({KEY: up.alert}, evaluation([desired(KEY, severity=Severity.WARNING)]), [], now=T0 + 2)
    assert not down.notify


def test_acknowledging_records_who_and_when_and_the_alert_still_resolves_by_itself() -> None:
    transition = acknowledge(fired(), "li.wei", T0 + 5)
    acked = transition.alert
    assert (transition.action, transition.notify) == ("acknowledge", False)
    assert (acked.state, acked.acknowledged_by, acked.acknowledged_at) == ("acknowledged", "li.wei", T0 + 5)
    stored = {KEY: acked}
    assert reconcile_alerts(stored, evaluation([desired(KEY)]), [], now=T0 + 6) == []  # stays acknowledged
    (update,) = reconcile_alerts(stored, evaluation([desired(KEY, summary="new")]), [], now=T0 + 7)
    assert update.alert.state == "acknowledged"
    (resolve,) = reconcile_alerts(stored, evaluation([]), [], now=T0 + 8)
    assert resolve.alert.state == "resolved"
    assert resolve.alert.acknowledged_by == "li.wei"


@pytest.mark.parametrize(
    ("prepare", "who", "error", "message"),
    [
        (lambda a: acknowledge(a, "wang", T0).alert, "li", AlertStateError, "already acknowledged by wang"),
        (
            lambda a: dataclasses.replace(a, state="resolved", resolved_by="edgefleet", resolved_at=T0),
            "li",
            AlertStateError,
            "only a firing alert",
        ),
        (lambda a: a, "  ", ValueError, "who is empty"),
    ],
)
def test_acknowledging_refuses_what_the_state_does_not_allow(prepare, who, error, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=message):
        acknowledge(prepare(fired()), who, T0 + 1)


def test_a_problem_that_returns_after_its_resolve_is_a_new_alert() -> None:
    first = fired(T0)
    (resolve,) = reconcile_alerts({KEY: first}, evaluation([]), [], now=T0 + 10)
    (again,) = reconcile_alerts({KEY: resolve.alert}, evaluation([desired(KEY)]), [], now=T0 + 20)
    assert again.action == "fire"
    assert again.previous is None
    assert again.alert.id != first.id
    assert again.alert.state == "firing"


def test_a_silenced_alert_is_stored_but_not_told_until_its_silence_ends() -> None:
    silence = Silence("s1", T0 - 1, T0 + 60, "ops", "maintenance", site=SiteId("alpha"))
    (fire,) = reconcile_alerts({}, evaluation([desired(KEY)]), [silence], now=T0)
    assert (fire.notify, fire.alert.muted, fire.alert.muted_by) == (False, "silenced", ("s1",))
    stored = {KEY: fire.alert}
    assert reconcile_alerts(stored, evaluation([desired(KEY)]), [silence], now=T0 + 59) == []
    (unmute,) = reconcile_alerts(stored, evaluation([desired(KEY)]), [silence], now=T0 + 60)
    assert (unmute.action, unmute.notify, unmute.alert.muted) == ("update", True, None)
    (quiet,) = reconcile_alerts(stored, evaluation([]), [silence], now=T0 + 30)
    assert quiet.action == "resolve"
    assert not quiet.notify


def test_an_inhibited_alert_is_stored_with_its_cause_and_told_when_the_inhibition_ends() -> None:
    cause = {KEY: "site-unreachable alpha"}
    (fire,) = reconcile_alerts({}, evaluation([desired(KEY)], cause), [], now=T0)
    assert (fire.notify, fire.alert.muted, fire.alert.muted_by) == (False, "inhibited", ("site-unreachable alpha",))
    (unmute,) = reconcile_alerts({KEY: fire.alert}, evaluation([desired(KEY)]), [], now=T0 + 1)
    assert unmute.notify
    assert unmute.alert.muted is None


ALERTS = st.builds(
    desired,
    st.sampled_from(KEYS),
    severity=st.sampled_from(list(Severity)),
    summary=st.sampled_from(["a", "b"]),
)
EVALUATIONS = st.builds(
    lambda alerts, inhibited: evaluation(alerts, {a.key: "x" for a in alerts if a.key in inhibited}),
    st.lists(ALERTS, max_size=12, unique_by=lambda a: a.key),
    st.sets(st.sampled_from(KEYS)),
)
SILENCES = st.lists(
    st.builds(
        Silence,
        id=st.sampled_from(["s1", "s2", "s3"]),
        starts_at=st.sampled_from([T0 - 100, T0 + 50]),
        ends_at=st.sampled_from([T0 + 40, T0 + 400]),
        created_by=st.just("ops"),
        comment=st.just("work"),
        site=st.sampled_from([None, SiteId("alpha")]),
        box=st.sampled_from([None, BoxId("alpha-box-0")]),
        kind=st.sampled_from([None, AlertKind.BOX_LOST]),
    ),
    max_size=3,
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(EVALUATIONS, st.floats(min_value=0.5, max_value=120)), min_size=1, max_size=8), SILENCES)
def test_reconciling_is_idempotent_and_moves_each_alert_at_most_once_per_pass(
    passes: list[tuple[Evaluation, float]], silences: list[Silence]
) -> None:
    stored: dict[AlertKey, StoredAlert] = {}
    now = T0
    for wanted, step in passes:
        now += step
        transitions = reconcile_alerts(stored, wanted, silences, now=now)
        keys = [t.alert.key for t in transitions]
        assert len(keys) == len(set(keys))
        for t in transitions:
            if t.action == "fire":
                assert t.alert.key not in stored or not stored[t.alert.key].active
            if t.action == "resolve":
                assert stored[t.alert.key].active
                assert t.alert.key not in wanted.desired
            if t.alert.muted is not None and t.action != "resolve":
                assert not t.notify
        stored = apply_transitions(stored, transitions)
        assert reconcile_alerts(stored, wanted, silences, now=now) == []
        assert {k for k, a in stored.items() if a.active} == set(wanted.desired)
        for key, alert in stored.items():
            if alert.active:
                assert (alert.muted is not None) == (
                    key in wanted.inhibited or any(s.is_active(now) and s.matches(key) for s in silences)
                )
