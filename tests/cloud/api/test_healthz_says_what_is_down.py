"""GET /healthz: 200 while broker and database are usable, 503 saying which is not."""

from __future__ import annotations

import httpx
import pytest

from edgefleet.cloud.hearing import Hearing
from edgefleet.cloud.saving import SavingHealth, WriterHealth
from tests.cloud.api.memory import MemoryController


def test_healthy_controller_answers_200(client: httpx.Client, memory: MemoryController) -> None:
    memory.beat("sh-pudong-gpu-01")
    memory.beat("bj-daxing-gpu-01")

    response = client.get("/healthz")

    assert response.status_code == 200
    assert len(memory.state.inventory.version) == 12, "the version in force is named"
    assert response.json() == {
        "status": "ok",
        "broker_connected": True,
        "database_ok": True,
        "inventory_version": memory.state.inventory.version,
        "hearing": "hearing",
        "boxes_online": 2,
        "boxes_total": 6,
        "problems": [],
        "leadership": {
            "role": "leader",
            "leader": "host test, pid 1, since 1970-01-01 00:00:00 UTC",
            "leader_address": None,
            "leader_since": "1970-01-01T00:00:00Z",
            "epoch": 1,
            "lease_expires_in_s": None,
        },
    }


@pytest.mark.parametrize(
    ("broker_up", "database_problem", "says"),
    [
        (False, None, ["not connected to the broker at mqtt://127.0.0.1:1883"]),
        (True, "connection refused; check it", ["cannot reach the database at sqlite:///var/edgefleet.db"]),
        (False, "disk full; check it", ["not connected to the broker", "cannot reach the database at sqlite://"]),
    ],
)
def test_a_broken_dependency_answers_503_naming_it(
    client: httpx.Client, memory: MemoryController, broker_up: bool, database_problem: str | None, says: list[str]
) -> None:
    memory.ingest.connected = broker_up
    memory.store.problem = database_problem

    response = client.get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert (body["broker_connected"], body["database_ok"]) == (broker_up, database_problem is None)
    assert len(body["problems"]) == len(says)
    for problem, start in zip(body["problems"], says, strict=True):
        assert problem.startswith(start)
        assert "check" in problem


@pytest.mark.parametrize(
    ("saving", "says"),
    [
        (
            SavingHealth(fleet=WriterHealth(failed_saves=4, failure_streak=4, last_error="database or disk is full")),
            ["cannot save the fleet state: 4 flushes failed in a row"],
        ),
        (
            SavingHealth(alerts=WriterHealth(failed_saves=1, failure_streak=1, last_error="disk full", pending=3)),
            ["cannot save alerts: 1 saves failed in a row, 3 alerts wait in memory"],
        ),
    ],
)
def test_a_database_that_refuses_saves_answers_degraded(
    client: httpx.Client, memory: MemoryController, saving: SavingHealth, says: list[str]
) -> None:
    # The database answers the ping (a full disk still reads), but the persister or the alert loop cannot save.
    memory.saving_health = saving

    response = client.get("/healthz")

    assert response.status_code == 200, "a controller that serves and alerts stays behind the load balancer"
    body = response.json()
    assert (body["status"], body["broker_connected"], body["database_ok"]) == ("degraded", True, False)
    assert len(body["problems"]) == len(says)
    for problem, start in zip(body["problems"], says, strict=True):
        assert problem.startswith(start)
        assert "full" in problem
        assert "check the database's disk space" in problem


def test_a_locked_sqlite_file_is_told_as_a_lock_not_a_full_disk(client: httpx.Client, memory: MemoryController) -> None:
    # Another process holds the write lock: the saves wait out the busy timeout and fail; disk space is no matter.
    locked = "database sqlite:///var/edgefleet.db: failed to save the fleet state: database is locked"
    memory.saving_health = SavingHealth(fleet=WriterHealth(failed_saves=2, failure_streak=2, last_error=locked))

    body = client.get("/healthz").json()

    assert body["status"] == "degraded"
    [problem] = body["problems"]
    assert "database is locked" in problem
    assert "another process holds the database file's write lock" in problem
    assert "fuser" in problem
    assert "disk space" not in problem


def test_saves_that_failed_before_and_succeed_now_are_ok(client: httpx.Client, memory: MemoryController) -> None:
    memory.saving_health = SavingHealth(fleet=WriterHealth(saves=9, failed_saves=3, failure_streak=0))

    assert client.get("/healthz").json()["status"] == "ok"


def test_an_unreachable_database_stays_unavailable_when_saves_fail_too(
    client: httpx.Client, memory: MemoryController
) -> None:
    memory.store.problem = "connection refused; check it"
    memory.saving_health = SavingHealth(fleet=WriterHealth(failed_saves=1, failure_streak=1, last_error="refused"))

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert len(response.json()["problems"]) == 2


def test_a_controller_that_does_not_hear_the_fleet_says_degraded(
    client: httpx.Client, memory: MemoryController
) -> None:
    memory.hearing = Hearing("behind", 0.0, "the ingest is saturated (99% busy)")
    try:
        response = client.get("/healthz")
    finally:
        memory.hearing = Hearing("hearing", 0.0, "hearing the fleet")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["hearing"]) == ("degraded", "behind")
    assert body["problems"] == [
        "not judging box silence: the controller is behind (the ingest is saturated (99% busy))"
    ]
