"""A controller that restarts rebuilds evaluation's memory from its stored alerts: nothing resolves and fires
again, nothing is told twice."""

from __future__ import annotations

from edgefleet.cloud.alerting import AlertKind, FleetTrack
from edgefleet.cloud.alerting.evaluating import resume_track
from tests.alerting.builders import Scenario, make_inventory


def troubled_fleet() -> Scenario:
    scenario = Scenario(make_inventory({"alpha": 20, "beta": 20}))
    alpha = scenario.site("alpha")
    scenario.readings = {
        alpha[0]: {"gpu_temperature": 95.0},
        alpha[1]: {"apps": {"sorter": "failed"}},
        alpha[2]: {"skew_s": 45.0},
        alpha[3]: {"disk_free_percent": 4.0},
        alpha[4]: {"ecc_uncorrected": 3},
    }
    scenario.start()
    for _ in range(2):  # alpha's box 5 flaps
        scenario.drop([alpha[5]])
        scenario.run(20)
        scenario.restore([alpha[5]])
        scenario.run(40)
    scenario.cut(scenario.site("beta"))
    scenario.run(90)
    return scenario


def test_a_restart_keeps_every_alert_that_needs_memory_firing() -> None:
    scenario = troubled_fleet()
    kinds = sorted({k.kind for k in scenario.active()})
    assert kinds == sorted(
        {
            AlertKind.GPU_OVERHEAT,
            AlertKind.APP_DOWN,
            AlertKind.CLOCK_SKEW,
            AlertKind.DISK_FULL,
            AlertKind.GPU_ECC,
            AlertKind.BOX_FLAPPING,
            AlertKind.SITE_UNREACHABLE,
            AlertKind.BOX_LOST,
        }
    )
    messages = len(scenario.messages)
    scenario.track = resume_track(scenario.stored.values())
    assert scenario.step() == []
    scenario.run(120)
    assert [t for t in scenario.transitions[-200:] if t.at > scenario.now - 120] == []
    assert len(scenario.messages) == messages  # nothing told twice
    # Without the rebuilt memory the same restart would resolve (and tell) what still fires.
    scenario.track = FleetTrack()
    resolved = {t.alert.key.kind for t in scenario.step() if t.action == "resolve"}
    assert resolved == {AlertKind.GPU_OVERHEAT, AlertKind.APP_DOWN, AlertKind.CLOCK_SKEW, AlertKind.BOX_FLAPPING}


def test_after_a_restart_the_alerts_still_resolve_when_their_cause_is_gone() -> None:
    scenario = troubled_fleet()
    scenario.track = resume_track(scenario.stored.values())
    alpha = scenario.site("alpha")
    scenario.readings = {}
    scenario.restore(scenario.site("beta"))
    scenario.run(12 * 60)  # the flapping alert needs 10 calm minutes
    assert scenario.active() == {}
    assert scenario.stored[next(k for k in scenario.stored if k.box == alpha[0])].state == "resolved"
