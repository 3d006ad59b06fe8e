"""The fleet's lists (sites, a site's boxes, unknown boxes) page like the alerts: at most ``limit`` items, and the
next page's cursor in ``X-Next-Cursor`` while more follow. By default a page holds 1,000: the whole shipped fleet
(103 sites) in one answer, as before they paged."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.cloud.api.memory import MemoryController


def read_all(client: httpx.Client, path: str, limit: int) -> tuple[list[dict[str, Any]], int]:
    """Every item of ``path`` following the cursor, and how many pages it took."""
    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": limit}
    pages = 0
    while True:
        response = client.get(path, params=params)
        assert response.status_code == 200, response.text
        items += response.json()
        pages += 1
        cursor = response.headers.get("X-Next-Cursor")
        if cursor is None:
            return items, pages
        params = {"limit": limit, "cursor": cursor}


@pytest.mark.parametrize(
    "path",
    ["/api/v1/sites", "/api/v1/sites/sh-pudong/boxes", "/api/v1/unknown-boxes"],
    ids=["sites", "boxes", "unknown"],
)
def test_pages_of_one_make_the_whole_list(client: httpx.Client, memory: MemoryController, path: str) -> None:
    for n in range(3):
        memory.stranger(f"rogue-0{n}", None)
    whole = client.get(path)
    assert "X-Next-Cursor" not in whole.headers, "the default page holds the whole small fleet"

    paged, pages = read_all(client, path, limit=1)

    assert paged == whole.json()
    assert pages == len(whole.json()) == 3


def test_a_cursor_of_another_list_is_refused(client: httpx.Client, memory: MemoryController) -> None:
    cursor = client.get("/api/v1/sites", params={"limit": 1}).headers["X-Next-Cursor"]

    response = client.get("/api/v1/sites/sh-pudong/boxes", params={"cursor": cursor})

    assert response.status_code == 422
    assert "is no cursor of this list of boxes of sh-pudong" in response.json()["error"]["message"]
