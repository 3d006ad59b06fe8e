"""What the database-outage fault tests share (``test_a_30_s_database_outage``, ``test_a_database_outage_under_two
replicas``): the fleet (one site of simulated boxes beating every second), the outage itself (``Terminator``), the
reads that judge the controllers through their API, and the checks that nothing heard during the outage is lost
and that the log stays bounded.

The outage: for ``OUTAGE_S`` the controllers' database refuses new connections (``ALTER DATABASE ...
ALLOW_CONNECTIONS false``) and every backend of it is ended (``pg_terminate_backend``, from an admin connection to
another database) every ``KILL_EVERY_S``: whatever session a controller holds or opens is cut, as when PostgreSQL is
down or unreachable. Ending backends alone is no outage: a fresh session renews the lease and saves in the gap
between two rounds."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from edgefleet.cloud.store import Store
from edgefleet.ids import BoxId
from simulator.running import BackgroundSimulator, SimulatorOptions, start_in_background
from tests.alerting.wiring.fleets import KEEPALIVE_S, write_sites
from tests.faults.test_the_leader_is_killed import Replica
from tests.support.peers import Mosquitto, wait_for

SITE = "outage-01"
OUTAGE_S = 30.0
KILL_EVERY_S = 0.5
# After the outage: the lease is taken at the next try (0.5 s), the persister flushes every 2 s; generous on a
# loaded machine, and the figure is printed.
CATCH_UP_BOUND_S = 30.0
# Lines the outage may leave in one controller's log about the database, however long it lasts: the persister's
# failure and recovery, the election's step-down, failed contention and recovery, the health check's change, the
# tokens' and the alert loop's failures. One a heartbeat would be ~90 here.
MAX_DATABASE_LINES = 20
# A saved point is the held one when their times are within this: the API says a time to the millisecond and the
# database keeps a float (rounding both to 3 places can split one point across a half-millisecond).
SAME_POINT_S = 0.0015


def database_server() -> str:
    """The PostgreSQL server the outage tests make their database on (skipped without one)."""
    server = os.environ.get("EDGEFLEET_TEST_DATABASE_URL")
    if not server:
        pytest.skip("EDGEFLEET_TEST_DATABASE_URL is not set (CI sets it)")
    return server


def site_boxes(count: int) -> list[str]:
    """The boxes of an outage site of ``count`` boxes, as ``write_sites`` names them."""
    return [f"{SITE}-edge-01"] + [f"{SITE}-gpu-{i:02d}" for i in range(1, count)]


def start_fleet(directory: Path, broker: Mosquitto, *, boxes: int) -> tuple[Path, BackgroundSimulator]:
    """The sites directory and a running simulator of one site of ``boxes`` boxes beating every second, lost after
    5 missed beats: a loaded machine must not make a box look lost here."""
    sites = write_sites(directory, {SITE: boxes})
    manifest = sites / f"{SITE}.yaml"
    text = manifest.read_text().replace("intervalSeconds: 0.5", "intervalSeconds: 1")
    manifest.write_text(text.replace("missedBeats: 3", "missedBeats: 5"))
    assert "intervalSeconds: 1," in manifest.read_text()
    assert "missedBeats: 5" in manifest.read_text()
    sim = start_in_background(
        SimulatorOptions(sites_dir=sites, broker_url=broker.url, listen="127.0.0.1:0", keepalive_s=KEEPALIVE_S, seed=19)
    )
    return sites, sim


class Terminator:
    """Closes one database to new connections and ends its backends every ``KILL_EVERY_S``, from an admin session
    on another database, until ``stop`` opens it again."""

    def __init__(self, server_url: str, database: str) -> None:
        self.engine = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
        self.database = database
        self.ended = 0
        self.rounds = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="terminator", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.engine.dispose()

    def _run(self) -> None:
        end = sa.text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = :name AND pid <> pg_backend_pid()"
        )
        with self.engine.connect() as connection:
            connection.execute(sa.text(f'ALTER DATABASE "{self.database}" ALLOW_CONNECTIONS false'))
            try:
                self._end_until_stopped(connection, end)
            finally:
                connection.execute(sa.text(f'ALTER DATABASE "{self.database}" ALLOW_CONNECTIONS true'))

    def _end_until_stopped(self, connection: sa.Connection, end: sa.TextClause) -> None:
        while not self._stop.is_set():
            self.ended += int(connection.execute(end, {"name": self.database}).scalar_one())
            self.rounds += 1
            self._stop.wait(KILL_EVERY_S)


@dataclass(frozen=True)
class Outage:
    """When the outage ran (wall clock), and what it did."""

    started: float
    ended: float
    rounds: int
    ended_sessions: int
    checks: int

    def describe(self) -> str:
        return (
            f"injected: the database closed to new connections and every backend ended every {KILL_EVERY_S} s for "
            f"{self.ended - self.started:.1f} s ({self.rounds} rounds, {self.ended_sessions} sessions ended)"
        )


def run_outage(server_url: str, database_url: str, check: Callable[[float], None]) -> Outage:
    """Cut the database at ``database_url`` for ``OUTAGE_S``, calling ``check(seconds into the outage)`` every
    0.5 s meanwhile (it asserts what must hold throughout)."""
    terminator = Terminator(server_url, database_url.rsplit("/", 1)[1])
    started = time.time()
    terminator.start()
    checks = 0
    try:
        while time.time() - started < OUTAGE_S:
            check(time.time() - started)
            checks += 1
            time.sleep(0.5)
    finally:
        terminator.stop()
    outage = Outage(started, time.time(), terminator.rounds, terminator.ended, checks)
    assert outage.ended_sessions > 0
    return outage


# --- reads through a controller's API ---------------------------------------------------------------------------


def online(replica: Replica) -> set[str] | None:
    """The boxes ``GET /api/v1/sites/.../boxes`` counts online at the site (None when the API did not answer 200)."""
    response = replica.client.get(f"/api/v1/sites/{SITE}/boxes")
    if response.status_code != 200:
        return None
    return {b["id"] for b in response.json() if b["reachability"]["state"] == "online"}


def held(replica: Replica, box: str, *, since: float, before: float) -> set[float]:
    """The times of the health points of ``box`` in [since, before) that the controller holds in memory (the
    box route answers the last hour from memory)."""
    response = replica.client.get(f"/api/v1/boxes/{box}", params={"history_s": 600})
    assert response.status_code == 200, response.text
    times = (datetime.fromisoformat(p["at"]).timestamp() for p in response.json()["history"])
    return {round(t, 3) for t in times if since <= t < before}


def seqs(replica: Replica) -> dict[str, int]:
    """Each box's sequence as the controller has it now."""
    response = replica.client.get(f"/api/v1/sites/{SITE}/boxes")
    assert response.status_code == 200, response.text
    return {b["id"]: int(b["seq"] or 0) for b in response.json()}


