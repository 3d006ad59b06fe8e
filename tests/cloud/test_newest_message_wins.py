"""Heartbeats and statuses move a box's state forward only: duplicates, late and reordered messages of any
kind leave it as the newest messages say (edgefleet.cloud.fleet)."""

from __future__ import annotations

import math

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgefleet.cloud.fleet import BoxLive, apply_heartbeat, apply_status, health_point
from edgefleet.messages import BoxStatus, GpuReport, Heartbeat, HostSample
from tests.cloud.builders import BOOT_A, BOOT_B, BOOT_C, BOX, SITE, T0, gpus, heartbeat, status


def fresh() -> BoxLive:
    return BoxLive(BOX, SITE)


# --- heartbeats -------------------------------------------------------------------------------------------


def test_first_heartbeat_sets_everything_the_box_shows() -> None:
    box = fresh()
    beat = heartbeat(1, sent_at=T0 + 12.0)
    assert apply_heartbeat(box, beat, received_at=T0 + 10.0) == "accepted"
    assert (box.boot, box.seq, box.heartbeat) == (BOOT_A, 1, beat)
    assert box.boot_started_at == T0
    assert box.first_seen == box.last_seen == T0 + 10.0
    assert box.clock_skew_s == pytest.approx(2.0)  # the box's clock is 2 s ahead
    assert box.dirty
    assert box.unsaved_points == 1
    (point,) = box.history
    assert point.at == T0 + 10.0  # the controller's receive time, not the box's clock


def test_later_heartbeat_moves_last_seen_but_not_first_seen() -> None:
    box = fresh()
    apply_heartbeat(box, heartbeat(1), received_at=T0 + 10)
    apply_heartbeat(box, heartbeat(2, sent_at=T0 + 17.5), received_at=T0 + 20)
    assert (box.first_seen, box.last_seen) == (T0 + 10, T0 + 20)
    assert box.clock_skew_s == pytest.approx(-2.5)  # behind
    assert len(box.history) == 2


@pytest.mark.parametrize(
    ("first", "then", "outcome"),
    [
        (heartbeat(5), heartbeat(6), "accepted"),
        (heartbeat(5), heartbeat(5), "duplicate"),
        (heartbeat(5), heartbeat(4), "stale"),
        # A new boot starts its sequence again; it started later, so it is newer.
        (heartbeat(900), heartbeat(1, boot=BOOT_B, boot_started=T0 + 10_000), "accepted"),
        # A late heartbeat of the previous boot, whatever its sequence.
        (heartbeat(1, boot=BOOT_B, boot_started=T0 + 10_000), heartbeat(900), "stale"),
        # Another boot id that claims to have started at the same moment is not newer.
        (heartbeat(3), heartbeat(9, boot=BOOT_B, boot_started=T0), "stale"),
    ],
    ids=["next-seq", "same-seq", "lower-seq", "new-boot", "old-boot", "same-start"],
)
def test_heartbeat_order(first: Heartbeat, then: Heartbeat, outcome: str) -> None:
    box = fresh()
    # Received after every time the messages carry (a box's clock may not run ahead of the controller's).
    received = T0 + 20_000
    apply_heartbeat(box, first, received_at=received)
    before = (box.boot, box.seq, box.heartbeat, box.last_seen, len(box.history))
    assert apply_heartbeat(box, then, received_at=received + 1) == outcome
    if outcome == "accepted":
        assert (box.boot, box.seq, box.heartbeat, box.last_seen) == (then.boot, then.seq, then, received + 1)
    else:
        assert (box.boot, box.seq, box.heartbeat, box.last_seen, len(box.history)) == before


def test_a_refused_heartbeat_does_not_mark_the_box_for_saving() -> None:
    box = fresh()
    apply_heartbeat(box, heartbeat(2), received_at=T0)
    box.dirty = False
    box.unsaved_points = 0
    apply_heartbeat(box, heartbeat(2), received_at=T0 + 1)
    apply_heartbeat(box, heartbeat(1), received_at=T0 + 2)
    assert not box.dirty
    assert box.unsaved_points == 0


@pytest.mark.parametrize(
    ("gpu", "temperature", "utilization"),
    [
        (gpus((61.0, 40.0), (70.0, 60.0)), 70.0, 50.0),
        (gpus((None, 40.0), (55.0, None)), 55.0, 40.0),
        (gpus((None, None)), None, None),
        (GpuReport(available=False, reason="no NVIDIA driver"), None, None),
    ],
    ids=["two-gpus", "partial-readings", "no-readings", "no-gpu"],
)
def test_health_point_figures(gpu: GpuReport, temperature: float | None, utilization: float | None) -> None:
    beat = msgspec.structs.replace(heartbeat(1), gpu=gpu)
    point = health_point(beat, at=T0)
    assert point.cpu_percent == 12.5
    assert point.memory_used_percent == pytest.approx(75.0)  # 4,000 of 16,000 available
    assert point.disk_used_percent == pytest.approx(75.0)  # 250 of 1,000 free
    assert point.gpu_temperature_max_c == temperature
    assert point.gpu_utilization_avg_percent == utilization


