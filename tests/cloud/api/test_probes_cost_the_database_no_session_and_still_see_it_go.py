"""/healthz and /readyz answer from what the controller already knows (issue 19): who leads from the election's own
reads of the lease row (``Election.view``), the database from a check on the store's pool given again for
``CHECK_EVERY_S`` (``Store.check``). A load balancer probing every second used to open a PostgreSQL session per
probe (the lease read on a connection of its own). Both ways are checked on real ``edgefleet cloud serve``
replicas and a real PostgreSQL database: many probes of a leader and a standby open (almost) no session, counted by
PostgreSQL itself (``pg_stat_database.sessions``); and the probes still say the database is away once it is (every
backend ended, new ones refused), and ok again once it is back. PostgreSQL only (EDGEFLEET_TEST_DATABASE_URL)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from edgefleet.cloud.leading import VIEW_FRESH_S
from edgefleet.cloud.store import CHECK_EVERY_S
from tests.cloud.api.memory import write_inventory
from tests.faults.database_outage import Terminator
from tests.faults.test_the_leader_is_killed import Replica, leader_of
from tests.support.peers import Mosquitto, postgres_database, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

PROBES = 60
# Sessions the replicas may open meanwhile for reasons of their own (a pooled session replaced, a token read): far
# fewer than one per probe, which is what the lease read on a connection of its own cost.
SPARE_SESSIONS = 10
# A generous bound on "within a few seconds" (``VIEW_FRESH_S``, ``CHECK_EVERY_S``) on a loaded machine; the figure
# itself is printed.
OUTAGE_SEEN_BOUND_S = 60.0


@pytest.fixture
def server_url() -> str:
    server = os.environ.get("EDGEFLEET_TEST_DATABASE_URL")
    if not server:
        pytest.skip("EDGEFLEET_TEST_DATABASE_URL is not set (CI sets it)")
    return server


@pytest.fixture
def replicas(server_url: str, tmp_path: Path, broker: Mosquitto) -> Iterator[tuple[str, Replica, Replica]]:
    """(the database's name, the leader, the standby): two replicas on a database of the test's own."""
    sites = write_inventory(tmp_path / "sites")
    with postgres_database(server_url) as url, ExitStack() as stack:
        started = []
        for name in ("first", "second"):
            replica = Replica(name, broker=broker, sites=sites, database=url, directory=tmp_path)
            stack.callback(replica.stop)
            wait_for(replica.health, timeout=60, what=f"{name} to answer /healthz")
            started.append(replica)
        leader, standby = leader_of(*started)
        yield url.rsplit("/", 1)[1], leader, standby


def sessions(server_url: str, database: str) -> int:
    """How many sessions PostgreSQL has let into ``database`` since its statistics began (counted at connect)."""
    engine = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT pg_stat_clear_snapshot()"))
            count = connection.execute(
                sa.text("SELECT sessions FROM pg_stat_database WHERE datname = :name"), {"name": database}
            ).scalar_one()
    finally:
        engine.dispose()
    return int(count)


def settled_sessions(server_url: str, database: str) -> int:
    """The count once it stops moving: a backend's statistics reach the shared counters a moment after it starts."""
    last = sessions(server_url, database)
    while True:
        time.sleep(1.5)
        now = sessions(server_url, database)
        if now == last:
            return now
        last = now


def test_probes_of_a_leader_and_a_standby_open_no_session_each(
    server_url: str, replicas: tuple[str, Replica, Replica]
) -> None:
    database, leader, standby = replicas
    before = wait_for(lambda: settled_sessions(server_url, database), timeout=60, what="the session count to settle")

    answered: list[dict[str, Any]] = []
    for _ in range(PROBES // 2):
        for replica in (leader, standby):
            health = replica.health()
            assert health is not None
            answered.append(health)
            assert replica.client.get("/readyz").status_code == 200
    after = settled_sessions(server_url, database)

    assert {h["status"] for h in answered} == {"ok"}
    # Each probe still names who leads, from the election's reads: the leader and its epoch.
    assert {(h["leadership"]["leader_address"], h["leadership"]["epoch"]) for h in answered} == {(leader.url, 1)}
    assert {h["leadership"]["role"] for h in answered} == {"leader", "standby"}
    print(f"\n{2 * PROBES} probes (/healthz and /readyz) opened {after - before} session(s)")
    assert after - before <= SPARE_SESSIONS, f"{after - before} sessions for {2 * PROBES} probes"


def test_the_probes_say_the_database_is_away_and_back(server_url: str, replicas: tuple[str, Replica, Replica]) -> None:
    database, leader, standby = replicas
    terminator = Terminator(server_url, database)

    def away(replica: Replica) -> dict[str, Any] | None:
        health = replica.health()
        if health is None or health["status"] != "unavailable" or health["database_ok"]:
            return None
        if replica.client.get("/readyz").status_code != 503:
            return None
        return health

    cut_at = time.monotonic()
    terminator.start()
    try:
        seen = [
            wait_for(partial(away, replica), timeout=OUTAGE_SEEN_BOUND_S, what=f"{replica.name} to see the outage")
            for replica in (leader, standby)
        ]
        print(
            f"\nthe outage seen by both replicas' probes {time.monotonic() - cut_at:.1f} s after it began "
            f"(the answers are at most {CHECK_EVERY_S:g} s and {VIEW_FRESH_S:g} s old)"
        )
        for health in seen:
            assert any(database in problem for problem in health["problems"]), health["problems"]
    finally:
        terminator.stop()
    assert terminator.ended > 0, "the outage ended the replicas' sessions"

    def back(replica: Replica) -> bool:
        health = replica.health()
        return health is not None and health["database_ok"] and replica.client.get("/readyz").status_code == 200

    for replica in (leader, standby):
        wait_for(partial(back, replica), timeout=OUTAGE_SEEN_BOUND_S, what=f"{replica.name} to see the database back")
    leader_of(leader, standby)
