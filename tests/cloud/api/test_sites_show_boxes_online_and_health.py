"""GET /api/v1/sites, /api/v1/sites/{site} and /api/v1/sites/{site}/boxes: counts, health, filters."""

from __future__ import annotations

import httpx
import pytest

from tests.cloud.api.memory import MemoryController, apps
from tests.cloud.builders import gpus


def test_lists_every_site_with_boxes_online_and_health(client: httpx.Client, memory: MemoryController) -> None:
    memory.beat("sh-pudong-gpu-01")
    memory.beat("bj-daxing-gpu-01")
    memory.beat("bj-daxing-edge-01")

    response = client.get("/api/v1/sites")

    assert response.status_code == 200
    sites = {s["id"]: s for s in response.json()}
    assert list(sites) == ["bj-daxing", "central-bj", "sh-pudong"]
    assert sites["sh-pudong"] == {
        "id": "sh-pudong",
        "display_name": "Shanghai Pudong Transfer Center",
        "kind": "transfer-center",
        "region": "east",
        "timezone": "Asia/Shanghai",
        "cluster": "test-edge",
        "boxes_total": 3,
        "boxes_online": 1,
        "health": "degraded",
        # The in-memory controller watches no cluster: no count rather than a count of zero.
        "nodes_ready": None,
    }
    assert (sites["bj-daxing"]["boxes_online"], sites["bj-daxing"]["health"]) == (2, "ok")
    assert (sites["central-bj"]["boxes_online"], sites["central-bj"]["health"]) == (0, "unknown")


def test_a_site_whose_boxes_all_went_silent_is_unreachable(client: httpx.Client, memory: MemoryController) -> None:
    memory.beat("bj-daxing-gpu-01")
    memory.beat("bj-daxing-edge-01")
    memory.clock.advance(12.1)  # bj-daxing: 2 missed beats of 5 s, plus the 20% jitter allowance

    site = client.get("/api/v1/sites/bj-daxing").json()

    assert (site["boxes_online"], site["health"]) == (0, "unreachable")
    assert site["boxes_by_state"] == {"online": 0, "offline": 2, "never-seen": 0}


def test_a_site_says_which_cluster_holds_its_nodes_and_how_they_are_selected(client: httpx.Client) -> None:
    center = client.get("/api/v1/sites/bj-daxing").json()
    central = client.get("/api/v1/sites/central-bj").json()

    assert (center["cluster"], center["node_group"]) == ("test-edge", "bj-daxing")
    assert (central["cluster"], central["node_group"]) == ("central-bj", None)  # the whole cluster


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("health=ok", ["bj-daxing"]),
        ("health=degraded", ["sh-pudong"]),
        ("health=unknown", ["central-bj"]),
        ("health=unreachable", []),
        ("region=north", ["bj-daxing", "central-bj"]),
        ("kind=central", ["central-bj"]),
        ("region=north&health=ok", ["bj-daxing"]),
        ("region=nowhere", []),
    ],
)
def test_filters_sites(client: httpx.Client, memory: MemoryController, query: str, expected: list[str]) -> None:
    memory.beat("sh-pudong-gpu-01")
    memory.beat("bj-daxing-gpu-01")
    memory.beat("bj-daxing-edge-01")

    response = client.get(f"/api/v1/sites?{query}")

    assert response.status_code == 200
    assert [s["id"] for s in response.json()] == expected


def test_shows_one_site_with_its_heartbeat_settings(client: httpx.Client, memory: MemoryController) -> None:
    memory.beat("sh-pudong-gpu-01")

    site = client.get("/api/v1/sites/sh-pudong").json()

    assert site["heartbeat_interval_s"] == 10.0
    assert site["missed_beats"] == 3
    assert site["boxes_by_state"] == {"online": 1, "offline": 0, "never-seen": 2}
    assert (site["boxes_total"], site["boxes_online"], site["health"]) == (3, 1, "degraded")


def test_lists_the_boxes_of_a_site_in_manifest_order(client: httpx.Client, memory: MemoryController) -> None:
    memory.beat("sh-pudong-gpu-01", gpu=gpus((61.0, 40.0), (75.0, 80.0)), app_report=apps("running", "failed"))
    memory.clock.advance(3)

    boxes = client.get("/api/v1/sites/sh-pudong/boxes").json()

    assert [b["id"] for b in boxes] == ["sh-pudong-gpu-01", "sh-pudong-gpu-02", "sh-pudong-edge-01"]
    first = boxes[0]
    assert first["reachability"]["state"] == "online"
    assert first["last_seen_age_s"] == pytest.approx(3.0)
    assert first["gpu_temperature_max_c"] == 75.0
    assert first["gpu_utilization_avg_percent"] == pytest.approx(60.0)
    assert [a["state"] for a in first["latest"]["apps"]["apps"]] == ["running", "failed"]
    assert first["gpu"] == {"model": "NVIDIA L4", "count": 2, "driver_version": "550.90.07"}
    never = boxes[1]
    assert never["reachability"] == {"state": "never-seen", "reason": "never-seen", "since": None}
    assert (never["last_seen"], never["last_seen_age_s"], never["latest"], never["boot"]) == (None, None, None, None)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("state=online", ["sh-pudong-gpu-01"]),
        ("state=offline", ["sh-pudong-gpu-02"]),
        ("state=never-seen", ["sh-pudong-edge-01"]),
        ("role=edge-node", ["sh-pudong-edge-01"]),
        ("role=gpu-box&state=offline", ["sh-pudong-gpu-02"]),
    ],
)
def test_filters_the_boxes_of_a_site(
    client: httpx.Client, memory: MemoryController, query: str, expected: list[str]
) -> None:
    memory.beat("sh-pudong-gpu-02")
    memory.say("sh-pudong-gpu-02", "offline", "shutdown")
    memory.beat("sh-pudong-gpu-01")

    response = client.get(f"/api/v1/sites/sh-pudong/boxes?{query}")

    assert response.status_code == 200
    assert [b["id"] for b in response.json()] == expected


@pytest.mark.parametrize("path", ["/api/v1/sites/nowhere", "/api/v1/sites/nowhere/boxes"])
def test_an_unknown_site_is_a_404_that_says_where_to_look(client: httpx.Client, path: str) -> None:
    response = client.get(path)

    assert response.status_code == 404
    assert response.json() == {
        "error": {
            "code": "not-found",
            "message": "no site 'nowhere' in the inventory; GET /api/v1/sites lists the sites (or 'edgefleet sites')",
        }
    }


@pytest.mark.parametrize(
    ("path", "parameter"),
    [
        ("/api/v1/sites?health=bad", "query parameter 'health'"),
        ("/api/v1/sites?kind=depot", "query parameter 'kind'"),
        ("/api/v1/sites/sh-pudong/boxes?state=lost", "query parameter 'state'"),
        ("/api/v1/sites/sh-pudong/boxes?role=robot", "query parameter 'role'"),
    ],
)
def test_a_bad_filter_is_a_422_naming_the_parameter(client: httpx.Client, path: str, parameter: str) -> None:
    response = client.get(path)

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid-request"
    assert error["message"].startswith(parameter + ": Input should be ")
    assert "see /docs" in error["message"]
    assert set(response.json()) == {"error"}
