"""The control API answers a request it cannot carry out with 400 or 404 and one JSON line saying what is
wrong, never a traceback or FastAPI's 422 list; a good request gets 201 and shows up in GET /faults."""

from __future__ import annotations

import httpx
import pytest

from simulator.running import BackgroundSimulator
from tests.simulator.conftest import EDGE_A, GPU_A

BAD_POSTS: list[tuple[dict[str, object], int, str, str]] = [
    ({"kind": "stop", "box": "ghost-box"}, 404, "box", "no box 'ghost-box' in the simulated fleet"),
    ({"kind": "cut", "site": "atlantis", "seconds": 5}, 404, "site", "no site 'atlantis'"),
    ({"kind": "cut", "site": "site-01"}, 400, "seconds", "a cut fault needs a duration"),
    ({"kind": "stop"}, 400, "box", "a stop fault needs a box"),
    ({"kind": "melt", "box": GPU_A}, 400, "kind", "unknown fault kind 'melt'"),
    ({"box": GPU_A}, 400, "kind", "Field required"),
    ({"kind": "stop", "box": GPU_A, "seconds": "soon"}, 400, "seconds", "valid number"),
    ({"kind": "stop", "box": GPU_A, "colour": "red"}, 400, "colour", "Extra inputs are not permitted"),
    ({"kind": "overheat", "box": EDGE_A}, 400, "box", "has no GPU to overheat"),
    ({"kind": "overheat", "box": GPU_A, "gpu": 3}, 400, "gpu", "has 1 GPU(s)"),
    ({"kind": "drop", "box": GPU_A, "gpu": 0}, 400, "gpu", "does not apply to a drop fault"),
]


def test_bad_fault_requests_get_one_clear_error(sim: BackgroundSimulator) -> None:
    # One simulator for the whole table: each case is a request, not a fleet.
    for body, status, field, words in BAD_POSTS:
        response = httpx.post(f"{sim.url}/faults", json=body)
        assert (response.status_code, response.json()["field"]) == (status, field), (body, response.text)
        assert words in response.json()["error"], (body, response.text)


def test_other_bad_requests(sim: BackgroundSimulator) -> None:
    not_json = httpx.post(f"{sim.url}/faults", content=b"{kind: stop", headers={"content-type": "application/json"})
    assert not_json.status_code == 400
    assert "JSON" in not_json.json()["error"]
    missing = httpx.delete(f"{sim.url}/faults/stop-42")
    assert (missing.status_code, missing.json()["error"]) == (404, "no active fault 'stop-42' (see GET /faults)")
    assert httpx.get(f"{sim.url}/status", params={"site": "atlantis"}).status_code == 404
    assert httpx.delete(f"{sim.url}/faults", params={"box": "ghost"}).status_code == 404
    # Nothing was applied by any of them.
    assert httpx.get(f"{sim.url}/faults").json() == {"faults": []}


def test_a_good_request_is_listed_until_cleared(sim: BackgroundSimulator) -> None:
    created = httpx.post(f"{sim.url}/faults", json={"kind": "skew", "box": GPU_A, "offset_s": 30, "seconds": 60})
    assert created.status_code == 201
    fault = created.json()
    assert (fault["kind"], fault["box"], fault["site"], fault["offset_s"]) == ("skew", GPU_A, "site-01", 30.0)
    assert 59 <= fault["remaining_s"] <= 60
    assert fault["expires_at"] - fault["started_at"] == pytest.approx(60, abs=0.01)
    assert [f["id"] for f in httpx.get(f"{sim.url}/faults").json()["faults"]] == [fault["id"]]
    assert httpx.delete(f"{sim.url}/faults").json()["cleared"][0]["id"] == fault["id"]
    assert httpx.get(f"{sim.url}/faults").json() == {"faults": []}
