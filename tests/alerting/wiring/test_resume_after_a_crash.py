"""The alert loop writes a pass in two transactions, the outbox's (messages and the planner's state) first and the
alert store's second. ``resume_transitions`` makes the two agree after a restart; a controller that dies between
them, or restarts at any pass, tells every notice exactly once."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgefleet.cloud.alerting import (
    AlertKey,
    AlertKind,
    NotifierState,
    StoredAlert,
    evaluate,
    plan_notifications,
    reconcile_alerts,
)
from edgefleet.cloud.alerting.alerts import Severity, alert_id
from edgefleet.cloud.alerting.resuming import Resume, resume_memory, resume_transitions
from edgefleet.ids import BoxId, SiteId
from tests.alerting.builders import T0, Scenario, make_inventory

KEY = AlertKey(AlertKind.BOX_LOST, SiteId("alpha"), BoxId("alpha-box-01"))


def alert(
    *, key: AlertKey = KEY, fired_at: float = T0, updated_at: float | None = None, **changes: object
) -> StoredAlert:
    base = StoredAlert(
        id=alert_id(key, fired_at),
        key=key,
        severity=Severity.CRITICAL,
        summary="Box alpha-box-01 lost",
        description="gpu-box",
        labels={},
        details={},
        started_at=fired_at - 30,
        fired_at=fired_at,
        updated_at=fired_at if updated_at is None else updated_at,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


FIRED = alert()
UPDATED = alert(updated_at=T0 + 5, summary="Box alpha-box-01 lost: no heartbeat for 30 s")
ACKED = alert(updated_at=T0 + 9, state="acknowledged", acknowledged_by="li.wei", acknowledged_at=T0 + 9)
RESOLVED = alert(updated_at=T0 + 20, state="resolved", resolved_by="edgefleet", resolved_at=T0 + 20)
MUTED = alert(muted="silenced", muted_by=("silence-1",))
REFIRED = alert(fired_at=T0 + 100)
NOW = T0 + 200


def summary(resume: Resume) -> tuple[list[str], list[tuple[str, str, bool]]]:
    return (
        [f"{a.id}:{a.state}" for a in resume.repairs],
        [(t.action, f"{t.alert.id}:{t.alert.state}", t.notify) for t in resume.transitions],
    )


@pytest.mark.parametrize(
    ("active", "latest", "planned", "repairs", "transitions"),
    [
        pytest.param([FIRED], [], [FIRED], [], [], id="both agree: nothing to do"),
        pytest.param([], [], [FIRED], [f"{FIRED.id}:firing"], [], id="the store lost a fire: written from the planner"),
        pytest.param([FIRED], [], [UPDATED], [f"{FIRED.id}:firing"], [], id="the store lost an update: written"),
        pytest.param(
            [FIRED],
            [],
            [REFIRED],
            [f"{FIRED.id}:resolved", f"{REFIRED.id}:firing"],
            [],
            id="the store lost a resolve and a new firing: both written",
        ),
        pytest.param(
            [ACKED],
            [],
            [UPDATED],
            [],
            [("acknowledge", f"{FIRED.id}:acknowledged", False)],
            id="the planner missed an ack",
        ),
        pytest.param(
            [], [RESOLVED], [FIRED], [], [("resolve", f"{FIRED.id}:resolved", True)], id="the planner missed a resolve"
        ),
        pytest.param(
            [FIRED], [], [], [], [("fire", f"{FIRED.id}:firing", True)], id="never planned (no notification file yet)"
        ),
        pytest.param([MUTED], [], [], [], [], id="never planned but muted: nothing to tell"),
        pytest.param([], [], [], [], [], id="nothing at all"),
    ],
)
def test_resume_makes_the_store_and_the_planner_agree(
    active: list[StoredAlert],
    latest: list[StoredAlert],
    planned: list[StoredAlert],
    repairs: list[str],
    transitions: list[tuple[str, str, bool]],
) -> None:
    resume = resume_transitions(
        {a.key: a for a in active}, {a.key: a for a in latest}, {a.key: a for a in planned}, now=NOW
    )
    assert summary(resume) == (repairs, transitions)


# --- the whole loop, with crashes ---------------------------------------------------------------------------

SITES = {"alpha": 6, "beta": 6}
Event = tuple[int, str, str, int]  # (at second, action, site, how many boxes)


class Shell:
    """The alert loop's shell over the pure pipeline, on a fake clock: the outbox (planner state and messages
    told) and the alert store as the database holds them, the rest in memory."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.db_alerts: dict[str, StoredAlert] = {}
        self.db_planner = NotifierState()
        # (notice, alert key) of every notice put in the outbox. Not the alert's id: a muted alert whose fire the
        # crash lost (it was never told) fires again a pass later, with that pass's id, and is told the same.
        self.told: list[tuple[str, str]] = []
        self.restart()

    def restart(self) -> None:
        """What ``AlertLoop`` does at start-up: memory from the database, made to agree."""
        latest: dict[AlertKey, StoredAlert] = {}
        for a in sorted(self.db_alerts.values(), key=lambda a: a.fired_at):
            latest[a.key] = a
        active = {k: a for k, a in latest.items() if a.active}
        resume = resume_transitions(active, latest, self.db_planner.alerts, now=self.scenario.now)
        for repaired in resume.repairs:
            self.db_alerts[repaired.id] = repaired
            active[repaired.key] = repaired
        self.active = {k: a for k, a in active.items() if a.active}
        self.queued = list(resume.transitions)
        self.planner = self.db_planner
        seen = {box for box, live in self.scenario.fleet.boxes.items() if live.last_seen is not None}
        self.track = resume_memory(self.active.values(), self.db_alerts.values(), seen=seen)

    def step(self, *, crash_after_put: bool = False) -> None:
        scenario = self.scenario
        evaluation = evaluate(scenario.fleet, self.track, scenario.rules, now=scenario.now)
        transitions = [*self.queued, *reconcile_alerts(self.active, evaluation, [], now=scenario.now)]
        plan = plan_notifications(transitions, scenario.routes, self.planner, now=scenario.now)
        self.db_planner = plan.state  # the outbox's transaction
        self.told += [(n.kind, str(n.alert.key)) for m in plan.messages for n in m.notices]
        if crash_after_put:
            self.restart()
            return
        self.planner = plan.state
        self.queued = []
        self.track = evaluation.track
        for t in transitions:  # the alert store's transaction
            self.db_alerts[t.alert.id] = t.alert
            if t.alert.active:
                self.active[t.alert.key] = t.alert
            else:
                self.active.pop(t.alert.key, None)