def test_health_point_without_host_totals_has_no_percentages() -> None:
    beat = msgspec.structs.replace(heartbeat(1), host=HostSample(cpu_percent=None, memory_total_bytes=0))
    point = health_point(beat, at=T0)
    assert (point.cpu_percent, point.memory_used_percent, point.disk_used_percent) == (None, None, None)


# --- statuses ---------------------------------------------------------------------------------------------


def test_status_before_any_heartbeat_is_taken() -> None:
    box = fresh()
    assert apply_status(box, status("online"), received_at=T0) == "accepted"
    assert (box.status_state, box.status_boot, box.status_session) == ("online", BOOT_A, 1)
    box = fresh()
    assert apply_status(box, status("offline", reason="shutdown"), received_at=T0) == "accepted"
    assert (box.status_state, box.status_reason) == ("offline", "shutdown")


@pytest.mark.parametrize(
    ("first", "then", "outcome", "state"),
    [
        # The will of session 1 (stamped before session 1 connected) after session 2's "online": stale.
        (status("online", session=2, at=T0 + 50), status("offline", session=1, at=T0 + 1), "stale", "online"),
        # Offline of the current session after its online: the box is gone.
        (status("online", session=2, at=T0 + 50), status("offline", session=2, at=T0 + 49), "accepted", "offline"),
        (status("online", session=2), status("online", session=2), "duplicate", "online"),
        (status("offline", session=2), status("online", session=2), "stale", "offline"),
        (status("offline", session=2), status("online", session=3), "accepted", "online"),
        # The will of the previous boot delivered after the new boot's "online".
        (
            status("online", boot=BOOT_B, at=T0 + 10_001),
            status("offline", boot=BOOT_A, session=7, at=T0 + 500),
            "stale",
            "online",
        ),
        (
            status("offline", boot=BOOT_A, session=7, at=T0 + 500),
            status("online", boot=BOOT_B, at=T0 + 10_001),
            "accepted",
            "online",
        ),
    ],
    ids=[
        "stale-will-after-new-online",
        "offline-of-current-session",
        "duplicate",
        "online-after-offline-same-session",
        "reconnect",
        "old-boot-will-after-new-boot",
        "new-boot-after-old-boot-will",
    ],
)
def test_status_order(first: BoxStatus, then: BoxStatus, outcome: str, state: str) -> None:
    box = fresh()
    apply_status(box, first, received_at=T0 + 20_000)
    assert apply_status(box, then, received_at=T0 + 20_001) == outcome
    assert box.status_state == state


def test_status_of_a_boot_older_than_the_heartbeats_is_stale() -> None:
    box = fresh()
    apply_heartbeat(box, heartbeat(1, boot=BOOT_B, boot_started=T0 + 10_000), received_at=T0 + 10_010)
    # Stamped before BOOT_B started: it belongs to an earlier boot.
    assert apply_status(box, status("offline", boot=BOOT_A, at=T0 + 9_000), received_at=T0 + 10_011) == "stale"
    assert box.status_state is None


def test_online_of_another_boot_is_taken_when_stamped_after_the_current_boot_started() -> None:
    box = fresh()
    apply_heartbeat(box, heartbeat(3), received_at=T0 + 30)
    assert apply_status(box, status("online", boot=BOOT_B, at=T0), received_at=T0 + 31) == "accepted"
    box = fresh()
    apply_heartbeat(box, heartbeat(3), received_at=T0 + 30)
    assert apply_status(box, status("online", boot=BOOT_B, at=T0 - 0.5), received_at=T0 + 31) == "stale"


def test_heartbeat_of_a_new_boot_clears_the_status_of_the_old_one() -> None:
    box = fresh()
    apply_heartbeat(box, heartbeat(3), received_at=T0 + 30)
    apply_status(box, status("offline", session=1, at=T0 + 1), received_at=T0 + 31)
    apply_heartbeat(box, heartbeat(1, boot=BOOT_B, boot_started=T0 + 100), received_at=T0 + 110)
    assert (box.status_state, box.status_boot) == (None, None)


def test_heartbeat_of_a_new_boot_keeps_that_boots_own_status() -> None:
    box = fresh()
    apply_heartbeat(box, heartbeat(3), received_at=T0 + 30)
    apply_status(box, status("online", boot=BOOT_B, at=T0 + 101), received_at=T0 + 102)
    apply_heartbeat(box, heartbeat(1, boot=BOOT_B, boot_started=T0 + 100), received_at=T0 + 110)
    assert (box.status_state, box.status_boot) == ("online", BOOT_B)


# --- any interleaving -------------------------------------------------------------------------------------

BOOTS = (BOOT_A, BOOT_B, BOOT_C)
BOOT_SPACING = 10_000.0


def _boot_start(index: int) -> float:
    return T0 + BOOT_SPACING * index


