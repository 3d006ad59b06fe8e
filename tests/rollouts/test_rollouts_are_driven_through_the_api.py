"""The rollout routes over the real service, store and reconciler of the small simulated fleet: start with an
Idempotency-Key (a retry answers the same rollout), one active rollout per app (409 naming it), a release older
than what runs (409 unless ``rollback: true``), the rollout with its waves, sites and gates, the paged list, the
commands and site holds, and the API's error shape for what is not there."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cloud.api.serving import serving
from tests.rollouts.world import SITES, World, release, small_world

pytestmark = pytest.mark.slow


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with small_world(tmp_path) as built:
        built.beat()
        yield built


@pytest.fixture
def client(world: World) -> Iterator[httpx.Client]:
    with serving(world.app()) as url, httpx.Client(base_url=url, timeout=10, headers=world.headers) as c:
        yield c


def test_a_rollout_started_twice_with_one_key_is_one_rollout_and_a_second_one_is_refused(
    client: httpx.Client, world: World
) -> None:
    body = {"release": release("1.0.0")}
    first = client.post("/api/v1/rollouts", json=body, headers={"Idempotency-Key": "abc"})
    again = client.post("/api/v1/rollouts", json=body, headers={"Idempotency-Key": "abc"})
    assert (first.status_code, again.status_code) == (201, 200)
    rollout = first.json()
    assert again.json()["id"] == rollout["id"]
    assert rollout["created_by"] == "rm"  # the token's name
    assert [w["sites"][0]["site"] for w in rollout["waves"]] == ["site-a", "site-b"]

    second = client.post("/api/v1/rollouts", json={"release": release("1.0.1")})
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "conflict"
    assert rollout["id"] in second.json()["error"]["message"]

    world.run_until(rollout["id"], "done")
    shown = client.get(f"/api/v1/rollouts/{rollout['id']}").json()
    assert shown["state"] == "done"
    assert shown["sites"] == {"passed": 4}
    assert all(s["state"] == "passed" for w in shown["waves"] for s in w["sites"])
    listed = client.get("/api/v1/rollouts").json()
    assert [r["id"] for r in listed] == [rollout["id"]]


def test_the_gates_and_reasons_of_sites_in_flight_are_shown(client: httpx.Client, world: World) -> None:
    world.stuck.add(SITES[0])
    rollout = client.post("/api/v1/rollouts", json={"release": release("1.0.0")}).json()
    world.step(rollout["id"])
    world.step(rollout["id"])

    canary = client.get(f"/api/v1/rollouts/{rollout['id']}").json()["waves"][0]["sites"][0]
    assert canary["state"] == "in-progress"
    assert {g["name"] for g in canary["gates"]} == {"kubernetes", "agents", "alerts", "health"}
    agents = next(g for g in canary["gates"] if g["name"] == "agents")
    assert agents["verdict"] == "wait"
    assert "run 1.0.0" in agents["reason"]


def test_older_releases_need_rollback_true(client: httpx.Client, world: World) -> None:
    started = client.post("/api/v1/rollouts", json={"release": release("2.0.0")}).json()
    world.run_until(started["id"], "done")

    older = client.post("/api/v1/rollouts", json={"release": release("1.0.0")})
    assert older.status_code == 409
    assert "older than 2.0.0" in older.json()["error"]["message"]
    assert client.post("/api/v1/rollouts", json={"release": release("1.0.0", rollback=True)}).status_code == 201


def test_commands_and_holds(client: httpx.Client, world: World) -> None:
    rollout = client.post("/api/v1/rollouts", json={"release": release("1.0.0")}).json()
    paused = client.post(f"/api/v1/rollouts/{rollout['id']}/pause", json={})
    assert paused.status_code == 200
    assert paused.json()["paused"] is True
    assert world.step(rollout["id"]).status.state == "paused"
    assert client.post(f"/api/v1/rollouts/{rollout['id']}/resume").json()["paused"] is False
    assert client.post(f"/api/v1/rollouts/{rollout['id']}/promote").status_code == 409

    held = client.post("/api/v1/sites/site-d/hold", json={"reason": "peak day"})
    assert held.status_code == 200
    assert held.json()["reason"] == "peak day"
    assert client.post("/api/v1/sites/nowhere/hold", json={"reason": "x"}).status_code == 404
    assert client.delete("/api/v1/sites/site-d/hold").json()["site"] == "site-d"
    assert client.delete("/api/v1/sites/site-d/hold").status_code == 404

    aborted = client.post(f"/api/v1/rollouts/{rollout['id']}/abort").json()
    assert aborted["aborted"] is True
    ended = world.run_until(rollout["id"], "aborted")
    assert ended.status.stopped_because == "aborted by the release manager"
    assert client.post(f"/api/v1/rollouts/{rollout['id']}/pause").status_code == 409
    entries = world.rollouts.audit()
    whats = [e.what for e in entries]
    # Each names the caller (the token's name, never a name a request gave); a refused command (the 409s) is not
    # in the audit.
    assert {"pause rollout", "hold site site-d", "release site site-d"} <= set(whats)
    assert {e.who for e in entries if e.what in ("pause rollout", "hold site site-d")} == {"rm"}
    assert not any(w.startswith("promote") for w in whats)


def test_an_unknown_rollout_or_a_bad_release_is_refused_in_the_apis_shape(client: httpx.Client) -> None:
    missing = client.get("/api/v1/rollouts/r-nothing")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not-found"
    assert client.post("/api/v1/rollouts/r-nothing/abort").status_code == 404
    bad = client.post("/api/v1/rollouts", json={"release": release("1.0.0").replace("app: scan-upload", "app: x")})
    assert bad.status_code == 422
    assert "line" in bad.json()["error"]["message"]
