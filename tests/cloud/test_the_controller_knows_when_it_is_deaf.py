"""The controller knows when it is the one that is deaf: the ingest measures its own quiet, lag and saturation
(``Ingest.stats``), ``hearing.assess`` (pure) turns them into hearing, deaf, behind or recovering, and a recovery
never outlasts the agents' reconnect backoff plus one interval."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from edgefleet.agent import link
from edgefleet.agent.reporting import BoxReporter
from edgefleet.clock import FakeClock
from edgefleet.cloud.fleet import FleetState, evaluate_reachability, silence_credit
from edgefleet.cloud.hearing import (
    AGENT_RECONNECT_MAX_S,
    FLEET_ALERT_AFTER_S,
    Hearing,
    HearingLimits,
    IngestStats,
    assess,
    fleet_alert_due,
    recovery_bound,
    starting,
)
from edgefleet.cloud.ingesting import Ingest
from edgefleet.ids import BoxId, SiteId
from edgefleet.inventory import load_inventory
from edgefleet.messages import GpuReport, encode
from edgefleet.topics import heartbeat_topic
from simulator.networking import reconnect_delay
from tests.alerting.builders import beat
from tests.cloud.api.memory import apps, host, write_inventory

LIMITS = HearingLimits(recovery_max_s=recovery_bound(10.0))
HEARING = IngestStats(subscribed=True, since_last_message_s=0.1, lag_s=0.0, busy=0.05)
DEAF = dataclasses.replace(HEARING, subscribed=False)
SILENT = dataclasses.replace(HEARING, since_last_message_s=30.0)
LATE = dataclasses.replace(HEARING, lag_s=12.0)
SATURATED = dataclasses.replace(HEARING, busy=0.99)


def step(previous: Hearing, stats: IngestStats, now: float, *, heard: float = 0.0, online: bool = True) -> Hearing:
    return assess(
        previous,
        stats,
        now=now,
        wall_now=1_800_000_000.0 + now,
        heard_share=heard,
        boxes_were_online=online,
        limits=LIMITS,
    )


def test_the_agents_backoff_and_the_hold_are_one_pair() -> None:
    assert link.RECONNECT_MAX_S == AGENT_RECONNECT_MAX_S
    assert recovery_bound(10.0) == AGENT_RECONNECT_MAX_S + 10.0
    # The simulator's jitter never takes a box past the agent's maximum.
    import random

    rng = random.Random(1)
    assert max(reconnect_delay(attempt, rng) for attempt in range(40) for _ in range(50)) <= AGENT_RECONNECT_MAX_S


def test_each_bad_state_is_named_with_its_reason() -> None:
    hearing = Hearing("hearing", 0.0, "")
    assert step(hearing, DEAF, 1.0).state == "deaf"
    assert step(hearing, SILENT, 1.0).reason == "no message from any box for 30 s"
    assert step(hearing, SILENT, 1.0, online=False).state == "hearing", "an empty fleet is quiet, not deaf"
    assert step(hearing, LATE, 1.0).reason == "heartbeats arrive 12 s late"
    assert step(hearing, SATURATED, 1.0).reason == "the ingest is saturated (99% busy)"


def test_a_restart_recovers_until_the_fleet_is_heard_again() -> None:
    hearing = starting(now=0.0, wall_now=1_800_000_000.0)
    assert not hearing.judging
    hearing = step(hearing, HEARING, 5.0, heard=0.5)
    assert hearing.state == "recovering"
    assert step(hearing, HEARING, 6.0, heard=1.0).state == "hearing"
    assert step(hearing, HEARING, recovery_bound(10.0), heard=0.5).state == "hearing", "bounded"


def test_a_bad_spell_is_one_fleet_alert_only_when_it_lasts() -> None:
    hearing = step(Hearing("hearing", 0.0, ""), DEAF, 0.0)
    assert not fleet_alert_due(hearing, now=FLEET_ALERT_AFTER_S - 0.1)
    assert fleet_alert_due(hearing, now=FLEET_ALERT_AFTER_S)
    recovering = step(hearing, HEARING, FLEET_ALERT_AFTER_S + 1.0)
    assert recovering.state == "recovering"
    assert fleet_alert_due(recovering, now=FLEET_ALERT_AFTER_S + 30.0), "kept until the fleet is heard again"
    blip = step(step(Hearing("hearing", 0.0, ""), DEAF, 0.0), HEARING, 3.0)
    assert not fleet_alert_due(blip, now=50.0), "a 3 s blip is no alert, however long its recovery"


def test_silence_while_recovering_from_a_spell_is_the_same_spell() -> None:
    """After a broker outage the controller is back first and the agents follow on their backoff: the fleet may be
    silent for longer than ``deaf_after_s``. That relapse keeps the one fleet alert firing; it is not a second
    spell whose alert would resolve the first and fire again (seen with a 30 s outage)."""
    deaf = step(Hearing("hearing", 0.0, ""), DEAF, 0.0)
    recovering = step(deaf, HEARING, 30.0)
    relapse = step(recovering, SILENT, 36.0)
    assert relapse.state == "deaf"
    assert relapse.bad_since == 0.0, "the outage's spell goes on"
    assert all(fleet_alert_due(relapse, now=t) for t in (36.0, 40.0, 50.0)), "no gap: never resolved and raised"
    heard = step(step(relapse, HEARING, 50.0), HEARING, 51.0, heard=1.0)
    assert heard.state == "hearing"
    assert not fleet_alert_due(heard, now=51.0)
    after_start = step(starting(now=0.0, wall_now=1_800_000_000.0), SILENT, 20.0)
    assert after_start.bad_since == 20.0, "a start is no spell: silence after it begins one"


STATS = st.sampled_from([HEARING, DEAF, SILENT, LATE, SATURATED])


@settings(max_examples=300, deadline=None)
@given(
    spells=st.lists(st.tuples(STATS, st.floats(min_value=0.1, max_value=120.0)), max_size=12),
    heard=st.floats(min_value=0.0, max_value=1.0),
)
def test_once_the_ingest_hears_well_judging_resumes_within_the_bound(
    spells: list[tuple[IngestStats, float]], heard: float
) -> None:
    """Whatever happened before, once the ingest hears well, silence is judged again within the recovery bound
    (sooner when the fleet is heard again), and a bad state is never kept while the ingest hears well."""
    now = 0.0
    hearing = starting(now=now, wall_now=1_800_000_000.0)
    for stats, seconds in spells:
        end = now + seconds
        while now < end:
            now += 1.0
            hearing = step(hearing, stats, now, heard=heard)
    good_since = now
    while not hearing.judging:
        now += 1.0
        hearing = step(hearing, HEARING, now, heard=heard)
        assert hearing.state in ("recovering", "hearing"), "no bad state while the ingest hears well"
        assert now - good_since <= LIMITS.recovery_max_s + 1.0


# --- the credit: time the controller could not hear is nobody's silence -----------------------------------


def test_silence_in_a_hold_does_not_count() -> None:
    assert silence_credit(100.0, [(90.0, 130.0), (150.0, float("inf"))], now=160.0) == 30.0 + 10.0
    state = FleetState.for_inventory(load_inventory(write_inventory_once()))
    live = next(iter(state.boxes.values()))
    beat(live, 1_000.0)
    assert evaluate_reachability(live, now=1_040.0, interval_s=10.0, missed_beats=3).state == "offline"
    credited = evaluate_reachability(live, now=1_040.0, interval_s=10.0, missed_beats=3, holds=[(1_010.0, 1_030.0)])
    assert credited.state == "online"
    assert credited.since == 1_000.0, "the box's own last receive time is still shown"


def write_inventory_once() -> object:
    import tempfile
    from pathlib import Path

    return write_inventory(Path(tempfile.mkdtemp()) / "sites")


# --- what the ingest measures ----------------------------------------------------------------------------------


def test_the_ingest_measures_quiet_lag_and_saturation() -> None:
    clock = FakeClock()
    state = FleetState.for_inventory(load_inventory(write_inventory_once()))  # type: ignore[arg-type]
    ingest = Ingest(state, "mqtt://127.0.0.1:1", clock=clock)
    assert ingest.stats().since_last_message_s is None
    box, site = BoxId("sh-pudong-gpu-01"), SiteId("sh-pudong")
    reporter = BoxReporter(box, site, interval_s=10.0, clock=clock)

    def receive(delay_s: float = 0.0) -> None:
        payload = encode(reporter.heartbeat(host(), GpuReport(available=False, reason="none"), apps("running")))
        clock.advance(delay_s)
        started = clock.monotonic()
        assert ingest.handle(heartbeat_topic(box), payload) == "accepted"
        ingest._meter.message(started, clock.monotonic())

    for _ in range(6):  # on time, every 10 s
        receive()
        clock.advance(10.0)
    stats = ingest.stats()
    assert stats.since_last_message_s == 10.0
    assert (stats.busy, stats.lag_s) == (0.0, 0.0)
    receive(delay_s=8.0)  # sent, then held up 8 s on the way
    assert ingest.stats().lag_s == 8.0
    clock.advance(60.0)
    assert ingest.stats().since_last_message_s == 60.0
    assert ingest.stats().lag_s == 0.0, "nothing heard lately is nothing late"

    for _ in range(3000):  # a flood, back to back, for 3 s
        started = clock.monotonic()
        ingest.handle("edgefleet/v1/boxes/nobody/heartbeat", b"{garbage")
        clock.advance(0.001)
        ingest._meter.message(started, clock.monotonic())
    assert ingest.stats().busy > 0.9


def test_a_start_is_not_an_outage_unless_the_broker_stays_away() -> None:
    hearing = starting(now=0.0, wall_now=1_800_000_000.0)
    hearing = step(hearing, DEAF, 2.0)
    assert (hearing.state, hearing.after_start) == ("recovering", True), "not subscribed yet: starting"
    assert step(hearing, HEARING, 3.0, heard=0.5).state == "recovering"
    assert step(hearing, HEARING, LIMITS.restart_max_s + 1.0, heard=0.5).state == "hearing", "a restart's bound"
    assert step(hearing, DEAF, LIMITS.deaf_after_s + 1.0).state == "deaf", "a broker away for long is an outage"
