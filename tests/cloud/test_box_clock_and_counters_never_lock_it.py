"""A box's own clock and counters never lock its state: whatever one message on the box's topics claims (a
sequence jump, a boot started in the future, a retained "offline" a year ahead, a clock that ran ahead), a box
whose agent keeps heartbeating reads online within two intervals (edgefleet.cloud.fleet, through the ingest)."""

from __future__ import annotations

import logging

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgefleet import topics
from edgefleet.clock import FakeClock
from edgefleet.cloud.fleet import (
    MAX_CLOCK_SKEW_S,
    BoxLive,
    FleetState,
    apply_heartbeat,
    apply_status,
    box_reachability,
    evaluate_reachability,
)
from edgefleet.cloud.ingesting import MAX_COUNTER, Ingest
from edgefleet.messages import BoxStatus, Heartbeat
from tests.cloud.builders import BOOT_A, BOOT_B, BOOT_C, BOX, SITE, T0, heartbeat, inventory, status, wire

INTERVAL = 10.0
BEATS = 3
YEAR = 365 * 86_400.0
HEARTBEAT = topics.heartbeat_topic(BOX)
STATUS = topics.status_topic(BOX)


class Agent:
    """The box's real agent: boot BOOT_A started at T0 by a true clock, one heartbeat an interval."""

    def __init__(self, ingest: Ingest, clock: FakeClock, *, boot: str = BOOT_A, started: float = T0) -> None:
        self.ingest, self.clock, self.boot, self.started, self.seq = ingest, clock, boot, started, 0

    def beat(self) -> str:
        self.clock.advance(INTERVAL)
        self.seq += 1
        now = self.clock.now()
        return self.ingest.handle(
            HEARTBEAT, wire(heartbeat(self.seq, boot=self.boot, boot_started=self.started, sent_at=now))
        )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def ingest(clock: FakeClock) -> Ingest:
    # Never started: messages are handed to it the way paho's callback does.
    return Ingest(FleetState.for_inventory(inventory(INTERVAL, BEATS)), "mqtt://127.0.0.1:1", clock=clock)


def reads(ingest: Ingest, clock: FakeClock) -> str:
    return box_reachability(ingest.state, ingest.state.boxes[BOX], now=clock.now()).state


def settled_agent(ingest: Ingest, clock: FakeClock) -> Agent:
    agent = Agent(ingest, clock)
    ingest.handle(STATUS, wire(status("online", at=T0 + 1)))
    for _ in range(5):
        assert agent.beat() == "accepted"
    assert reads(ingest, clock) == "online"
    return agent


def test_a_sequence_jump_in_the_same_boot_is_won_back(ingest: Ingest, clock: FakeClock) -> None:
    agent = settled_agent(ingest, clock)
    now = clock.now()
    jump = heartbeat(agent.seq + 100_000, sent_at=now)
    assert ingest.handle(HEARTBEAT, wire(jump)) == "accepted"
    assert agent.beat() == "stale"  # the counters alone would hold the agent's beats late for 100,000 beats
    assert agent.beat() == "accepted"
    live = ingest.state.boxes[BOX]
    assert (live.seq, live.last_seen, reads(ingest, clock)) == (agent.seq, clock.now(), "online")
    assert agent.beat() == "accepted"


def test_a_new_boot_that_starts_in_the_future_is_won_back(ingest: Ingest, clock: FakeClock) -> None:
    agent = settled_agent(ingest, clock)
    future = heartbeat(1, boot=BOOT_B, boot_started=clock.now() + YEAR, sent_at=clock.now() + YEAR)
    assert ingest.handle(HEARTBEAT, wire(future)) == "clock-skew-clamped"
    live = ingest.state.boxes[BOX]
    assert live.boot_started_at == clock.now() + MAX_CLOCK_SKEW_S  # bounded by the receive time, not a year
    assert agent.beat() == "stale"
    assert agent.beat() == "accepted"
    assert (live.boot, reads(ingest, clock)) == (BOOT_A, "online")
    assert ingest.counters["clock-skew-clamped"] == 1


def test_a_retained_offline_of_a_new_boot_a_year_ahead_is_won_back(ingest: Ingest, clock: FakeClock) -> None:
    agent = settled_agent(ingest, clock)
    forged = status("offline", boot=BOOT_B, session=1, at=clock.now() + YEAR)
    assert ingest.handle(STATUS, wire(forged)) == "clock-skew-clamped"
    assert reads(ingest, clock) == "offline"  # a box that restarted and died says so: taken at once
    assert agent.beat() == "accepted"
    assert agent.beat() == "accepted"
    assert reads(ingest, clock) == "online"  # two beats after it: the box is alive, the "offline" is older
    assert ingest.state.boxes[BOX].status_state is None
    # Delivered again (the broker keeps it retained; a controller restart takes the snapshot again).
    assert ingest.handle(STATUS, wire(forged)) == "clock-skew-clamped"
    agent.beat()
    agent.beat()
    assert reads(ingest, clock) == "online"


def test_a_box_whose_clock_ran_a_year_ahead_and_was_corrected_is_online_within_two_intervals(
    ingest: Ingest, clock: FakeClock
) -> None:
    # The RTC battery died: the box boots a year ahead, and beats for an hour that way.
    ahead = Agent(ingest, clock, boot=BOOT_B, started=T0 + YEAR)
    for _ in range(360):
        beat = heartbeat(ahead.seq + 1, boot=BOOT_B, boot_started=T0 + YEAR, sent_at=clock.now() + INTERVAL + YEAR)
        clock.advance(INTERVAL)
        ahead.seq += 1
        assert ingest.handle(HEARTBEAT, wire(beat)) == "clock-skew-clamped"
        assert reads(ingest, clock) == "online"
    assert ingest.state.boxes[BOX].clock_skew_s == pytest.approx(YEAR)  # measured, so the alert says why
    # NTP corrects the clock and the agent restarts: a boot that "started" a year before the one it follows.
    corrected = Agent(ingest, clock, boot=BOOT_C, started=clock.now())
    first, second = corrected.beat(), corrected.beat()
    assert "accepted" in (first, second)
    assert (ingest.state.boxes[BOX].boot, reads(ingest, clock)) == (BOOT_C, "online")