@st.composite
def box_stories(draw: st.DrawFn) -> list[Heartbeat | BoxStatus]:
    """Messages one box could send over up to three boots (each boot's times inside its own life, as the
    agent makes them), drawn with repetition (QoS 1 duplicates) and shuffled (any delivery order)."""
    possible: list[Heartbeat | BoxStatus] = []
    for index in range(draw(st.integers(1, 3))):
        boot, start = BOOTS[index], _boot_start(index)
        possible += [heartbeat(seq, boot=boot, boot_started=start) for seq in range(1, draw(st.integers(0, 5)) + 1)]
        for session in range(1, draw(st.integers(0, 3)) + 1):
            connect = start + 100.0 * session
            # The will is stamped when it is set, just before the connection; "online" once connected.
            possible.append(status("offline", boot=boot, session=session, at=connect))
            possible.append(status("online", boot=boot, session=session, at=connect + 1))
    if not possible:
        return []
    chosen = draw(st.lists(st.sampled_from(possible), max_size=25))
    return draw(st.permutations(chosen))


def _boot_index(boot: str | None) -> int:
    return -1 if boot is None else BOOTS.index(boot)


def _heartbeat_key(box: BoxLive) -> tuple[int, int]:
    return _boot_index(box.boot), box.seq


def _status_key(box: BoxLive) -> tuple[int, int, int] | None:
    if box.status_state is None:
        return None
    return _boot_index(box.status_boot), box.status_session, int(box.status_state == "offline")


def _message_key(message: BoxStatus) -> tuple[int, int, int]:
    return _boot_index(message.boot), message.session, int(message.state == "offline")


def _in_a_burst(i: int) -> float:
    """The receive time of the ``i``th message of a story: all of them within less than half an interval (the
    stories' heartbeats say 10 s), as a reconnect's flush or a broker's backlog arrives. Messages that keep
    arriving over intervals are a live run, which the rules take whatever its counters (test_box_that_keeps_
    heartbeating_wins)."""
    return T0 + 100_000 + i * 0.1


def apply(box: BoxLive, message: Heartbeat | BoxStatus, received_at: float) -> str:
    if isinstance(message, Heartbeat):
        return apply_heartbeat(box, message, received_at=received_at)
    return apply_status(box, message, received_at=received_at)


@settings(max_examples=300, deadline=None)
@given(box_stories())
def test_any_order_ends_in_the_state_of_the_newest_messages(story: list[Heartbeat | BoxStatus]) -> None:
    box = fresh()
    for i, message in enumerate(story):
        apply(box, message, received_at=_in_a_burst(i))
    beats = [m for m in story if isinstance(m, Heartbeat)]
    newest_beat = max(beats, key=lambda m: (_boot_index(m.boot), m.seq), default=None)
    if newest_beat is None:
        assert (box.boot, box.seq, box.heartbeat, box.last_seen) == (None, 0, None, None)
    else:
        assert (box.boot, box.seq, box.heartbeat) == (newest_beat.boot, newest_beat.seq, newest_beat)
        assert box.boot_started_at == _boot_start(_boot_index(newest_beat.boot))
    # The status that stands is the newest one not older than the heartbeats' boot.
    floor = _boot_index(box.boot)
    statuses = [m for m in story if isinstance(m, BoxStatus) and _boot_index(m.boot) >= floor]
    newest_status = max(statuses, key=_message_key, default=None)
    if newest_status is None:
        assert _status_key(box) is None
    else:
        assert _status_key(box) == _message_key(newest_status)
        assert (box.status_at, box.status_reason) == (newest_status.at, newest_status.reason)


@settings(max_examples=300, deadline=None)
@given(box_stories())
def test_state_never_moves_backwards(story: list[Heartbeat | BoxStatus]) -> None:
    box = fresh()
    for i, message in enumerate(story):
        beat_before, status_before = _heartbeat_key(box), _status_key(box)
        outcome = apply(box, message, received_at=_in_a_burst(i))
        assert _heartbeat_key(box) >= beat_before
        status_after = _status_key(box)
        if status_after is None:
            # Only a heartbeat of a newer boot clears a status, and only one of an older boot.
            assert status_before is None or status_before[0] < _boot_index(box.boot)
        elif status_before is not None:
            assert status_after >= status_before
        if outcome != "accepted":
            assert (_heartbeat_key(box), _status_key(box)) == (beat_before, status_before)


@settings(max_examples=200, deadline=None)
@given(box_stories())
def test_replaying_every_message_again_changes_nothing(story: list[Heartbeat | BoxStatus]) -> None:
    box = fresh()
    for i, message in enumerate(story):
        apply(box, message, received_at=_in_a_burst(i))
    settled = (_heartbeat_key(box), _status_key(box), box.heartbeat, box.last_seen)
    outcomes = {apply(box, message, received_at=T0 + 200_000) for message in story}
    assert outcomes <= {"duplicate", "stale"}
    assert (_heartbeat_key(box), _status_key(box), box.heartbeat, box.last_seen) == settled


def test_boot_spacing_keeps_every_status_inside_its_boot() -> None:
    # The stories above rely on it: the last will of a boot is stamped well before the next boot starts.
    assert BOOT_SPACING > 100.0 * 3 + 1
    assert not math.isclose(_boot_start(1), _boot_start(0))
