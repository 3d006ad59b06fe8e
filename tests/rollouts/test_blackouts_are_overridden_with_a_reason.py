"""A site in its blackout window is not started until the rollout overrides the blackouts with a reason: through
the API (``override_blackout`` when starting, or ``POST .../override-blackout`` once it runs) and the CLI
(``rollout start --override-blackout REASON``, ``rollout override-blackout ID --reason R``), the reason audited and
shown in the rollout's status; a blank reason is refused with a clear error, before anything changes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner

from edgefleet.cli import rollouts
from edgefleet.cloud.rollouts.service import BadOverride
from tests.cloud.api.serving import serving
from tests.rollouts.world import SITES, World, release, small_world
from tests.support.access import use_token

pytestmark = pytest.mark.slow

# site-b is in its blackout window whenever the test runs: all day, every day, in its own time zone.
BLACKOUT = """\
    blackouts:
      - {daily: "00:00-23:59", reason: sorting peak, sites: [site-b]}
      - {daily: "23:59-24:00", reason: sorting peak, sites: [site-b]}
"""
REASON = "INC-4711: fix for the label printer crash"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with small_world(tmp_path) as built:
        built.beat()
        yield built


@pytest.fixture
def api(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with serving(world.app()) as url:
        use_token(monkeypatch, world.token)  # the CLI's calls act as "rm", an admin
        yield url


@pytest.fixture
def client(api: str, world: World) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api, timeout=10, headers=world.headers) as c:
        yield c


def _run(*args: str) -> tuple[int, str]:
    cli = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    rollouts.register(cli)
    result = CliRunner().invoke(cli, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output


def test_a_site_in_its_blackout_window_waits_until_the_rollout_overrides_it(client: httpx.Client, world: World) -> None:
    rollout = client.post("/api/v1/rollouts", json={"release": release("1.0.0", strategy=BLACKOUT)}).json()
    assert rollout["blackout_override"] is None

    blocked = world.step_until(
        rollout["id"],
        lambda r: all(r.status.sites[s].state == "passed" for s in SITES if s != "site-b"),
        what="to pass every site but the blocked one",
    )
    assert blocked.status.sites[SITES[1]].state == "blocked"
    assert blocked.status.sites[SITES[1]].reason == "in a blackout window: sorting peak"
    assert blocked.status.waves[1] == "running"  # a blocked site keeps its wave waiting
    world.step(rollout["id"])
    assert world.running(SITES[1]) is None  # never started in its window
    assert client.get(f"/api/v1/rollouts/{rollout['id']}").json()["blocked"] == ["site-b"]

    overridden = client.post(f"/api/v1/rollouts/{rollout['id']}/override-blackout", json={"reason": REASON})
    assert overridden.status_code == 200, overridden.text
    assert overridden.json()["blackout_override"] == REASON

    done = world.run_until(rollout["id"], "done")
    assert done.status.sites[SITES[1]].state == "passed"
    assert done.status.sites[SITES[1]].blackout_override == f"inside its blackout window (sorting peak): {REASON}"
    assert world.site_release(SITES[1])[1] == rollout["id"]
    shown = client.get(f"/api/v1/rollouts/{rollout['id']}").json()
    site_b = next(s for w in shown["waves"] for s in w["sites"] if s["site"] == "site-b")
    assert site_b["blackout_override"] == f"inside its blackout window (sorting peak): {REASON}"
    audit = [(e.who, e.what, e.before, e.after) for e in world.rollouts.audit(rollout["id"])]
    # The audit names the caller (today every caller is the anonymous admin) and the name the request gave.
    assert (
        "rm",
        f"override blackout windows: {REASON}",
        "none",
        f"blackouts overridden: {REASON}",
    ) in audit


def test_a_rollout_started_with_an_override_starts_the_site_in_its_window_at_once(
    client: httpx.Client, world: World
) -> None:
    body = {"release": release("1.0.0", strategy=BLACKOUT), "override_blackout": REASON}
    rollout = client.post("/api/v1/rollouts", json=body).json()
    assert rollout["blackout_override"] == REASON

    done = world.run_until(rollout["id"], "done")
    assert done.status.sites[SITES[1]].blackout_override == f"inside its blackout window (sorting peak): {REASON}"
    whats = [e.what for e in world.rollouts.audit(rollout["id"])]
    assert whats[0] == f"start rollout of scan-upload-1.0.0, overriding blackout windows: {REASON}"


@pytest.mark.parametrize("reason", ["", "   "])
def test_a_blank_reason_is_refused_with_what_to_give(client: httpx.Client, world: World, reason: str) -> None:
    refused = client.post(
        "/api/v1/rollouts", json={"release": release("1.0.0", strategy=BLACKOUT), "override_blackout": reason}
    )
    assert refused.status_code == 422
    assert "override_blackout" in refused.json()["error"]["message"]
    assert world.rollouts.page() == []  # nothing started

    rollout = client.post("/api/v1/rollouts", json={"release": release("1.0.0", strategy=BLACKOUT)}).json()
    refused = client.post(f"/api/v1/rollouts/{rollout['id']}/override-blackout", json={"reason": reason})
    assert refused.status_code == 422
    assert "reason" in refused.json()["error"]["message"]
    assert world.rollouts.get(rollout["id"]).spec.commands.blackout_override is None
    # The service refuses it too (for callers other than the API).
    with pytest.raises(BadOverride, match="needs a reason"):
        world.service.override_blackout(rollout["id"], reason=reason, by="tester")


def test_an_ended_rollout_has_no_blackout_to_override(client: httpx.Client, world: World) -> None:
    rollout = client.post("/api/v1/rollouts", json={"release": release("1.0.0")}).json()
    world.run_until(rollout["id"], "done")
    late = client.post(f"/api/v1/rollouts/{rollout['id']}/override-blackout", json={"reason": REASON})
    assert late.status_code == 409
    assert "is done" in late.json()["error"]["message"]
    assert client.post("/api/v1/rollouts/r-nothing/override-blackout", json={"reason": REASON}).status_code == 404


def test_the_cli_overrides_with_a_reason_and_shows_it(api: str, world: World, tmp_path: Path) -> None:
    path = tmp_path / "release.yaml"
    path.write_text(release("1.0.0", strategy=BLACKOUT))
    code, out = _run("rollout", "start", str(path), "--override-blackout", " ", "--api", api)
    assert code == 1
    assert "error: --override-blackout needs a reason" in out
    assert world.rollouts.page() == []

    code, out = _run("rollout", "start", str(path), "--api", api)
    assert code == 0, out
    rollout_id = out.split()[2]
    world.step_until(
        rollout_id, lambda r: r.status.sites[SITES[1]].state == "blocked", what="to block site-b in its window"
    )
    code, out = _run("rollout", "status", rollout_id, "--api", api)
    assert code == 0, out
    assert "blocked (in a blackout window): site-b" in out

    code, out = _run("rollout", "override-blackout", rollout_id, "--reason", "", "--api", api)
    assert code == 1
    assert "error: --reason needs a reason" in out
    code, out = _run("rollout", "override-blackout", rollout_id, "--reason", REASON, "--api", api)
    assert code == 0, out
    assert out.startswith(f"override-blackout: rollout {rollout_id} may start sites inside their blackout windows")

    world.run_until(rollout_id, "done")
    code, out = _run("rollout", "status", rollout_id, "--api", api)
    assert code == 0, out
    assert f"blackout windows overridden: {REASON}" in out
    assert f"site-b started inside its blackout window (sorting peak): {REASON}" in out

    path.write_text(release("1.0.1", strategy=BLACKOUT))
    code, out = _run("rollout", "start", str(path), "--override-blackout", REASON, "--api", api)
    assert code == 0, out
    assert f"blackout windows overridden: {REASON}" in out