def test_a_clock_corrected_within_a_boot_keeps_the_box_online(ingest: Ingest, clock: FakeClock) -> None:
    for seq in range(1, 4):
        clock.advance(INTERVAL)
        ahead = heartbeat(seq, sent_at=clock.now() + YEAR, boot_started=T0 + YEAR)
        assert ingest.handle(HEARTBEAT, wire(ahead)) == "clock-skew-clamped"
    clock.advance(INTERVAL)
    assert ingest.handle(HEARTBEAT, wire(heartbeat(4, sent_at=clock.now()))) == "accepted"
    assert reads(ingest, clock) == "online"


def test_stale_drops_are_logged_once_per_box_per_episode(
    ingest: Ingest, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    settled_agent(ingest, clock)
    caplog.set_level(logging.WARNING, "edgefleet.cloud.ingesting")
    for seq in (1, 2, 3):
        assert ingest.handle(HEARTBEAT, wire(heartbeat(seq))) == "stale"
    assert len([r for r in caplog.records if r.msg.startswith("Dropped late message")]) == 1
    clock.advance(INTERVAL)
    assert ingest.handle(HEARTBEAT, wire(heartbeat(6, sent_at=clock.now()))) == "accepted"  # the episode ends
    assert ingest.handle(HEARTBEAT, wire(heartbeat(1))) == "stale"
    late = [r for r in caplog.records if r.msg.startswith("Dropped late message")]
    assert len(late) == 2
    assert all(r.__dict__["box"] == BOX for r in late)
    assert ingest.counters["stale"] == 4


def test_a_clock_ahead_is_logged_once_per_episode(
    ingest: Ingest, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "edgefleet.cloud.ingesting")
    for seq in range(1, 4):
        clock.advance(INTERVAL)
        ingest.handle(HEARTBEAT, wire(heartbeat(seq, sent_at=clock.now() + 2 * MAX_CLOCK_SKEW_S)))
    assert len([r for r in caplog.records if r.msg.startswith("Clamped the time")]) == 1
    assert ingest.counters["clock-skew-clamped"] == 3


def test_a_time_within_the_allowed_skew_is_taken_as_sent(ingest: Ingest, clock: FakeClock) -> None:
    beat = heartbeat(1, sent_at=clock.now() + MAX_CLOCK_SKEW_S)
    assert ingest.handle(HEARTBEAT, wire(beat)) == "accepted"
    assert ingest.state.boxes[BOX].boot_started_at == beat.sent_at - beat.uptime_s


# --- any adversary on the box's own topics ----------------------------------------------------------------

ANY_TIME = st.floats(-10 * YEAR, 10 * YEAR, allow_nan=False)
ANY_BOOT = st.sampled_from([BOOT_A, BOOT_B, BOOT_C])


@st.composite
def forged_messages(draw: st.DrawFn) -> Heartbeat | BoxStatus:
    """Any heartbeat or status the schema admits, with the box's own id and site."""
    if draw(st.booleans()):
        beat = heartbeat(draw(st.integers(0, MAX_COUNTER)), boot=draw(ANY_BOOT))
        return msgspec.structs.replace(
            beat,
            sent_at=T0 + draw(ANY_TIME),
            uptime_s=draw(st.floats(0, 20 * YEAR)),
            interval_s=draw(st.floats(0.001, 3600)),
        )
    return status(
        draw(st.sampled_from(["online", "offline"])),
        boot=draw(ANY_BOOT),
        session=draw(st.integers(0, MAX_COUNTER)),
        at=T0 + draw(ANY_TIME),
    )


@settings(max_examples=400, deadline=None)
@given(
    attack=st.lists(st.tuples(st.floats(0, 20 * INTERVAL), forged_messages()), max_size=30),
    settle=st.integers(0, 5),
    repeat_at_end=st.booleans(),
)
def test_a_box_that_keeps_heartbeating_is_online_within_two_intervals_of_the_adversary_stopping(
    attack: list[tuple[float, Heartbeat | BoxStatus]], settle: int, repeat_at_end: bool
) -> None:
    box = BoxLive(BOX, SITE)
    events: list[tuple[float, int, Heartbeat | BoxStatus]] = []
    start = T0 + 1_000.0  # the agent's boot started at T0; its clock is true
    for k in range(settle + 25):
        t = start + k * INTERVAL
        events.append((t, 0, heartbeat(k + 1, boot=BOOT_A, boot_started=T0, sent_at=t)))
    for offset, message in attack:
        events.append((start + settle * INTERVAL + offset, 1, message))
    if repeat_at_end and attack:  # the last word is the adversary's, a retained status say, delivered again
        events.append((start + settle * INTERVAL + 20 * INTERVAL, 1, attack[-1][1]))
    events.sort(key=lambda e: (e[0], e[1]))
    stopped = max((t for t, who, _ in events if who == 1), default=start)
    for t, _, message in events:
        if t > stopped + 2 * INTERVAL:
            break
        if isinstance(message, Heartbeat):
            apply_heartbeat(box, message, received_at=t)
        else:
            apply_status(box, message, received_at=t)
    reach = evaluate_reachability(box, now=stopped + 2 * INTERVAL, interval_s=INTERVAL, missed_beats=BEATS)
    assert reach.state == "online", (reach, box)
