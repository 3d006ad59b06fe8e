"""The console's data: ``/api/v1/overview`` (the fleet as heat-map cells) and ``/api/v1/events``, the one
server-sent event stream a page opens: a ``snapshot`` and the ``activity`` tokens first, then ``changes`` events
naming only the cells that changed. Against a real uvicorn with the in-memory controller (tests/cloud/api/fixtures.py), read as a browser's
EventSource reads it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from edgefleet.cloud.api import create_app
from edgefleet.cloud.api.live import COALESCE_S
from edgefleet.cloud.fleet import replace_inventory
from edgefleet.cloud.settings import Settings
from edgefleet.inventory import load_inventory
from tests.cloud.api.memory import MemoryController, write_inventory
from tests.cloud.api.serving import serving
from tests.cloud.builders import gpus
from tests.support.access import admin_headers, bearer

GPU_BOXES = ["sh-pudong-gpu-01", "sh-pudong-gpu-02"]
PUDONG = [*GPU_BOXES, "sh-pudong-edge-01"]
SILENT = ["bj-daxing-gpu-01", "bj-daxing-edge-01", "central-bj-node-01"]


def beat_pudong(memory: MemoryController) -> None:
    for box in GPU_BOXES:
        memory.beat(box, gpu=gpus((66.0, 40.0), (58.0, 50.0)))
    memory.beat("sh-pudong-edge-01")


def events(response: httpx.Response) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event name, data) of each event of the stream, as an EventSource parses them; comments are skipped."""
    name, data = "message", ""
    for line in response.iter_lines():
        if line == "":
            if data:
                yield name, json.loads(data)
            name, data = "message", ""
        elif line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            data += line.removeprefix("data: ")


def test_the_overview_has_a_cell_for_every_box_by_region_and_site(
    memory: MemoryController, client: httpx.Client
) -> None:
    beat_pudong(memory)
    memory.clock.advance(COALESCE_S)

    body = client.get("/api/v1/overview").json()

    assert [(r["name"], [s["id"] for s in r["sites"]]) for r in body["regions"]] == [
        ("east", ["sh-pudong"]),
        ("north", ["bj-daxing", "central-bj"]),
    ]
    assert body["regions"][0]["sites"][0]["boxes"] == PUDONG
    assert body["cells"]["sh-pudong-gpu-01"] == ["sh-pudong", "online", 66.0, 45.0, "app-0 1.4.2"]
    assert body["cells"]["sh-pudong-edge-01"][1] == "online"
    assert body["cells"]["bj-daxing-gpu-01"] == ["bj-daxing", "never-seen", None, None, None]
    assert body["counters"] == {
        "sites": 3,
        "boxes": 6,
        "boxes_online": 3,
        "boxes_lost": 0,
        "active_rollouts": None,  # neither rollouts nor alerting run in the in-memory controller
        "firing_alerts": None,
    }


def test_the_stream_sends_a_snapshot_then_only_the_changed_cells(
    memory: MemoryController, api_url: str, api_token: str
) -> None:
    beat_pudong(memory)
    memory.clock.advance(COALESCE_S)
    with (
        httpx.Client(base_url=api_url, timeout=10, headers=bearer(api_token)) as client,
        client.stream("GET", "/api/v1/events") as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["content-encoding"] == "gzip"  # httpx takes gzip, as browsers do, and unpacks it
        stream = events(response)

        name, snapshot = next(stream)
        assert name == "snapshot"
        assert {box: cell[1] for box, cell in snapshot["cells"].items()} == {
            **dict.fromkeys(PUDONG, "online"),
            **dict.fromkeys(SILENT, "never-seen"),
        }
        # The tokens of the rollouts and alerts: none here, neither runs in the in-memory controller (the browser
        # tests see them change: tests/console).
        assert next(stream) == ("activity", {"rollouts": None, "alerts": None})

        # One box stops (its clean "offline"), another runs hot: one batch names those two and nothing else.
        memory.say("sh-pudong-gpu-02", "offline", "shutdown")
        memory.beat("sh-pudong-gpu-01", gpu=gpus((83.0, 40.0), (58.0, 50.0)))
        memory.clock.advance(COALESCE_S)
        name, changes = next(stream)

        assert name == "changes"
        assert changes["cells"] == {
            "sh-pudong-gpu-01": ["sh-pudong", "online", 83.0, 45.0, "app-0 1.4.2"],
            "sh-pudong-gpu-02": ["sh-pudong", "lost", 66.0, 45.0, "app-0 1.4.2"],
        }
        assert (changes["counters"]["boxes_online"], changes["counters"]["boxes_lost"]) == (2, 1)

        # The other boxes go too: the whole site is unreachable, which the stream says of every one of its boxes.
        memory.say("sh-pudong-gpu-01", "offline", "connection-lost")
        memory.say("sh-pudong-edge-01", "offline", "connection-lost")
        memory.clock.advance(COALESCE_S)
        name, changes = next(stream)
        assert {box: cell[1] for box, cell in changes["cells"].items()} == dict.fromkeys(PUDONG, "unreachable")


def test_an_open_stream_ends_when_the_server_shuts_down(tmp_path: Path) -> None:
    """uvicorn waits for open responses before it stops, and a browser's stream never ends by itself: the server's
    shutdown ends it (``end_streams``, as ``edgefleet cloud serve`` calls it), else a console left open would hold
    the controller's shutdown, and its last save, for ever."""
    memory = MemoryController.small(tmp_path / "sites")
    with httpx.Client(timeout=10, headers=admin_headers(memory)) as client:
        with serving(create_app(Settings(), controller=memory)) as url:
            response = client.send(client.build_request("GET", f"{url}/api/v1/events"), stream=True)
            stream = events(response)
            assert next(stream)[0] == "snapshot"
            assert next(stream)[0] == "activity"
        # The server has stopped: the stream ends (a stream still open would time out here after 10 s).
        assert list(stream) == []
        response.close()


def test_a_new_inventory_sends_a_new_snapshot(
    memory: MemoryController, api_url: str, api_token: str, tmp_path: Path
) -> None:
    smaller = write_inventory(tmp_path / "sites")
    (smaller / "bj-daxing.yaml").unlink()
    inventory = load_inventory(smaller)
    with (
        httpx.Client(base_url=api_url, timeout=10, headers=bearer(api_token)) as client,
        client.stream("GET", "/api/v1/events") as response,
    ):
        stream = events(response)
        name, first = next(stream)
        assert next(stream)[0] == "activity"
        assert "bj-daxing" in {site["id"] for region in first["regions"] for site in region["sites"]}

        with memory.state.lock:
            replace_inventory(memory.state, inventory)
        memory.clock.advance(COALESCE_S)
        name, again = next(stream)

    assert name == "snapshot"
    assert again["inventory_version"] == inventory.version != first["inventory_version"]
    assert [s["id"] for region in again["regions"] for s in region["sites"]] == ["sh-pudong", "central-bj"]
    assert set(again["cells"]) == {*PUDONG, "central-bj-node-01"}


def test_a_client_that_takes_no_gzip_gets_the_stream_plain(api_url: str, api_token: str) -> None:
    with (
        httpx.Client(base_url=api_url, timeout=10, headers=bearer(api_token)) as client,
        client.stream("GET", "/api/v1/events", headers={"Accept-Encoding": "identity"}) as response,
    ):
        assert "content-encoding" not in response.headers
        raw = response.iter_raw()
        assert next(raw).startswith(b"retry: 2000\n\n")
