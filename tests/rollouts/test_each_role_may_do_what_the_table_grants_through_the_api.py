"""The rollout and hold routes name the right action to the decision table: each role, put in through the one
access check, is refused (403) exactly where the table (``tests/cloud/access/test_the_decision_table.py``) says
it may not, and site staff find another site as good as absent (404)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest

from edgefleet.cloud.access.authorizing import ROLES, Action, Principal
from edgefleet.cloud.api.deps import require_access
from tests.cloud.access.test_the_decision_table import TABLE
from tests.cloud.api.serving import serving
from tests.rollouts.world import SITES, World, release, small_world

pytestmark = pytest.mark.slow

OWN, OTHER = SITES[0], SITES[1]
UNKNOWN_ROLLOUT = "r-20261201-abcdef"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with small_world(tmp_path) as built:
        built.beat()
        yield built


def serving_as(world: World, principal: Principal) -> AbstractContextManager[str]:
    """The API over the world's rollouts, with every caller taken for ``principal`` (the one access check)."""
    app = world.app()
    app.dependency_overrides[require_access] = lambda: principal
    return serving(app)


def test_each_role_is_refused_exactly_where_the_table_says(world: World) -> None:
    for role in ROLES:
        principal = Principal(name=f"a-{role}", role=role, sites=frozenset({OWN}) if role == "site-staff" else None)
        with serving_as(world, principal) as url, httpx.Client(base_url=url, timeout=10) as client:
            # Fleet-wide actions: allowed ones get past the check (the unknown rollout is then 404).
            fleet: list[tuple[Action, httpx.Response]] = [
                ("read", client.get("/api/v1/rollouts")),
                ("plan-rollout", client.post("/api/v1/rollouts/plan", json={"release": release("1.0.0")})),
                ("command-rollout", client.post(f"/api/v1/rollouts/{UNKNOWN_ROLLOUT}/pause")),
                ("command-rollout", client.post(f"/api/v1/rollouts/{UNKNOWN_ROLLOUT}/abort")),
                (
                    "start-rollout",
                    client.post(f"/api/v1/rollouts/{UNKNOWN_ROLLOUT}/override-blackout", json={"reason": "INC-1"}),
                ),
            ]
            for action, response in fleet:
                refused = role == "site-staff" or not TABLE[action][role]
                assert (response.status_code == 403) is refused, (role, action, response.text)
                if not refused:
                    assert response.status_code in (200, 404), (role, action, response.text)

            held = client.post(f"/api/v1/sites/{OWN}/hold", json={"reason": "maintenance"})
            assert (held.status_code == 403) is not TABLE["hold-site"][role], (role, held.text)
            if TABLE["hold-site"][role]:
                assert held.status_code == 200, held.text
                assert client.delete(f"/api/v1/sites/{OWN}/hold").status_code == 200
            other = client.post(f"/api/v1/sites/{OTHER}/hold", json={"reason": "maintenance"})
            if role == "site-staff":
                assert other.status_code == 404, other.text
                assert OTHER not in other.text
            else:
                assert (other.status_code == 403) is not TABLE["hold-site"][role], (role, other.text)
                if other.status_code == 200:
                    client.delete(f"/api/v1/sites/{OTHER}/hold")