def play(events: Iterable[Event], *, crashes: frozenset[int], restarts: frozenset[int]) -> list[tuple[str, str]]:
    scenario = Scenario(make_inventory(SITES))
    scenario.start()
    shell = Shell(scenario)
    by_second: dict[int, list[Event]] = {}
    for event in events:
        by_second.setdefault(event[0], []).append(event)
    for second in range(1, 240):
        scenario.now += 1.0
        for _, action, site, count in by_second.get(second, []):
            boxes = scenario.site(site)[:count]
            {"cut": scenario.cut, "drop": scenario.drop, "restore": scenario.restore}[action](boxes)
        scenario.beats_due()
        if second in restarts:
            shell.restart()
        shell.step(crash_after_put=second in crashes)
    return shell.told


events = st.lists(
    st.tuples(
        st.integers(1, 150),
        st.sampled_from(["cut", "drop", "restore"]),
        st.sampled_from(list(SITES)),
        st.integers(1, 6),
    ),
    max_size=6,
)


@settings(max_examples=30, deadline=None)
@given(
    events=events,
    crashes=st.frozensets(st.integers(1, 239), max_size=3),
    restarts=st.frozensets(st.integers(1, 239), max_size=3),
)
def test_a_crash_between_the_two_writes_or_a_restart_tells_nothing_twice_and_loses_nothing(
    events: list[Event], crashes: frozenset[int], restarts: frozenset[int]
) -> None:
    undisturbed = play(events, crashes=frozenset(), restarts=frozenset())
    assert play(events, crashes=crashes, restarts=restarts) == undisturbed


def test_the_memory_of_a_restarted_loop_has_each_box_as_the_last_pass_saw_it() -> None:
    box_a, box_b, box_c, box_d = (BoxId(f"alpha-box-0{i}") for i in range(1, 5))

    def lost(box: BoxId, fired_at: float, resolved_at: float | None = None) -> StoredAlert:
        firing = alert(key=AlertKey(AlertKind.BOX_LOST, SiteId("alpha"), box), fired_at=fired_at)
        if resolved_at is None:
            return firing
        return dataclasses.replace(firing, state="resolved", resolved_at=resolved_at, updated_at=resolved_at)

    still_lost = lost(box_a, T0 + 50)
    cut = alert(
        key=AlertKey(AlertKind.SITE_UNREACHABLE, SiteId("alpha")),
        started_at=T0 + 20,
        state="resolved",
        resolved_at=T0 + 40,
    )
    history = [lost(box_b, T0, T0 + 10), lost(box_b, T0 + 25, T0 + 35), lost(box_b, T0 + 45, T0 + 55), cut, still_lost]

    track = resume_memory([still_lost], history, seen={box_a, box_b, box_c})

    assert (track.boxes[box_a].state, track.boxes[box_a].changed_at) == ("offline", T0 + 50)
    # The changes during the site's outage (20 to 40) were the site's, not the box's.
    assert track.boxes[box_b].transitions == (T0, T0 + 10, T0 + 45, T0 + 55)
    assert (track.boxes[box_b].state, track.boxes[box_b].changed_at) == ("online", T0 + 55)
    assert (track.boxes[box_c].state, track.boxes[box_c].transitions) == ("online", ())
    assert box_d not in track.boxes
