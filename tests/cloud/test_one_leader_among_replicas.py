"""One leader among the controllers that share a PostgreSQL database (edgefleet.cloud.leading): the first to try
leads at epoch 1, the others stand by and name it; a clean stop hands over at the next try; a leader whose epoch
was superseded has its write refused in the write's own transaction and steps down; a takeover blocked by a frozen
leader's open fenced transaction ends that session. The lease arithmetic is pure and tested first, on every
database. PostgreSQL parts run when EDGEFLEET_TEST_DATABASE_URL is set. Real processes killed with -9 and frozen
with SIGSTOP: tests/faults/test_the_leader_is_killed.py."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from edgefleet.clock import FakeClock
from edgefleet.cloud.leading import (
    CLOCK_MARGIN_S,
    CONTEND_EVERY_S,
    DEAF_GRACE_S,
    DEFAULT_TIMING,
    ELECTION_STATEMENT_TIMEOUT_S,
    LEASE_S,
    RENEW_EVERY_S,
    TAKEOVER_LOCK_WAIT_S,
    Election,
    Leadership,
    LeaseTiming,
    NotLeaderError,
    contend_grace,
    local_deadline,
    should_step_down_deaf,
    take_leadership,
    takeover_within,
)
from edgefleet.cloud.migrating import upgrade_schema
from edgefleet.cloud.settings import LEADER_LEASE_MAX_S, LEADER_LEASE_MIN_S
from edgefleet.cloud.store import Store
from tests.cloud.builders import T0
from tests.support.peers import postgres_database, wait_for

# --- the lease arithmetic (pure) ---------------------------------------------------------------------------


leases = st.floats(min_value=LEADER_LEASE_MIN_S, max_value=LEADER_LEASE_MAX_S, allow_nan=False)


@given(
    sent_at=st.floats(min_value=0, max_value=1e9, allow_nan=False),
    latency=st.floats(min_value=0, max_value=30, allow_nan=False),
    drift=st.floats(min_value=-1e-3, max_value=1e-3, allow_nan=False),
    lease_s=leases,
)
def test_a_leader_stops_believing_before_its_lease_ends_by_the_databases_clock(
    sent_at: float, latency: float, drift: float, lease_s: float
) -> None:
    # The database stamps the lease's end at its now() when the renewal arrives (``latency`` after the send) plus
    # the lease; the leader's clock runs ``drift`` (1,000 ppm either way: far worse than any quartz) off it. Any
    # lease an operator may set.
    timing = LeaseTiming(lease_s)
    expires_in_db_time = latency + lease_s
    believes_for_local = local_deadline(sent_at, timing) - sent_at
    believes_for_db = believes_for_local * (1 + drift)
    assert believes_for_db < expires_in_db_time


def test_the_default_lease_keeps_its_times() -> None:
    assert LeaseTiming(6.0) == DEFAULT_TIMING
    assert (LEASE_S, RENEW_EVERY_S, CONTEND_EVERY_S, CLOCK_MARGIN_S) == (6.0, 1.0, 0.5, 1.0)
    assert (ELECTION_STATEMENT_TIMEOUT_S, TAKEOVER_LOCK_WAIT_S) == (3.0, 2.0)


@given(lease_s=leases)
def test_every_time_follows_the_lease_in_the_defaults_proportions(lease_s: float) -> None:
    timing = LeaseTiming(lease_s)
    assert timing.renew_every_s == pytest.approx(lease_s / 6)
    assert timing.contend_every_s == pytest.approx(lease_s / 12)
    assert timing.clock_margin_s == pytest.approx(lease_s / 6)
    # What the proportions are for: five renewals fail before the lease runs out; a candidate tries twice a
    # renewal; the margin covers a clock 1/6 fast; the lock wait ends before the statement's timeout.
    assert timing.renew_every_s * 5 < lease_s
    assert timing.contend_every_s < timing.renew_every_s
    assert local_deadline(0.0, timing) * (1 + 1 / 6) <= lease_s + 1e-9
    assert timing.takeover_lock_wait_s < timing.statement_timeout_s < lease_s
    assert takeover_within(timing) == pytest.approx(lease_s * 13 / 12)


@pytest.mark.parametrize("lease_s", [0.0, 1.9, 60.5, float("inf"), float("nan")])
def test_a_lease_out_of_bounds_is_refused(lease_s: float) -> None:
    with pytest.raises(ValueError, match="expected a leader lease from 2 s to 60 s"):
        LeaseTiming(lease_s)


@given(sent_at=st.floats(min_value=0, max_value=1e9, allow_nan=False))
def test_a_renewal_gives_the_lease_less_the_margin(sent_at: float) -> None:
    assert local_deadline(sent_at) - sent_at == pytest.approx(LEASE_S - CLOCK_MARGIN_S)
    assert local_deadline(sent_at + 1) > local_deadline(sent_at)


def test_a_takeover_comes_within_the_15_s_target() -> None:
    assert takeover_within() == LEASE_S + CONTEND_EVERY_S
    assert takeover_within() < 15
    assert takeover_within() + DEAF_GRACE_S < 15  # even when only a replica that does not hear is left


@pytest.mark.parametrize(
    ("hears", "grace"),
    [(True, 0.0), (False, DEAF_GRACE_S)],
)
def test_a_candidate_that_does_not_hear_lets_a_hearing_one_win(hears: bool, grace: float) -> None:
    assert contend_grace(hears_broker=hears) == grace


@pytest.mark.parametrize(
    ("deaf_for_s", "elected_deaf", "steps_down"),
    [
        (None, False, False),  # hears
        (DEAF_GRACE_S - 0.1, False, False),  # a blip
        (DEAF_GRACE_S, False, True),
        (DEAF_GRACE_S * 10, True, False),  # nobody heard better when it was elected: stepping down hands it round
    ],
)
def test_a_leader_that_stops_hearing_its_broker_steps_down(
    deaf_for_s: float | None, elected_deaf: bool, steps_down: bool
) -> None:
    assert should_step_down_deaf(deaf_for_s=deaf_for_s, elected_deaf=elected_deaf) is steps_down


# --- PostgreSQL: the election ------------------------------------------------------------------------------


@pytest.fixture
def postgres_url() -> Iterator[str]:
    server = os.environ.get("EDGEFLEET_TEST_DATABASE_URL")
    if not server:
        pytest.skip("EDGEFLEET_TEST_DATABASE_URL is not set (CI sets it)")
    with postgres_database(server) as url:
        store = Store(url)
        upgrade_schema(store)
        store.close()
        yield url


@pytest.fixture
def store(postgres_url: str) -> Iterator[Store]:
    store = Store(postgres_url)
    yield store
    store.close()


def replicas(url: str, count: int) -> list[Leadership]:
    return [take_leadership(url, clock=FakeClock(T0), address=f"http://127.0.0.1:{8000 + i}") for i in range(count)]


def expire_the_lease(store: Store) -> None:
    """What a leader frozen past its lease leaves: a lease whose end has passed by the database's clock."""
    with store.transaction("expire the lease") as connection:
        connection.execute(sa.text("UPDATE leader_lease SET expires_at = now() - interval '1 second'"))


