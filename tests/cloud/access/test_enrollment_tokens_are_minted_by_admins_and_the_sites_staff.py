"""``POST /api/v1/sites/{site}/enrollment-tokens`` goes through ``authorize`` with action ``enroll-box``: an admin
and the site's own staff get a token (shown once, stored hashed), another site's staff get 404 as if the site did
not exist, the fleet-wide roles without the grant get 403, and an unknown site is 404."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from edgefleet.clock import FakeClock
from edgefleet.cloud.access.authorizing import Principal
from edgefleet.cloud.access.tokens import digest
from edgefleet.cloud.api import create_app
from edgefleet.cloud.api.deps import require_access
from edgefleet.cloud.controller import Controller
from edgefleet.cloud.settings import Settings
from edgefleet.ids import SiteId
from tests.cloud.api.memory import write_inventory
from tests.cloud.api.serving import serving

PUDONG = SiteId("sh-pudong")
CALLERS = {
    "admin": Principal("root", "admin"),
    "pudong-staff": Principal("pudong-staff", "site-staff", frozenset({PUDONG})),
    "daxing-staff": Principal("daxing-staff", "site-staff", frozenset({SiteId("bj-daxing")})),
    "ops": Principal("ops", "ops"),
    "release-manager": Principal("rm", "release-manager"),
    "viewer": Principal("viewer", "viewer"),
}


@pytest.fixture
def controller(tmp_path: Path) -> Iterator[Controller]:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'edgefleet.db'}", sites_dir=write_inventory(tmp_path / "s")
    )
    built = Controller(settings, clock=FakeClock(start=1_800_000_000.0))
    try:
        yield built
    finally:
        built.stop()


def _as(controller: Controller, principal: Principal, path: str) -> httpx.Response:
    app = create_app(controller.settings, controller=controller, enrollment=controller.enrollment)
    app.dependency_overrides[require_access] = lambda: principal
    with serving(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        return client.post(path, json={"expires_in": "30m"})


@pytest.mark.parametrize(
    ("caller", "status"),
    [
        ("admin", 201),
        ("pudong-staff", 201),
        ("daxing-staff", 404),
        ("ops", 403),
        ("release-manager", 403),
        ("viewer", 403),
    ],
)
def test_who_may_mint_a_sites_enrollment_token(controller: Controller, caller: str, status: int) -> None:
    answer = _as(controller, CALLERS[caller], "/api/v1/sites/sh-pudong/enrollment-tokens")

    assert answer.status_code == status, answer.text
    assert controller.enrollment is not None
    made = controller.enrollment.tokens.tokens()
    if status != 201:
        assert made == []
        assert "bj-daxing" not in answer.text
        return
    body = answer.json()
    assert body["site"] == "sh-pudong"
    assert [(t.site, t.created_by, t.expires_at) for t in made] == [
        ("sh-pudong", CALLERS[caller].name, 1_800_001_800.0)
    ]
    # Stored as its hash only: the id is the digest's start, and the secret is in no column.
    assert made[0].id == digest(body["token"])[:12]
    with controller.store.transaction("read the raw rows") as connection:
        rows = connection.execute(sa.text("SELECT * FROM enrollment_token")).all()
    assert body["token"] not in repr(rows)
    assert digest(body["token"]) in repr(rows)


def test_an_unknown_site_has_no_enrollment_tokens(controller: Controller) -> None:
    answer = _as(controller, CALLERS["admin"], "/api/v1/sites/nowhere/enrollment-tokens")

    assert answer.status_code == 404
    assert controller.enrollment is not None
    assert controller.enrollment.tokens.tokens() == []
