"""Approval end to end against the simulated cluster: a wave listed in ``approvalBefore`` waits once the waves
before it passed, the rollout says it waits for a promotion (API and CLI), nothing is applied at its sites, and
``promote`` starts it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner

from edgefleet.cli import rollouts
from tests.cloud.api.serving import serving
from tests.rollouts.world import SITES, World, release, small_world
from tests.support.access import use_token

pytestmark = pytest.mark.slow


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


def test_a_wave_that_needs_approval_waits_for_promote_then_runs(world: World, api: str, client: httpx.Client) -> None:
    started = client.post("/api/v1/rollouts", json={"release": release("1.0.0", strategy="    approvalBefore: [1]\n")})
    assert started.status_code == 201, started.text
    rollout = started.json()
    assert [w["needs_approval"] for w in rollout["waves"]] == [False, True]

    waiting = world.run_until(rollout["id"], "awaiting-approval")
    assert waiting.status.sites[SITES[0]].state == "passed"  # the canary ran
    assert waiting.status.waves == ("passed", "awaiting-approval")
    world.step(rollout["id"])
    world.step(rollout["id"])  # ticks change nothing while it waits
    shown = client.get(f"/api/v1/rollouts/{rollout['id']}").json()
    assert shown["state"] == "awaiting-approval"
    # The planner names it "wave 1": said once ("wave wave 1" before).
    assert shown["reason"] == f"{shown['waves'][1]['name']} waits for a promotion"
    assert shown["reason"].startswith("wave 1 waits")
    assert shown["waves"][1]["state"] == "awaiting-approval"
    assert {s["state"] for s in shown["waves"][1]["sites"]} == {"pending"}
    assert all(world.running(s) is None for s in SITES[1:])

    cli = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    rollouts.register(cli)
    result = CliRunner().invoke(cli, ["rollout", "status", rollout["id"], "--api", api], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert f"Rollout {rollout['id']} of scan-upload-1.0.0: awaiting-approval (wave" in result.output
    result = CliRunner().invoke(cli, ["rollout", "promote", rollout["id"], "--api", api])
    assert result.exit_code == 0, result.output

    done = world.run_until(rollout["id"], "done")
    assert all(done.status.sites[s].state == "passed" for s in SITES)
    assert all(world.site_release(s)[1] == rollout["id"] for s in SITES)
    # The audit names the API's caller (the anonymous admin, until tokens) and the name the command gave.
    promoted = [e for e in world.rollouts.audit(rollout["id"]) if e.what.startswith("promote rollout")]
    assert [(e.who, e.what, e.before, e.after) for e in promoted] == [("rm", "promote rollout", "none", "promoted 1")]