# --- what reached the database ----------------------------------------------------------------------------------


def wait_until_saved(store: Store, at_least: dict[str, int]) -> None:
    """Until every box's saved sequence has reached ``at_least``'s."""

    def saved() -> bool:
        boxes = {b.box: b.seq or 0 for b in store.load()[0]}
        return all(boxes.get(BoxId(box), 0) >= seq for box, seq in at_least.items())

    wait_for(saved, timeout=CATCH_UP_BOUND_S, interval=0.2, what="the saved state to catch up")


def saved_during(store: Store, boxes: list[str], outage: Outage) -> dict[str, list[float]]:
    """The times of each box's samples in the database dated within the outage (its first and last second
    left out: a point there may fall either side of the cut)."""
    return {
        box: [p.at for p in store.history(BoxId(box), since=outage.started + 1, before=outage.ended - 1)]
        for box in boxes
    }


def unsaved(held_times: set[float], saved_times: list[float]) -> list[float]:
    """The held points no saved sample matches (``SAME_POINT_S``)."""
    return [t for t in sorted(held_times) if not any(abs(t - s) <= SAME_POINT_S for s in saved_times)]


def told_twice(held_times: set[float], saved_times: list[float]) -> list[float]:
    """The held points more than one saved sample matches: one heartbeat saved twice."""
    return [t for t in sorted(held_times) if sum(abs(t - s) <= SAME_POINT_S for s in saved_times) > 1]


# --- the log ----------------------------------------------------------------------------------------------------


def database_lines(log: str) -> list[str]:
    """The warnings and errors of a controller's log about the database, the lease or saving."""
    words = ("database", "leader", "save", "flush", "contend", "api tokens", "health check")
    return [
        line
        for line in log.splitlines()
        if ("WARNING" in line or "ERROR" in line) and any(w in line.lower() for w in words)
    ]


def message(line: str) -> str:
    """``logger: Message`` of a log line (its time and its fields left out)."""
    _when, _, rest = line.partition(" WARNING ")
    return rest.split("=", 1)[0].rsplit(" ", 1)[0] if "=" in rest else rest


def check_log_bounded(replica: Replica, *, from_line: int) -> list[str]:
    """Assert that ``replica`` said what was wrong a bounded number of times since ``from_line`` of its log, each
    thing at most twice (its streak and the step-down's), never per try; returns the lines, printed."""
    lines = database_lines("\n".join(replica.log.read_text().splitlines()[from_line:]))
    print(f"log of {replica.name}: {len(lines)} warning lines about the database for the whole outage:")
    for line in lines:
        print(f"  {line[:200]}")
    assert len(lines) <= MAX_DATABASE_LINES
    repeated = {m: n for m, n in Counter(message(line) for line in lines).items() if n > 2}
    assert not repeated, f"said again and again: {repeated}"
    return lines


def log_length(replica: Replica) -> int:
    return len(replica.log.read_text().splitlines())