@pytest.mark.postgres
def test_the_first_replica_leads_and_every_replica_names_it(postgres_url: str) -> None:
    first, second, third = replicas(postgres_url, 3)
    try:
        assert (first.leader, second.leader, third.leader) == (True, False, False)
        assert (first.epoch, second.epoch, third.epoch) == (1, None, None)
        views = [r.view() for r in (first, second, third)]
        assert {(v.leader, v.address, v.epoch, v.since) for v in views} == {
            (views[0].leader, "http://127.0.0.1:8000", 1, views[0].since)
        }
        assert views[0].leader is not None
        assert views[0].leader.pid == os.getpid()
        assert [v.is_me for v in views] == [True, False, False]
    finally:
        for r in (third, second, first):
            r.stop()


@pytest.mark.postgres
def test_a_clean_stop_hands_over_at_the_next_try(postgres_url: str) -> None:
    first, second = replicas(postgres_url, 2)
    try:
        first.stop()
        wait_for(lambda: second.leader, timeout=10, what="the standby to take over")
        assert second.epoch == 2
        assert second.view().address == "http://127.0.0.1:8001"
    finally:
        second.stop()


@pytest.mark.postgres
def test_a_short_lease_is_what_the_database_stamps_and_what_the_session_waits(postgres_url: str) -> None:
    short = LeaseTiming(2.0)
    leader = take_leadership(postgres_url, clock=FakeClock(T0), timing=short)
    try:
        assert leader.leader
        expires_in = leader.view().expires_in_s
        assert expires_in is not None
        assert 0 < expires_in <= 2.0  # a 6 s lease would show up to 6
        assert isinstance(leader, Election)
        with leader._engine.connect() as connection:  # the election's own sessions' limits follow the lease
            timeouts = [
                connection.execute(sa.text(f"SHOW {name}")).scalar_one()
                for name in ("statement_timeout", "lock_timeout")
            ]
        assert timeouts == ["1s", "666ms"]
    finally:
        leader.stop()


