"""Every alert and every silence can be read, a page at a time (issue 13: the alert list stopped at 1,000, and
one flood made 955). Pages follow the ``X-Next-Cursor`` header; concatenated they are exactly the stored set,
newest first, with no alert twice and none left out, even when alerts fire between two pages. A cursor that is
not one is a 422 that says to start again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from edgefleet.cloud.alerting.alerts import AlertKey, AlertKind, Severity, StoredAlert, alert_id
from edgefleet.cloud.alerting.silences import Silence
from edgefleet.cloud.api import create_app
from edgefleet.cloud.settings import Settings
from edgefleet.ids import SiteId
from tests.alerting.builders import make_inventory
from tests.alerting.wiring.clocked import ClockedController
from tests.cloud.api.serving import serving
from tests.support.access import admin_headers

INVENTORY = make_inventory({"alpha": 4, "beta": 4})
STORED = 2500


def alert(n: int, *, at: float) -> StoredAlert:
    key = AlertKey(AlertKind.BOX_LOST, SiteId("alpha" if n % 2 else "beta"), None, f"n{n}")
    return StoredAlert(
        id=alert_id(key, at),
        key=key,
        severity=Severity.CRITICAL,
        summary="lost",
        description="lost",
        labels={},
        details={},
        started_at=at,
        fired_at=at,
        updated_at=at,
    )


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ClockedController, str]]:
    controller = ClockedController.build(INVENTORY, f"sqlite:///{tmp_path / 'edgefleet.db'}")
    with serving(create_app(Settings(), controller=controller)) as url:
        yield controller, url
    controller.running.close()


def read_all(client: httpx.Client, path: str, params: dict[str, Any], between: Any = None) -> list[dict[str, Any]]:
    """Every page of ``path``, following the cursor; ``between`` runs after each page."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        response = client.get(path, params={**params, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        items += response.json()
        cursor = response.headers.get("X-Next-Cursor")
        if cursor is None:
            assert "Link" not in response.headers
            return items
        assert response.headers["Link"].endswith('; rel="next"')
        assert f"cursor={cursor}" in response.headers["Link"]
        if between is not None:
            between()


def test_pages_of_alerts_are_the_stored_set_even_while_alerts_fire(served: tuple[ClockedController, str]) -> None:
    controller, url = served
    # Three alerts to a fire time: the id breaks the ties, and a page boundary falls inside some of them.
    stored = [alert(n, at=1000.0 + n // 3) for n in range(STORED)]
    controller.running.loop.alerts.save(stored)
    expected = [a.id for a in sorted(stored, key=lambda a: (-a.fired_at, a.id))]
    fired = iter(range(STORED, STORED + 100))
    new: list[StoredAlert] = []

    def more_fire() -> None:  # newer alerts between pages: they belong on a new first page, not in this pass
        new.extend(alert(next(fired), at=5000.0) for _ in range(7))
        controller.running.loop.alerts.save(new[-7:])

    with httpx.Client(base_url=url, headers=admin_headers(controller)) as client:
        pages = read_all(client, "/api/v1/alerts", {"limit": 1000}, between=more_fire)
        assert [a["id"] for a in pages] == expected, "no alert twice, none left out, newest first"
        assert len(new) == 14, "alerts fired between the three pages"

        beta = read_all(client, "/api/v1/alerts", {"limit": 333, "site": "beta"})
        everything = sorted(stored + new, key=lambda a: (-a.fired_at, a.id))
        assert [a["id"] for a in beta] == [a.id for a in everything if a.key.site == "beta"]
        # The default page is 100; the next ones follow.
        first = client.get("/api/v1/alerts")
        assert len(first.json()) == 100
        assert "X-Next-Cursor" in first.headers


@pytest.mark.parametrize(
    "cursor",
    ["not-a-cursor", "W10", "WyJzaWxlbmNlcyIsIDEuMCwgImEiXQ"],  # garbage, [], a cursor of the silences
)
def test_a_bad_cursor_is_refused_saying_how_to_start_again(served: tuple[ClockedController, str], cursor: str) -> None:
    controller, url = served
    with httpx.Client(base_url=url, headers=admin_headers(controller)) as client:
        response = client.get("/api/v1/alerts", params={"cursor": cursor})

    assert response.status_code == 422
    message = response.json()["error"]["message"]
    assert message.startswith("query parameter 'cursor'")
    assert "leave cursor out to start from the first page" in message


def test_pages_of_silences_are_every_silence(served: tuple[ClockedController, str]) -> None:
    controller, url = served
    now = controller.running.clock.now()
    silences = [
        Silence(
            id=f"silence-{n:012x}",
            starts_at=now - 1000.0 + n // 4,
            ends_at=now + 3600.0,
            created_by="li.wei",
            comment="maintenance",
            site=SiteId("alpha"),
        )
        for n in range(250)
    ]
    for silence in silences:
        controller.running.loop.alerts.add_silence(silence)

    with httpx.Client(base_url=url, headers=admin_headers(controller)) as client:
        pages = read_all(client, "/api/v1/silences", {"limit": 100, "all": "true"})

    expected = [s.id for s in sorted(silences, key=lambda s: (-s.starts_at, s.id))]
    assert [s["id"] for s in pages] == expected
