"""A full disk under SQLite (issue 13): the database still answers reads and pings but refuses every write that
needs room. It used to leave ``/healthz`` at 200 ``database_ok: true``, and a box-lost alert that the store
refused was served by id but missing from ``GET /api/v1/alerts``. Now ``/healthz`` says degraded with the reason,
``/metrics`` counts the failed saves, and lists and counts include the alerts the loop holds unsaved.

The disk is made full honestly: SQLite's own limit (``PRAGMA max_page_count``, set on every connection the
engine hands out) makes the real driver answer SQLITE_FULL ("database or disk is full") to any write that needs a
new page, exactly as a full filesystem does. The API is served by a real uvicorn over the clocked alerting parts
(``clocked.ClockedAlerting``), a real ``Persister`` and the same SQLite file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from edgefleet.cloud.api import create_app
from edgefleet.cloud.fleet import apply_heartbeat, heartbeat_timeout
from edgefleet.cloud.settings import Settings
from edgefleet.cloud.store import Store
from tests.alerting.builders import heartbeat, make_inventory, site_boxes
from tests.alerting.wiring.clocked import ClockedAlerting, ClockedController
from tests.cloud.api.serving import serving
from tests.support.access import admin_headers

INTERVAL_S = 10.0
MISSED_BEATS = 3
TIMEOUT_S = heartbeat_timeout(INTERVAL_S, MISSED_BEATS)
INVENTORY = make_inventory({"alpha": 40, "beta": 10}, interval_s=INTERVAL_S, missed_beats=MISSED_BEATS)
# A flood: more alerts and health points than the free room left in the database's pages.
LOST = [str(b) for b in site_boxes("alpha", 30)]
SQLITE_DEFAULT_MAX_PAGES = 1073741823


class Disk:
    """Whether the database's disk is full: every connection checked out of the pool gets SQLite's page limit,
    the current size when full (SQLite never lowers it below that), the default otherwise."""

    def __init__(self, store: Store) -> None:
        self.full = False

        @sa.event.listens_for(store.engine, "checkout")
        def _limit(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
            pages = 1 if self.full else SQLITE_DEFAULT_MAX_PAGES
            dbapi_connection.execute(f"PRAGMA max_page_count={pages}")


@pytest.fixture
def controller(tmp_path: Path) -> Iterator[ClockedController]:
    served = ClockedController.build(INVENTORY, f"sqlite:///{tmp_path / 'edgefleet.db'}")
    running, persister = served.running, served.persister
    running.beat_all()
    running.run(INTERVAL_S)
    ingest_beats(running)
    assert persister.flush(), "the fleet state is saved while the disk has room"
    yield served
    running.close()


@pytest.fixture
def client(controller: ClockedController) -> Iterator[httpx.Client]:
    app = create_app(Settings(), controller=controller)
    with serving(app) as url, httpx.Client(base_url=url, headers=admin_headers(controller, name="li.wei")) as c:
        yield c


def ingest_beats(running: ClockedAlerting, rounds: int = 20) -> None:
    """Every box that is not stopped beats ``rounds`` times more, through the ingest's own rules
    (``apply_heartbeat``: health points to save, the box marked changed)."""
    with running.fleet.lock:
        for i in range(rounds):
            now = running.clock.now() + i * 0.01
            for box, live in running.fleet.boxes.items():
                if box not in running.silent:
                    beat = heartbeat(live, at=now, seq=live.seq + 1, boot=live.boot or "b")
                    apply_heartbeat(live, beat, received_at=now)


def metric(text: str, name: str, writer: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels.get("writer") == writer:
                return float(sample.value)
    raise AssertionError(f"no {name}{{writer={writer!r}}} in /metrics")


def test_a_full_disk_is_degraded_and_the_refused_alerts_are_still_listed(
    controller: ClockedController, client: httpx.Client
) -> None:
    running = controller.running
    disk = Disk(running.store)
    assert client.get("/healthz").json()["status"] == "ok"
    saved_at = controller.persister.saving.last_saved_at

    disk.full = True
    running.stop(LOST)
    running.run(TIMEOUT_S + 1.0)
    ingest_beats(running)
    assert not controller.persister.flush(), "the flush meets the full disk"

    # The reproduction is real: the store refused the alerts (SQLITE_FULL through the real driver).
    lost = [a for a in running.service.list_alerts(kind=None, limit=1000) if a.key.box in LOST]
    assert len(lost) == len(LOST)
    assert all(running.loop.alerts.get(a.id) is None for a in lost), "nothing of them is stored"
    assert running.loop.saving.failing
    assert "database or disk is full" in (running.loop.saving.last_error or "")

    health = client.get("/healthz")
    assert health.status_code == 200, "it still serves and alerts: kept behind the load balancer"
    body = health.json()
    assert (body["status"], body["database_ok"]) == ("degraded", False)
    assert [p.split(":")[0] for p in body["problems"]] == ["cannot save the fleet state", "cannot save alerts"]
    assert all("database or disk is full" in p for p in body["problems"])

    listed = client.get("/api/v1/alerts", params={"site": "alpha", "kind": "box-lost", "state": "firing"})
    assert sorted(a["box"] for a in listed.json()) == sorted(LOST), "every firing alert is listed"
    one = lost[0]
    assert client.get(f"/api/v1/alerts/{one.id}").json()["box"] == one.key.box
    counts = client.get("/api/v1/alerts/counts", params={"site": "alpha", "kind": "box-lost"}).json()
    assert sum(c["count"] for c in counts) == len(LOST), "and counted"

    scraped = client.get("/metrics").text
    assert metric(scraped, "edgefleet_database_saves_failing", "fleet") == 1.0
    assert metric(scraped, "edgefleet_database_saves_failing", "alerts") == 1.0
    assert metric(scraped, "edgefleet_database_failed_saves_total", "fleet") == 1.0
    assert metric(scraped, "edgefleet_database_failed_saves_total", "alerts") >= 1.0
    assert metric(scraped, "edgefleet_database_pending_items", "alerts") >= len(LOST)
    assert metric(scraped, "edgefleet_database_last_save_timestamp_seconds", "fleet") == saved_at

    # Room again: the next pass and flush save what waited, and health is ok.
    disk.full = False
    running.run(1.0)
    assert controller.persister.flush()
    assert all(running.loop.alerts.get(a.id) is not None for a in lost)
    assert client.get("/healthz").json() == {**body, "status": "ok", "database_ok": True, "problems": []}


def test_an_alert_acknowledged_while_the_disk_is_full_is_listed_as_acknowledged(
    controller: ClockedController, client: httpx.Client
) -> None:
    running = controller.running
    running.stop(LOST)
    running.run(TIMEOUT_S + 1.0)
    stored = running.service.list_alerts(site=None, limit=1000)
    target = next(a for a in stored if a.key.box == LOST[0])
    assert running.loop.alerts.get(target.id) is not None, "stored as firing before the disk filled"
    disk = Disk(running.store)
    disk.full = True

    assert client.post(f"/api/v1/alerts/{target.id}/ack", json={}).status_code == 200
    assert running.loop.alerts.get(target.id).state == "firing", "the store still holds the firing copy"  # type: ignore[union-attr]

    firing = client.get("/api/v1/alerts", params={"state": "firing", "site": "alpha"}).json()
    acked = client.get("/api/v1/alerts", params={"state": "acknowledged"}).json()
    assert target.id not in {a["id"] for a in firing}, "the held copy wins over the stored one"
    assert [a["id"] for a in acked] == [target.id]
    counts = {c["state"]: c["count"] for c in client.get("/api/v1/alerts/counts").json()}
    assert counts.get("acknowledged") == 1
    assert counts.get("firing") == len(LOST) - 1
