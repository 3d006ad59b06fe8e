"""People act on alerts through the controller's API and the CLI: acknowledge a firing alert (once: a second time
is a 409 saying by whom), silence a box for maintenance (its alert is stored, muted, and told only when the
silence is ended), and get every problem of a bad silence at once (422)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import typer
from typer.testing import CliRunner

from edgefleet.cli import alerts as alerts_cli
from edgefleet.cloud.access.authorizing import Principal
from edgefleet.cloud.api import create_app
from edgefleet.cloud.api.deps import require_access
from edgefleet.ids import SiteId
from tests.alerting.wiring.fleets import Fleet
from tests.cli.entry import edgefleet
from tests.cloud.api.serving import serving
from tests.support.access import use_token
from tests.support.peers import free_port, wait_for

SITE = "ops-01"
ACKED_BOX = "ops-01-gpu-01"
SILENCED_BOX = "ops-01-gpu-02"
CLI_BOX = "ops-01-gpu-03"


@pytest.fixture(scope="module")
def lost_boxes(fleet: Fleet) -> Iterator[dict[str, dict[str, Any]]]:
    """Two boxes of ops-01 stop beating for the module; the first one's box-lost alert has been told."""
    faults = {}
    faults[ACKED_BOX] = fleet.inject(kind="stop", box=ACKED_BOX)
    yield faults
    for fault in faults.values():
        fleet.clear(fault)


@pytest.fixture
def client(fleet: Fleet) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fleet.api, timeout=10, headers=fleet.headers("li.wei")) as c:
        yield c


def firing_alert(fleet: Fleet, box: str) -> dict[str, Any]:
    told = fleet.wait_notice(box=box, kind="box-lost", timeout=10)
    return told.alert


def test_an_alert_is_acknowledged_once_with_who_and_when(
    fleet: Fleet, lost_boxes: dict[str, Any], client: httpx.Client
) -> None:
    alert = firing_alert(fleet, ACKED_BOX)
    listed = client.get("/api/v1/alerts", params={"site": SITE, "state": "firing", "kind": "box-lost"}).json()
    assert [a["id"] for a in listed] == [alert["id"]]

    response = client.post(f"/api/v1/alerts/{alert['id']}/ack", json={})
    assert response.status_code == 200, response.text
    acked = response.json()
    assert (acked["state"], acked["acknowledged_by"]) == ("acknowledged", "li.wei")
    assert client.get(f"/api/v1/alerts/{alert['id']}").json()["state"] == "acknowledged"
    assert client.get("/api/v1/alerts", params={"site": SITE, "state": "firing"}).json() == []

    again = client.post(f"/api/v1/alerts/{alert['id']}/ack", headers=fleet.headers("zhang.min"))
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "conflict"
    assert "already acknowledged by li.wei" in again.json()["error"]["message"]
    # The planner knows: an acknowledged alert is no longer repeated, and nothing was told for the ack itself.
    fleet.settled()
    assert [n.notice for n in fleet.notices(box=ACKED_BOX)] == ["firing"]


@pytest.mark.parametrize(
    ("alert", "body", "status", "says"),
    [
        ("no-such-alert", {}, 404, "no alert 'no-such-alert'"),
        ("no-such-alert", {"by": "li.wei"}, 422, "body field 'by': the actor is who signed in"),
        ("no-such-alert", {"who": "x"}, 422, "body field 'who': Extra inputs are not permitted"),
    ],
)
def test_a_bad_acknowledgement_says_what_is_wrong(
    client: httpx.Client, alert: str, body: dict[str, str], status: int, says: str
) -> None:
    response = client.post(f"/api/v1/alerts/{alert}/ack", json=body)
    assert response.status_code == status
    assert says in response.json()["error"]["message"]


