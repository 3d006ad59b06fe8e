"""``GET /api/v1/audit`` and ``edgefleet audit``: a fleet-wide reader sees every entry, newest first, a page at a
time; site staff see only their sites' entries (never a fleet-wide one, and another site is as if absent); the
filters narrow on the controller; and nothing in the API edits or deletes an entry (405), nor does the log offer
a way to. Over a real uvicorn and a real audit log (SQLite)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner

from edgefleet.cli import audit as audit_cli
from edgefleet.cloud.access.audit_log import Actor, AuditLog, AuditRecord, Target
from edgefleet.cloud.access.authorizing import Principal
from edgefleet.cloud.api import create_app
from edgefleet.cloud.api.deps import require_access
from edgefleet.cloud.settings import Settings
from edgefleet.ids import SiteId
from tests.cloud.api.memory import MemoryController
from tests.cloud.api.serving import serving

T0 = 1_700_000_000.0  # November 2023: long before any --since the tests give
PUDONG, DAXING = SiteId("sh-pudong"), SiteId("bj-daxing")
ADMIN = Principal(name="li.wei", role="admin")
PUDONG_STAFF = Principal(name="pudong-staff", role="site-staff", sites=frozenset({PUDONG}))
VIEWER = Principal(name="watcher", role="viewer")

ENTRIES = [
    AuditRecord(T0, Actor("li.wei", "admin", "10.0.0.5 curl/8"), "hold-site", Target("site", PUDONG, PUDONG),
                f"hold site {PUDONG}", after="peak day"),
    AuditRecord(T0 + 60, Actor("zhang.min", "ops", "10.0.0.6 edgefleet"), "acknowledge-alert",
                Target("alert", "abc123", DAXING), "acknowledge alert abc123", {"state": "firing"},
                {"state": "acknowledged"}),
    AuditRecord(T0 + 120, Actor("li.wei", "release-manager", "10.0.0.5 edgefleet"), "start-rollout",
                Target("rollout", "r-20270115-ab12"), "start rollout of scan-upload-2.0.0", None, "scan-upload-2.0.0"),
    AuditRecord(T0 + 180, Actor("reconciler"), "apply", Target("rollout", "r-20270115-ab12", PUDONG),
                "apply scan-upload-2.0.0 at sh-pudong", "scan-upload-1.0.0", "scan-upload-2.0.0"),
]  # fmt: skip


@pytest.fixture
def caller() -> list[Principal]:
    """Who calls: the test swaps it (a one-item list the access override reads)."""
    return [ADMIN]


@pytest.fixture
def api(tmp_path: Path, caller: list[Principal]) -> Iterator[str]:
    memory = MemoryController.small(tmp_path / "sites")
    memory.audit_log.record(*ENTRIES)
    app = create_app(Settings(), controller=memory)
    app.dependency_overrides[require_access] = lambda: caller[0]
    with serving(app) as url:
        yield url


def read(api: str, **params: str | int) -> httpx.Response:
    return httpx.get(f"{api}/api/v1/audit", params=params, timeout=10)


def test_a_fleet_wide_reader_sees_every_entry_newest_first(api: str) -> None:
    answer = read(api)

    assert answer.status_code == 200
    entries = answer.json()
    assert [e["action"] for e in entries] == ["apply", "start-rollout", "acknowledge-alert", "hold-site"]
    newest = entries[0]
    assert newest["principal"] == "reconciler"
    assert newest["role"] is None
    assert newest["target"] == {"kind": "rollout", "id": "r-20270115-ab12"}
    assert newest["site"] == "sh-pudong"
    assert (newest["before"], newest["after"]) == ("scan-upload-1.0.0", "scan-upload-2.0.0")
    assert datetime.fromisoformat(newest["at"]) == datetime.fromtimestamp(T0 + 180, tz=UTC)
    ack = entries[2]
    assert (ack["before"], ack["after"], ack["source"]) == (
        {"state": "firing"},
        {"state": "acknowledged"},
        "10.0.0.6 edgefleet",
    )


def test_filters_narrow_and_pages_follow_the_cursor(api: str) -> None:
    assert [e["action"] for e in read(api, principal="li.wei").json()] == ["start-rollout", "hold-site"]
    assert [e["action"] for e in read(api, site="sh-pudong").json()] == ["apply", "hold-site"]
    assert [e["action"] for e in read(api, action="acknowledge-alert").json()] == ["acknowledge-alert"]
    assert [e["action"] for e in read(api, target="rollout:r-20270115-ab12").json()] == ["apply", "start-rollout"]
    assert [e["action"] for e in read(api, target="alert").json()] == ["acknowledge-alert"]
    since = datetime.fromtimestamp(T0 + 60, tz=UTC).isoformat()
    until = datetime.fromtimestamp(T0 + 180, tz=UTC).isoformat()
    assert [e["action"] for e in read(api, since=since, until=until).json()] == ["start-rollout", "acknowledge-alert"]

    seen: list[str] = []
    first = read(api, limit=3)
    seen += [e["action"] for e in first.json()]
    second = read(api, limit=3, cursor=first.headers["X-Next-Cursor"])
    seen += [e["action"] for e in second.json()]
    assert seen == ["apply", "start-rollout", "acknowledge-alert", "hold-site"]
    assert "X-Next-Cursor" not in second.headers
    assert read(api, cursor="bm90LWEtY3Vyc29y").status_code == 422
    assert read(api, cursor="WyJhdWRpdCIsIDFlKzMwMF0").status_code == 422  # ["audit", 1e+300]: no id of ours
    assert read(api, target=":r-1").status_code == 422


def test_site_staff_see_only_their_sites_entries(api: str, caller: list[Principal]) -> None:
    caller[0] = PUDONG_STAFF

    mine = read(api)
    other = read(api, site="bj-daxing")

    assert mine.status_code == 200
    # Their site's hold and the apply there; not the other site's alert, not the fleet-wide rollout start.
    assert [(e["action"], e["site"]) for e in mine.json()] == [("apply", "sh-pudong"), ("hold-site", "sh-pudong")]
    assert [e["action"] for e in read(api, site="sh-pudong").json()] == ["apply", "hold-site"]
    assert other.status_code == 404  # as if the other site did not exist
    assert "bj-daxing" not in other.text
    assert read(api, action="start-rollout").json() == []


def test_a_viewer_may_not_read_the_audit(api: str, caller: list[Principal]) -> None:
    caller[0] = VIEWER

    refused = read(api)

    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("path", ["/api/v1/audit", "/api/v1/audit/1"])
def test_nothing_in_the_api_edits_the_audit(api: str, method: str, path: str) -> None:
    answer = httpx.request(method, f"{api}{path}", json={"summary": "nothing happened"}, timeout=10)

    # The log itself takes GET alone; below it there is nothing at all.
    assert answer.status_code == (405 if path == "/api/v1/audit" else 404)
    assert [e["summary"] for e in read(api).json()] == [e.summary for e in reversed(ENTRIES)]


def test_the_log_offers_no_update_nor_delete() -> None:
    public = {name for name in dir(AuditLog) if not name.startswith("_")}
    # Reads and appends only: ``last_inventory_version`` is what standbys follow (edgefleet.cloud.following).
    assert public == {"create_schema", "record", "keep", "page", "waiting", "last_inventory_version"}


# --- edgefleet audit ----------------------------------------------------------------------------------------


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    audit_cli.register(app)
    app.command("unused", hidden=True)(lambda: None)  # a group of two, so that 'audit' is a subcommand
    return app


RUNNER = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})


def test_edgefleet_audit_shows_a_table_and_json(cli: typer.Typer, api: str) -> None:
    table = RUNNER.invoke(cli, ["audit", "--api", api])
    as_json = RUNNER.invoke(cli, ["audit", "--site", "sh-pudong", "-o", "json", "--api", api])
    wide = RUNNER.invoke(cli, ["audit", "--action", "acknowledge-alert", "-o", "wide", "--api", api])

    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0].split() == ["at", "principal", "action", "target", "site", "summary"]
    assert "reconciler" in table.output
    assert "li.wei (release-manager)" in table.output
    assert "rollout r-20270115-ab12" in table.output
    assert lines[-1] == "4 entries"
    assert as_json.exit_code == 0, as_json.output
    assert [e["action"] for e in json.loads(as_json.output)] == ["apply", "hold-site"]
    assert wide.exit_code == 0, wide.output
    assert '{"state":"acknowledged"}' in wide.output
    assert "10.0.0.6 edgefleet" in wide.output


def test_edgefleet_audit_takes_a_time_ago_and_refuses_nonsense(cli: typer.Typer, api: str) -> None:
    recent = RUNNER.invoke(cli, ["audit", "--since", "1h", "--api", api])
    everything = RUNNER.invoke(cli, ["audit", "--since", "2023-01-01T00:00", "--principal", "li.wei", "--api", api])
    bad = RUNNER.invoke(cli, ["audit", "--since", "yesterday", "--api", api])

    assert recent.exit_code == 0, recent.output
    assert "no entry matches" in recent.output
    assert everything.exit_code == 0, everything.output
    assert everything.output.splitlines()[-1] == "2 entries"
    assert bad.exit_code == 2
    assert "neither a time ago" in bad.output


def test_a_time_ago_is_counted_back_from_now() -> None:
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    assert audit_cli.moment("1h30m", option="--since", now=now) == "2026-12-02T10:30:00+00:00"
    assert audit_cli.moment("2d", option="--since", now=now) == "2026-11-30T12:00:00+00:00"
    assert audit_cli.moment("1w", option="--since", now=now) == "2026-11-25T12:00:00+00:00"
    assert audit_cli.moment("2026-12-01T08:00", option="--since", now=now) == "2026-12-01T08:00:00"
