"""GET /healthz: 200 while broker and database are usable, 503 saying which is not."""

from __future__ import annotations

import httpx
import pytest

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
        "boxes_online": 2,
        "boxes_total": 6,
        "problems": [],
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