def test_a_silenced_box_is_stored_muted_and_told_when_the_silence_ends(
    fleet: Fleet, lost_boxes: dict[str, Any], client: httpx.Client
) -> None:
    response = client.post(
        "/api/v1/silences",
        json={"box": SILENCED_BOX, "duration": "10m", "comment": "replacing its fan"},
    )
    assert response.status_code == 201, response.text
    silence = response.json()
    assert (silence["state"], silence["box"], silence["site"]) == ("active", SILENCED_BOX, None)
    assert [s["id"] for s in client.get("/api/v1/silences").json()] == [silence["id"]]

    lost_boxes[SILENCED_BOX] = fleet.inject(kind="stop", box=SILENCED_BOX)
    muted = wait_for(
        lambda: fleet.stored(site=SITE, kind="box-lost", box=SILENCED_BOX), timeout=10, what="the muted alert"
    )[0]
    assert (muted["state"], muted["muted"], muted["muted_by"]) == ("firing", "silenced", [silence["id"]])
    fleet.settled()
    assert fleet.notices(box=SILENCED_BOX) == []

    ended = client.delete(f"/api/v1/silences/{silence['id']}")
    assert ended.status_code == 200, ended.text
    assert (ended.json()["state"], ended.json()["ended_by"]) == ("expired", "li.wei")
    told = fleet.wait_notice(box=SILENCED_BOX, kind="box-lost", timeout=10)
    assert (told.notice, told.alert["id"]) == ("firing", muted["id"])
    assert client.get("/api/v1/silences").json() == []
    assert [s["id"] for s in client.get("/api/v1/silences", params={"all": "true"}).json()] == [silence["id"]]

    again = client.delete(f"/api/v1/silences/{silence['id']}")
    assert again.status_code == 409
    assert "already ended" in again.json()["error"]["message"]
    assert client.delete("/api/v1/silences/silence-nope").status_code == 404


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"site": "ops-0l", "duration": "2h"}, "site 'ops-0l' is not in the inventory; did you mean 'ops-01'?"),
        ({"site": "stop-01", "box": "ops-01-gpu-01", "duration": "2h"}, "belongs to site 'ops-01', not 'stop-01'"),
        ({"duration": "2h"}, "a silence needs at least one matcher"),
        ({"site": "ops-01"}, "give either ends_at or duration"),
        ({"site": "ops-01", "duration": "2h", "ends_at": "2031-01-01T00:00:00Z"}, "not both"),
        ({"site": "ops-01", "duration": "soon"}, "'soon' is no duration"),
        ({"site": "ops-01", "duration": "45d"}, "45d is longer than a silence may last (30d)"),
        ({"site": "ops-01", "ends_at": "2020-01-01T00:00:00Z"}, "ends_at"),
        ({"site": "ops-01", "duration": "2h", "comment": " "}, "comment must say why"),
        ({"site": "ops-01", "duration": "2h", "kind": "box-gone"}, "body field 'kind'"),
    ],
)
def test_a_bad_silence_is_refused_with_every_problem(client: httpx.Client, body: dict[str, str], says: str) -> None:
    response = client.post("/api/v1/silences", json={"comment": "maintenance", **body})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid-request"
    assert says in response.json()["error"]["message"]


# --- the CLI ----------------------------------------------------------------------------------------------


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    alerts_cli.register(app)
    return app


@pytest.fixture
def runner() -> CliRunner:
    # Wide enough that rich never folds a cell: the tests read the tables' text.
    return CliRunner(env={"COLUMNS": "250", "NO_COLOR": "1"})


