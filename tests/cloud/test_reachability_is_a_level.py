"""Whether a box is reachable is computed from its last heartbeat and status against ``now`` on every read,
and a site's health from its boxes (edgefleet.cloud.fleet)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgefleet.cloud.fleet import (
    BoxLive,
    FleetState,
    Reachability,
    ReachabilityState,
    apply_heartbeat,
    apply_status,
    evaluate_reachability,
    heartbeat_timeout,
    site_health,
    summarize_site,
)
from tests.cloud.builders import BOOT_B, BOX, BOX_2, OTHER_SITE, SITE, T0, heartbeat, inventory, status

INTERVAL = 10.0
BEATS = 3


def reach(box: BoxLive, now: float) -> Reachability:
    return evaluate_reachability(box, now=now, interval_s=INTERVAL, missed_beats=BEATS)


def seen_at(received_at: float, seq: int = 1) -> BoxLive:
    box = BoxLive(BOX, SITE)
    apply_heartbeat(box, heartbeat(seq), received_at=received_at)
    return box


def test_never_seen_box() -> None:
    assert reach(BoxLive(BOX, SITE), T0) == Reachability("never-seen", "never-seen", None)


@pytest.mark.parametrize(
    ("age", "state", "reason"),
    [
        (0.0, "online", "connected"),
        (29.0, "online", "connected"),
        (30.0, "online", "connected"),  # missed_beats x interval: within the jitter allowance
        (35.0, "online", "connected"),
        (36.0, "online", "connected"),  # exactly the timeout (3 x 10 s + 20%): still online
        (math.nextafter(36.0, math.inf), "offline", "heartbeat-timeout"),
        (37.0, "offline", "heartbeat-timeout"),
        (86_400.0, "offline", "heartbeat-timeout"),
    ],
)
def test_heartbeat_timeout_boundary(age: float, state: ReachabilityState, reason: str) -> None:
    assert heartbeat_timeout(10.0, 3) == 36.0
    # last_seen 0.0 keeps every age exact in floating point, so the boundary is the boundary.
    assert reach(seen_at(0.0), age) == Reachability(state, reason, 0.0)


@settings(max_examples=200, deadline=None)
@given(
    last_seen=st.floats(0, 4e9),
    interval=st.floats(0.5, 3600),
    beats=st.integers(1, 100),
    ages=st.lists(st.floats(0, 1e6), min_size=2, max_size=5),
)
def test_once_timed_out_a_silent_box_stays_offline(
    last_seen: float, interval: float, beats: int, ages: list[float]
) -> None:
    box = seen_at(last_seen)
    states = [
        evaluate_reachability(box, now=last_seen + age, interval_s=interval, missed_beats=beats).state
        for age in sorted(ages)
    ]
    # Online for a while after the heartbeat, then offline for good: never offline before online.
    assert states == sorted(states, key=lambda s: s == "offline")
    assert set(states) <= {"online", "offline"}


@pytest.mark.parametrize("reason", ["shutdown", "connection-lost"])
def test_offline_status_wins_over_a_fresh_heartbeat(reason: str) -> None:
    box = seen_at(T0, seq=4)
    apply_status(box, status("offline", reason=reason), received_at=T0 + 1)
    assert reach(box, T0 + 1) == Reachability("offline", reason, T0)


def test_offline_status_of_a_box_never_heard_from() -> None:
    box = BoxLive(BOX, SITE)
    apply_status(box, status("offline", reason="shutdown"), received_at=T0)
    assert reach(box, T0) == Reachability("offline", "shutdown", None)


def test_heartbeat_after_offline_with_higher_seq_means_the_box_is_back() -> None:
    box = seen_at(T0, seq=4)
    apply_status(box, status("offline"), received_at=T0 + 20)
    # A QoS 1 duplicate of a heartbeat the controller already had says nothing new.
    assert apply_heartbeat(box, heartbeat(4), received_at=T0 + 21) == "duplicate"
    assert reach(box, T0 + 21).state == "offline"
    # Seq 5 was sent after the will: the agent reconnected and its "online" is late or lost.
    assert apply_heartbeat(box, heartbeat(5), received_at=T0 + 30) == "accepted"
    assert reach(box, T0 + 30) == Reachability("online", "connected", T0 + 30)
    assert box.status_state == "offline"  # the status channel still says what it last said


def test_first_heartbeat_of_a_boot_that_said_offline_before_any_heartbeat_means_back() -> None:
    box = BoxLive(BOX, SITE)
    apply_status(box, status("offline", at=T0 + 1), received_at=T0 + 2)
    apply_heartbeat(box, heartbeat(1, boot_started=T0), received_at=T0 + 11)
    assert reach(box, T0 + 11).state == "online"


def test_online_again_after_the_reconnect() -> None:
    box = seen_at(T0, seq=4)
    apply_status(box, status("offline", session=1), received_at=T0 + 20)
    apply_status(box, status("online", session=2, at=T0 + 25), received_at=T0 + 26)
    assert reach(box, T0 + 26) == Reachability("online", "connected", T0)


def test_stale_will_after_new_online_leaves_the_box_online() -> None:
    box = seen_at(T0, seq=4)
    apply_status(box, status("online", session=2, at=T0 + 25), received_at=T0 + 26)
    assert apply_status(box, status("offline", session=1, at=T0 + 1), received_at=T0 + 27) == "stale"
    assert reach(box, T0 + 27).state == "online"


def test_box_that_restarted_and_died_before_its_first_heartbeat_is_offline() -> None:
    box = seen_at(T0, seq=4)
    apply_status(box, status("online", boot=BOOT_B, at=T0 + 100), received_at=T0 + 101)
    apply_status(box, status("offline", boot=BOOT_B, at=T0 + 99), received_at=T0 + 102)
    assert reach(box, T0 + 102) == Reachability("offline", "connection-lost", T0)


# --- sites ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("states", "health"),
    [
        (["online", "online"], "ok"),
        (["online", "offline"], "degraded"),
        (["online", "never-seen"], "degraded"),
        (["offline", "offline"], "unreachable"),
        (["offline", "never-seen"], "unreachable"),
        (["never-seen", "never-seen"], "unknown"),
        ([], "unknown"),
    ],
)
def test_site_health(states: list[ReachabilityState], health: str) -> None:
    assert site_health(states) == health


def test_summarize_site_counts_boxes_with_the_sites_own_timeout() -> None:
    state = FleetState.for_inventory(inventory(interval_s=10.0, missed_beats=3))
    apply_heartbeat(state.boxes[BOX], heartbeat(1), received_at=T0)
    summary = summarize_site(state, SITE, now=T0 + 30)
    assert (summary.boxes_total, summary.boxes_online, summary.boxes_offline, summary.boxes_never_seen) == (2, 1, 0, 1)
    assert summary.health == "degraded"
    apply_heartbeat(state.boxes[BOX_2], heartbeat(1, box=BOX_2), received_at=T0 + 5)
    assert summarize_site(state, SITE, now=T0 + 36).health == "ok"
    assert summarize_site(state, SITE, now=T0 + 40).health == "degraded"
    assert summarize_site(state, SITE, now=T0 + 42).health == "unreachable"
    assert summarize_site(state, OTHER_SITE, now=T0).health == "unknown"


def test_summarize_unknown_site_raises_key_error() -> None:
    with pytest.raises(KeyError):
        summarize_site(FleetState.for_inventory(inventory()), "no-such-site", now=T0)  # type: ignore[arg-type]
