"""The alerting parts wired as the controller wires them, on a fake clock (``clocked.ClockedAlerting``): when a box
is told lost and resolved, that a held message goes out with time alone, that acknowledging stops repeats, that a
silence mutes and its end tells, and that a restart tells nothing twice. No test here waits on the real clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edgefleet.cloud.alerting.alerts import AlertStateError
from edgefleet.cloud.alerting.service import AlertNotFound, SilenceRejected, SilenceStateError
from edgefleet.cloud.fleet import heartbeat_timeout
from edgefleet.ids import BoxId, SiteId
from tests.alerting.builders import make_inventory, site_boxes
from tests.alerting.wiring.clocked import ClockedAlerting, write_notifications

INTERVAL_S = 10.0
MISSED_BEATS = 3
TIMEOUT_S = heartbeat_timeout(INTERVAL_S, MISSED_BEATS)
INVENTORY = make_inventory({"alpha": 6, "beta": 6}, interval_s=INTERVAL_S, missed_beats=MISSED_BEATS)
A0, A1, A2, A3 = (str(b) for b in site_boxes("alpha", 4))


@pytest.fixture
def notifications(tmp_path: Path) -> Path:
    return write_notifications(tmp_path / "notifications.yaml", group_interval="30s", repeat_interval="5m")


@pytest.fixture
def alerting(tmp_path: Path, notifications: Path) -> Iterator[ClockedAlerting]:
    running = ClockedAlerting(INVENTORY, f"sqlite:///{tmp_path / 'edgefleet.db'}", notifications)
    running.beat_all()
    running.run(INTERVAL_S)
    yield running
    running.close()


def test_a_stopped_box_is_told_at_the_first_pass_past_its_timeout_and_resolved_when_it_beats(
    alerting: ClockedAlerting,
) -> None:
    alerting.stop([A0])
    alerting.run(TIMEOUT_S - 1.0)
    assert alerting.notices(box=A0) == [], "not before its timeout"
    alerting.run(1.5)
    assert alerting.notices(box=A0) == [("firing", "box-lost", A0)]

    alerting.restore([A0])
    alerting.run(1.0)
    assert alerting.alert_of(A0)["state"] == "resolved", "resolved at the next pass"
    alerting.run(30.0)  # told with its site's group, at most a group interval (30 s) after the firing
    assert alerting.notices(box=A0) == [("firing", "box-lost", A0), ("resolved", "box-lost", A0)]


def test_a_dropped_connection_is_judged_at_the_next_tick_not_the_next_pass(alerting: ClockedAlerting) -> None:
    report = alerting.tick()
    assert report is None, "a pass ran less than a pass interval ago"
    alerting.drop([A1])
    report = alerting.tick()
    assert report is not None, "a new Last Will asks for a pass at once"
    assert report.fired == 1
    assert alerting.notices(box=A1) == [("firing", "box-lost", A1)]


def test_a_message_held_by_the_group_interval_goes_out_with_time_alone(alerting: ClockedAlerting) -> None:
    alerting.drop([A0])
    alerting.tick()
    alerting.clock.advance(5.0)
    alerting.drop([A1])  # the same site's group told 5 s ago: this one waits for the group interval (30 s)
    alerting.tick()
    assert [box for _, _, box in alerting.notices(kind="box-lost")] == [A0]
    alerting.run(30.0)
    assert [box for _, _, box in alerting.notices(kind="box-lost")] == [A0, A1], (
        "passes without a transition still plan what fell due"
    )


def test_an_acknowledged_alert_is_not_repeated_and_cannot_be_acknowledged_twice(alerting: ClockedAlerting) -> None:
    alerting.stop([A2])
    alerting.run(TIMEOUT_S + 1.0)
    alert = alerting.alert_of(A2)

    acked = alerting.service.acknowledge(alert["id"], " li.wei ")
    assert (acked.state, acked.acknowledged_by, acked.acknowledged_at) == (
        "acknowledged",
        "li.wei",
        alerting.clock.now(),
    )
    with pytest.raises(AlertStateError, match=r"already acknowledged by li\.wei"):
        alerting.service.acknowledge(alert["id"], "zhang.min")
    with pytest.raises(ValueError, match="needs the name of who takes it"):
        alerting.service.acknowledge(alert["id"], "   ")
    with pytest.raises(AlertNotFound, match="no alert 'no-such-alert'"):
        alerting.service.acknowledge("no-such-alert", "li.wei")

    alerting.run(6 * 60.0)  # past the repeat interval (5 min)
    assert alerting.notices(box=A2) == [("firing", "box-lost", A2)], "acknowledged: no repeat, nothing told for it"
    assert alerting.alert_of(A2)["state"] == "acknowledged", "a pass never overwrites the acknowledgement"


def test_an_unacknowledged_alert_is_repeated(alerting: ClockedAlerting) -> None:
    alerting.stop([A2])
    alerting.run(TIMEOUT_S + 1.0)
    alerting.run(6 * 60.0)
    assert alerting.notices(box=A2) == [("firing", "box-lost", A2), ("repeat", "box-lost", A2)]


def test_a_silenced_box_is_stored_muted_and_told_when_the_silence_ends(alerting: ClockedAlerting) -> None:
    record = alerting.service.add_silence(
        created_by="li.wei", comment="replacing its fan", box=BoxId(A3), duration_s=600.0
    )
    assert record.state(alerting.clock.now()) == "active"
    assert [r.silence.id for r in alerting.service.list_silences()] == [record.silence.id]
    alerting.stop([A3])
    alerting.run(TIMEOUT_S + 1.0)
    muted = alerting.alert_of(A3)
    assert (muted["state"], muted["muted"], muted["muted_by"]) == ("firing", "silenced", (record.silence.id,))
    assert alerting.notices(box=A3) == []

    ended = alerting.service.end_silence(record.silence.id, by="li.wei")
    assert (ended.state(alerting.clock.now()), ended.ended_by) == ("expired", "li.wei")
    alerting.tick()  # ending a silence asks for a pass at once
    assert alerting.notices(box=A3) == [("firing", "box-lost", A3)]
    assert alerting.service.list_silences() == []
    assert [r.silence.id for r in alerting.service.list_silences(include_expired=True)] == [record.silence.id]
    with pytest.raises(SilenceStateError, match="already ended"):
        alerting.service.end_silence(record.silence.id)


def test_a_silence_lasts_until_its_end_and_no_longer(alerting: ClockedAlerting) -> None:
    alerting.service.add_silence(created_by="li.wei", comment="works", site=SiteId("alpha"), duration_s=120.0)
    alerting.stop([A0])
    alerting.run(TIMEOUT_S + 1.0)
    assert alerting.notices(box=A0) == []
    alerting.run(120.0)
    assert alerting.notices(box=A0) == [("firing", "box-lost", A0)]


def test_a_bad_silence_is_refused_with_every_problem(alerting: ClockedAlerting) -> None:
    with pytest.raises(SilenceRejected) as refused:
        alerting.service.add_silence(created_by=" ", comment="", site=SiteId("nowhere"), duration_s=-5)
    problems = " | ".join(refused.value.problems)
    assert "duration must be more than 0 seconds" in problems
    assert "nowhere" in problems
    assert alerting.service.list_silences(include_expired=True) == []


def test_a_restart_tells_nothing_twice(tmp_path: Path, notifications: Path) -> None:
    url = f"sqlite:///{tmp_path / 'restart.db'}"
    first = ClockedAlerting(INVENTORY, url, notifications)
    first.run(1.0)  # started: the fleet is heard
    first.stop([A0])
    first.run(TIMEOUT_S + 1.0)
    assert first.notices(box=A0) == [("firing", "box-lost", A0)]
    first.close()

    # The controller is back 10 s later with the fleet state it saved: A0 silent since before the stop.
    second = ClockedAlerting(INVENTORY, url, notifications, restored=first.fleet, start=first.clock.now() + 10.0)
    try:
        second.stop([A0])
        second.run(60.0)
        assert second.notices() == [], "the restarted loop resumes what was told"
        assert second.alert_of(A0)["state"] == "firing"
        second.restore([A0])
        second.run(31.0)
        assert second.notices(box=A0) == [("resolved", "box-lost", A0)]
    finally:
        second.close()