def test_the_cli_lists_acknowledges_and_silences(
    fleet: Fleet, lost_boxes: dict[str, Any], cli: typer.Typer, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_token(monkeypatch, fleet.token("wang.fang"))
    lost_boxes[CLI_BOX] = fleet.inject(kind="stop", box=CLI_BOX)
    alert = firing_alert(fleet, CLI_BOX)
    api = ["--api", fleet.api]

    listed = runner.invoke(cli, ["alerts", "--site", SITE, "--kind", "box-lost", *api])
    assert listed.exit_code == 0, listed.output
    row = next(line for line in listed.output.splitlines() if line.startswith(alert["id"][:8]))
    assert re.search(rf"box-lost\s+{SITE}\s+{CLI_BOX}\s+critical\s+firing", row), row
    short = row.split()[0]

    acked = runner.invoke(cli, ["alerts", "ack", short, *api])
    assert acked.exit_code == 0, acked.output
    assert f"Acknowledged {alert['id']} (box-lost {CLI_BOX}) as wang.fang" in acked.output
    again = runner.invoke(cli, ["alerts", "ack", alert["id"], *api])
    assert again.exit_code == 1
    assert again.output.startswith("error: alert ")
    assert "was already acknowledged by wang.fang" in again.output

    added = runner.invoke(
        cli, ["silence", "add", "--site", SITE, "--kind", "gpu-overheat", "--for", "2h",
              "--comment", "cooling work in the hall", *api],
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    silence_id = re.search(r"Added silence (silence-[0-9a-f]+) \(site=ops-01, kind=gpu-overheat\)", added.output)
    assert silence_id, added.output
    listed = runner.invoke(cli, ["silence", "list", *api])
    assert silence_id.group(1) in listed.output
    assert "cooling work in the hall" in listed.output
    deleted = runner.invoke(cli, ["silence", "delete", silence_id.group(1), *api])
    assert deleted.exit_code == 0, deleted.output
    assert f"Ended silence {silence_id.group(1)}" in deleted.output

    refused = runner.invoke(cli, ["silence", "add", "--site", "ops-0l", "--for", "2h", "-c", "y", *api])
    assert refused.exit_code == 1
    assert "did you mean 'ops-01'" in refused.output


def test_the_cli_says_in_one_line_when_the_controller_cannot_be_reached() -> None:
    result = edgefleet("alerts", "--api", f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: cannot reach the controller API at http://127.0.0.1:")
    assert "Traceback" not in result.stderr


# --- who may see and do what ------------------------------------------------------------------------------

OPS_STAFF = Principal(name="ops-staff", role="site-staff", sites=frozenset({SiteId(SITE)}))


@pytest.fixture
def staff_client(fleet: Fleet) -> Iterator[httpx.Client]:
    """The controller's API as a caller who may read ops-01 only (put in through the one access check)."""
    app = create_app(fleet.controller.settings, controller=fleet.controller)
    app.dependency_overrides[require_access] = lambda: OPS_STAFF
    with serving(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        yield client


def test_a_site_scoped_caller_sees_and_acts_on_their_sites_alerts_only(
    fleet: Fleet, lost_boxes: dict[str, Any], staff_client: httpx.Client
) -> None:
    firing_alert(fleet, ACKED_BOX)
    other = fleet.inject(kind="stop", box="stop-01-edge-01")
    try:
        elsewhere = fleet.wait_notice(box="stop-01-edge-01", kind="box-lost", timeout=10).alert
        assert {a["site"] for a in staff_client.get("/api/v1/alerts").json()} == {SITE}
        # Another site's alerts are as good as absent (404)...
        for response in (
            staff_client.get("/api/v1/alerts", params={"site": "stop-01"}),
            staff_client.get(f"/api/v1/alerts/{elsewhere['id']}"),
            staff_client.post(f"/api/v1/alerts/{elsewhere['id']}/ack", json={}),
            staff_client.post("/api/v1/silences", json={"site": "stop-01", "duration": "1h", "comment": "y"}),
        ):
            assert response.status_code == 404, response.text
            assert response.json()["error"]["code"] == "not-found"
            assert "stop-01" not in response.text
        # ... and a silence of a kind alone mutes every site's alerts of it: fleet-wide, refused (403).
        response = staff_client.post("/api/v1/silences", json={"kind": "disk-full", "duration": "1h", "comment": "y"})
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "forbidden"
        assert fleet.controller.alerting.alert(elsewhere["id"]).state == "firing"
    finally:
        fleet.clear(other)
