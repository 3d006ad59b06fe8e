"""GET /api/v1/unknown-boxes: boxes that publish but are in no manifest, for ops to add or switch off."""

from __future__ import annotations

import httpx

from tests.cloud.api.memory import MemoryController


def test_lists_unknown_boxes_most_recent_first(client: httpx.Client, memory: MemoryController) -> None:
    memory.stranger("rogue-01", None)
    memory.clock.advance(5)
    memory.stranger("sh-pudong-gpu-77", "sh-pudong")
    memory.clock.advance(5)
    memory.stranger("rogue-01", None)

    unknown = client.get("/api/v1/unknown-boxes").json()

    assert [(u["box"], u["claimed_site"], u["messages"]) for u in unknown] == [
        ("rogue-01", None, 2),
        ("sh-pudong-gpu-77", "sh-pudong", 1),
    ]
    assert unknown[0]["first_seen"] < unknown[0]["last_seen"]


def test_no_unknown_boxes_is_an_empty_list(client: httpx.Client) -> None:
    assert client.get("/api/v1/unknown-boxes").json() == []
