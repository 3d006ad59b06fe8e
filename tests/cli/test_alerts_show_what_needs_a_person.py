"""``edgefleet alerts`` shows what needs a person - the firing, unmuted alerts - and one line per reason for what it
leaves out; tables show short ids that ``ack`` takes back (a unique start of an id, resolved by the API), and every
list prints the API's objects with ``-o json|yaml``. Against a real API over a real alert store (SQLite)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from edgefleet.cli import alerts as alerts_cli
from edgefleet.cloud.alerting.alerts import AlertKey, AlertKind, Severity, StoredAlert, alert_id
from edgefleet.cloud.alerting.commands import AlertCommands
from edgefleet.cloud.alerting.looping import AlertLoop
from edgefleet.cloud.api import create_app
from edgefleet.cloud.migrating import upgrade_schema
from edgefleet.cloud.settings import Settings
from edgefleet.cloud.store import Store
from edgefleet.ids import BoxId, SiteId
from tests.cloud.api.memory import MemoryController
from tests.cloud.api.serving import serving
from tests.support.access import as_cli, mint, use_token

T0 = 1_800_000_000.0
CUT = "site-unreachable sh-pudong"
LONG_SUMMARY = "Site sh-pudong unreachable: " + "every box went quiet at once, " * 8 + "check its WAN link"


def stored(kind: AlertKind, box: str | None, *, at: float, site: str = "sh-pudong", **changes: object) -> StoredAlert:
    key = AlertKey(kind, SiteId(site), BoxId(box) if box else None)
    alert = StoredAlert(
        id=alert_id(key, at),
        key=key,
        severity=Severity.CRITICAL,
        summary=f"{kind} {box or site}",
        description="what to do",
        labels={},
        details={},
        started_at=at - 30,
        fired_at=at,
        updated_at=at,
    )
    return dataclasses.replace(alert, **changes)  # type: ignore[arg-type]


@pytest.fixture
def cut_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, AlertLoop]]:
    """A controller's API whose site sh-pudong is cut: its site alert fires, its two boxes' box-lost alerts are
    inhibited by it; elsewhere one alert is acknowledged and one resolved."""
    memory = MemoryController.small(tmp_path / "sites")
    store = Store(f"sqlite:///{tmp_path / 'alerts.db'}")
    upgrade_schema(store)
    loop = AlertLoop(memory.state, store, clock=memory.clock, config=None)
    loop.alerts.save(
        [
            stored(AlertKind.SITE_UNREACHABLE, None, at=T0 + 60, summary=LONG_SUMMARY),
            stored(AlertKind.BOX_LOST, "sh-pudong-gpu-01", at=T0 + 30, muted="inhibited", muted_by=(CUT,)),
            stored(AlertKind.BOX_LOST, "sh-pudong-gpu-02", at=T0 + 30, muted="inhibited", muted_by=(CUT,)),
            stored(
                AlertKind.GPU_OVERHEAT,
                "bj-daxing-gpu-01",
                site="bj-daxing",
                at=T0,
                state="acknowledged",
                acknowledged_by="li.wei",
            ),
            stored(AlertKind.BOX_LOST, "bj-daxing-edge-01", site="bj-daxing", at=T0 - 600, state="resolved"),
        ]
    )
    memory.alerting = AlertCommands(loop)
    # The CLI and the API calls below act as wang.fang, an admin.
    use_token(monkeypatch, mint(memory, "admin", name="wang.fang"))
    with serving(create_app(Settings(), controller=memory)) as url:
        yield url, loop
    store.close()


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    alerts_cli.register(app)
    return app


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner(env={"NO_COLOR": "1"})


def test_a_cut_site_is_one_row_plus_what_it_mutes(
    cli: typer.Typer, runner: CliRunner, cut_site: tuple[str, AlertLoop]
) -> None:
    api, _ = cut_site

    result = runner.invoke(cli, ["alerts", "--api", api])

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["id", "kind", "site", "box", "severity", "state", "since", "summary"]
    assert len(lines) == 5, result.output
    assert lines[1].split()[1:6] == ["site-unreachable", "sh-pudong", "-", "critical", "firing"]
    assert lines[2:] == [
        "1 alert firing",
        "2 more muted (inhibited by site-unreachable sh-pudong): --all",
        "1 more acknowledged: --state acknowledged",
    ]


def test_piped_tables_are_never_cut(cli: typer.Typer, runner: CliRunner, cut_site: tuple[str, AlertLoop]) -> None:
    api, _ = cut_site

    result = runner.invoke(cli, ["alerts", "--api", api], env={"COLUMNS": "40"})

    assert result.exit_code == 0, result.output
    assert LONG_SUMMARY in result.output.splitlines()[1]
    assert "│" not in result.output
    assert "…" not in result.output


def test_all_lists_every_alert_and_wide_shows_full_ids(
    cli: typer.Typer, runner: CliRunner, cut_site: tuple[str, AlertLoop]
) -> None:
    api, loop = cut_site
    every = loop.alerts.find()

    result = runner.invoke(cli, ["alerts", "--all", "-o", "wide", "--api", api])

    assert result.exit_code == 0, result.output
    assert all(alert.id in result.output for alert in every)
    assert "5 alerts, 3 firing" in result.output
    assert "inhibited" in result.output
    assert "li.wei" in result.output


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_o_json_and_yaml_print_the_apis_objects(
    cli: typer.Typer, runner: CliRunner, cut_site: tuple[str, AlertLoop], fmt: str
) -> None:
    api, _ = cut_site
    from_api = as_cli.get(f"{api}/api/v1/alerts").json()

    result = runner.invoke(cli, ["alerts", "--all", "-o", fmt, "--api", api])

    assert result.exit_code == 0, result.output
    printed = json.loads(result.output) if fmt == "json" else yaml.safe_load(result.output)
    assert printed == from_api
    assert list(printed[0]) == list(from_api[0])  # the API's keys, in its order


def test_ack_takes_the_short_id_the_table_shows(
    cli: typer.Typer, runner: CliRunner, cut_site: tuple[str, AlertLoop]
) -> None:
    api, loop = cut_site
    site_alert = loop.alerts.find(kind=AlertKind.SITE_UNREACHABLE)[0]
    short = as_cli.get(f"{api}/api/v1/alerts", params={"kind": "site-unreachable"}).json()[0]["short_id"]
    assert (len(short), site_alert.id.startswith(short)) == (8, True)
    assert runner.invoke(cli, ["alerts", "--api", api]).output.splitlines()[1].startswith(short + " ")

    result = runner.invoke(cli, ["alerts", "ack", short, "--api", api])

    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Acknowledged {site_alert.id} (site-unreachable sh-pudong) as wang.fang")
    assert loop.alerts.get(site_alert.id).state == "acknowledged"  # type: ignore[union-attr]


def test_an_ambiguous_start_names_the_candidates_and_a_longer_one_works(
    cli: typer.Typer, runner: CliRunner, cut_site: tuple[str, AlertLoop]
) -> None:
    api, loop = cut_site
    twins = [
        stored(AlertKind.APP_DOWN, "sh-pudong-gpu-01", at=T0 + 5, id="abcdef0123-1"),
        stored(AlertKind.APP_DOWN, "sh-pudong-gpu-02", at=T0 + 5, id="abcdef0123-2"),
    ]
    loop.alerts.save(twins)

    shown = {a["id"]: a["short_id"] for a in as_cli.get(f"{api}/api/v1/alerts", params={"kind": "app-down"}).json()}
    assert shown == {"abcdef0123-1": "abcdef0123-1", "abcdef0123-2": "abcdef0123-2"}

    ambiguous = runner.invoke(cli, ["alerts", "ack", "abcdef", "--api", api])
    assert ambiguous.exit_code == 1
    assert ambiguous.output.startswith("error: 'abcdef' starts the id of 2 alerts: abcdef0123-")
    assert "(app-down sh-pudong/sh-pudong-gpu-01)" in ambiguous.output

    assert as_cli.get(f"{api}/api/v1/alerts/abcdef0123-2").json()["box"] == "sh-pudong-gpu-02"
    missing = as_cli.get(f"{api}/api/v1/alerts/feedface")
    assert missing.status_code == 404
    assert missing.json()["error"]["message"].startswith("no alert 'feedface', nor one whose id starts so")


@pytest.mark.parametrize("start", ["ab%", "a_cd", "abc", "ABCDEF"])
def test_an_id_filter_that_is_no_start_of_an_id_is_refused(cut_site: tuple[str, AlertLoop], start: str) -> None:
    api, _ = cut_site

    response = as_cli.get(f"{api}/api/v1/alerts", params={"id_prefix": start})

    assert response.status_code == 422
    assert "query parameter 'id_prefix'" in response.json()["error"]["message"]


def test_counts_are_by_state_and_muting(cut_site: tuple[str, AlertLoop]) -> None:
    api, _ = cut_site

    counts = as_cli.get(f"{api}/api/v1/alerts/counts").json()

    assert counts == [
        {"state": "firing", "muted": "inhibited", "muted_by": [CUT], "count": 2},
        {"state": "acknowledged", "muted": None, "muted_by": [], "count": 1},
        {"state": "firing", "muted": None, "muted_by": [], "count": 1},
    ]
    assert as_cli.get(f"{api}/api/v1/alerts/counts", params={"site": "bj-daxing"}).json() == [
        {"state": "acknowledged", "muted": None, "muted_by": [], "count": 1}
    ]


def test_scripts_get_every_alert_past_the_api_page(
    cli: typer.Typer, runner: CliRunner, cut_site: tuple[str, AlertLoop]
) -> None:
    # A flood: more alerts than one page of the API holds (it used to stop at 1,000).
    api, loop = cut_site
    flood = [
        dataclasses.replace(a, id=alert_id(dataclasses.replace(a.key, detail=f"n{n}"), a.fired_at))
        for n in range(1200)
        for a in [stored(AlertKind.BOX_LOST, "sh-pudong-edge-01", at=T0 - 3600 - n // 2)]
    ]
    loop.alerts.save(flood)

    every = runner.invoke(cli, ["alerts", "--api", api, "--all", "-o", "json"])
    table = runner.invoke(cli, ["alerts", "--api", api, "--all", "--limit", "150"])

    assert every.exit_code == 0, every.output
    ids = [a["id"] for a in json.loads(every.output)]
    assert len(ids) == len(set(ids)) == 1200 + 5, "every stored alert, once"
    assert table.exit_code == 0, table.output
    assert "more alerts follow: --limit 300, or -o json for every one" in table.output
    assert "150 alerts" in table.output