@pytest.mark.postgres
def test_a_superseded_leader_is_refused_in_its_write_and_steps_down(postgres_url: str, store: Store) -> None:
    old, new = replicas(postgres_url, 2)
    deposed = threading.Event()
    old.start(lambda epoch: None, lambda why: deposed.set())
    store.fence = old.fence
    try:
        with store.transaction("a write before the takeover", fenced=True):
            pass
        # Its lease runs out (it was frozen, or cut off) and the standby takes over; the old one's own clock has
        # not told it yet (its renewal thread is held off by its lease: this is the fence's case).
        old._stopping.set()  # type: ignore[attr-defined]  # its thread renews no more, as a frozen process's
        expire_the_lease(store)
        wait_for(lambda: new.leader, timeout=10, what="the standby to take over")

        with (
            pytest.raises(NotLeaderError, match="epoch 1 was superseded by epoch 2"),
            store.transaction("a write after the takeover", fenced=True),
        ):
            pytest.fail("the write's body must not run")  # pragma: no cover

        assert deposed.is_set(), "it stepped down"
        assert old.epoch is None
        assert not old.leader
        assert new.epoch == 2
    finally:
        new.stop()
        old.stop()


@pytest.mark.postgres
def test_a_takeover_ends_a_frozen_leaders_open_write(postgres_url: str, store: Store) -> None:
    old, new = replicas(postgres_url, 2)
    store.fence = old.fence
    try:
        # The old leader is inside a fenced write, holding the lease row's key-share lock, and freezes there.
        connection = store.engine.connect()
        transaction = connection.begin()
        old.fence(connection)
        old._stopping.set()  # type: ignore[attr-defined]
        expire_the_lease(store)

        wait_for(lambda: new.leader, timeout=20, what="the takeover, past the frozen write")

        with pytest.raises(sa.exc.DBAPIError):  # its session was ended: the write cannot commit
            connection.execute(sa.text("SELECT 1"))
        transaction.rollback()
        connection.invalidate()
        assert new.epoch == 2
    finally:
        new.stop()
        old.stop()


@pytest.mark.postgres
def test_a_candidate_never_takes_a_live_lease(postgres_url: str) -> None:
    first, second = replicas(postgres_url, 2)
    try:
        assert isinstance(second, Election)
        for _ in range(5):
            assert not second.contend()
        assert first.leader
        assert first.epoch == 1
    finally:
        second.stop()
        first.stop()
