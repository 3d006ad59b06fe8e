"""Who may do what, route by route: every route the app serves x every role (and no token), on two sites, answers
as the decision table says. The routes come from the app itself (``every_route``), and ``ROUTES`` below must name
each with the action it takes and its scope: a new route fails here until someone says who may call it, and a
route that skips the access check is caught twice (its dependencies lack ``require_access``; it answers without
a token). Both guards are shown refusing a planted route that skips the check.

The expected answer is worked out here from ``GRANTS`` and the route's scope, not by asking ``authorize``:
no token: 401; a site-scoped caller on another site's object: 404 (as if absent); on fleet-wide data: 403; a
role without the action: 403; else the access check lets it through (what the route then answers, 200, 404 for a
rollout that does not exist, 503 without a cluster gateway, is the route's business and not checked here).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any, Final, Literal

import httpx
import pytest
from fastapi import Depends, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import Mount, Route

from edgefleet.cloud.access.authorizing import GRANTS, ROLES, Action, Role
from edgefleet.cloud.alerting.alerts import AlertKey, AlertKind, Severity, StoredAlert, alert_id
from edgefleet.cloud.api.deps import require_access
from edgefleet.cloud.controller import Controller
from edgefleet.ids import BoxId, SiteId
from tests.cloud.api.controlled import served_controller
from tests.support.access import bearer, mint

SITE_A: Final = "sh-pudong"
SITE_B: Final = "bj-daxing"
HIDDEN: Final = "not found among the sites you may see; GET /api/v1/sites lists them"

# site: the route touches one site's object (checked on A's and on B's); fleet: something fleet-wide; list: a
# list or summary every reader gets, filtered to what they may see (checked by the scoping test below).
Scope = Literal["site", "fleet", "list"]


@dataclasses.dataclass(frozen=True)
class Guard:
    action: Action
    scope: Scope
    body: dict[str, Any] | None = None


# Routes anyone may call, without a token, and why (docs/security.md says the same).
OPEN: Final = {
    ("GET", "/livez"): "Kubernetes' liveness probe carries no token",
    ("GET", "/readyz"): "Kubernetes' readiness probe carries no token",
    ("GET", "/healthz"): "load balancers' probes carry no token; aggregate counts only",
    ("GET", "/openapi.json"): "the API's description, no fleet data",
    ("GET", "/docs"): "the API's description, no fleet data",
    ("GET", "/docs/oauth2-redirect"): "the API's description, no fleet data",
    ("GET", "/redoc"): "the API's description, no fleet data",
    ("GET", "/console"): "the console's scripts and styles, no fleet data",
    # Signing in makes the session: nobody is signed in yet (routes/signin.py).
    ("GET", "/signin"): "the sign-in page",
    ("GET", "/auth/methods"): "which ways to sign in there are",
    ("GET", "/auth/oidc/login"): "off to the company's provider",
    ("GET", "/auth/oidc/callback"): "back from the provider, with its code",
    ("POST", "/auth/local"): "a local user's name and password",
    ("POST", "/auth/signout"): "ends the browser's own session, if it has one",
    ("POST", "/api/v1/enroll"): "a box being installed presents its single-use enrollment token instead",
}

RELEASE_TEXT: Final = "kind: Release\n"  # passes the body's type; the release itself is judged after the check

# Every guarded route: its action and scope (and a body it validates before the check can run).
ROUTES: Final[dict[tuple[str, str], Guard]] = {
    ("GET", "/api/v1/sites"): Guard("read", "list"),
    ("GET", "/api/v1/sites/{site}"): Guard("read", "site"),
    ("GET", "/api/v1/sites/{site}/boxes"): Guard("read", "site"),
    ("GET", "/api/v1/sites/{site}/history"): Guard("read", "site"),
    ("GET", "/api/v1/boxes/{box}"): Guard("read", "site"),
    ("GET", "/metrics"): Guard("read", "fleet"),
    ("GET", "/api/v1/unknown-boxes"): Guard("read", "fleet"),
    ("GET", "/api/v1/alerts"): Guard("read", "list"),
    ("GET", "/api/v1/alerts/counts"): Guard("read", "list"),
    ("GET", "/api/v1/alerts/{alert}"): Guard("read", "site"),
    ("POST", "/api/v1/alerts/{alert}/ack"): Guard("acknowledge", "site"),
    ("GET", "/api/v1/silences"): Guard("read", "list"),
    ("POST", "/api/v1/silences"): Guard("silence", "site", {"duration": "2h", "comment": "matrix"}),
    ("DELETE", "/api/v1/silences/{silence}"): Guard("silence", "site"),
    ("GET", "/api/v1/inventory"): Guard("read", "fleet"),
    ("POST", "/api/v1/inventory/reload"): Guard("reload-inventory", "fleet"),
    ("GET", "/api/v1/clusters"): Guard("read", "fleet"),
    ("GET", "/api/v1/clusters/{cluster}"): Guard("read", "fleet"),
    ("GET", "/api/v1/clusters/{cluster}/audit"): Guard("read", "fleet"),
    ("GET", "/api/v1/clusters/{cluster}/gpus"): Guard("read", "fleet"),
    ("GET", "/api/v1/clusters/{cluster}/policy"): Guard("read", "fleet"),
    ("POST", "/api/v1/clusters/{cluster}/restart"): Guard("restart-cluster", "fleet", {"dry_run": True}),
    ("GET", "/api/v1/clusters/{cluster}/restarts/{restart_id}"): Guard("read", "fleet"),
    ("POST", "/api/v1/rollouts/plan"): Guard("plan-rollout", "fleet", {"release": RELEASE_TEXT}),
    ("POST", "/api/v1/rollouts"): Guard("start-rollout", "fleet", {"release": RELEASE_TEXT}),
    ("GET", "/api/v1/rollouts"): Guard("read", "fleet"),
    ("GET", "/api/v1/rollouts/{rollout_id}"): Guard("read", "fleet"),
    ("POST", "/api/v1/rollouts/{rollout_id}/pause"): Guard("command-rollout", "fleet"),
    ("POST", "/api/v1/rollouts/{rollout_id}/resume"): Guard("command-rollout", "fleet"),
    ("POST", "/api/v1/rollouts/{rollout_id}/promote"): Guard("command-rollout", "fleet"),
    ("POST", "/api/v1/rollouts/{rollout_id}/abort"): Guard("command-rollout", "fleet"),
    ("POST", "/api/v1/rollouts/{rollout_id}/rollback"): Guard("command-rollout", "fleet"),
    ("POST", "/api/v1/rollouts/{rollout_id}/override-blackout"): Guard("start-rollout", "fleet", {"reason": "m"}),
    ("GET", "/api/v1/sites/{site}/hold"): Guard("read", "site"),
    ("POST", "/api/v1/sites/{site}/hold"): Guard("hold-site", "site", {"reason": "matrix"}),
    ("DELETE", "/api/v1/sites/{site}/hold"): Guard("hold-site", "site"),
    ("GET", "/api/v1/overview"): Guard("read", "list"),
    ("GET", "/api/v1/versions"): Guard("read", "list"),
    ("GET", "/api/v1/events"): Guard("read", "list"),
    ("GET", "/api/v1/audit"): Guard("read-audit", "list"),
    ("GET", "/api/v1/me"): Guard("read", "list"),
    ("POST", "/api/v1/sites/{site}/enrollment-tokens"): Guard("enroll-box", "site", {"expires_in": "1h"}),
    # The console's pages: HTML with no fleet data in it (their data comes through the routes above), but only
    # for those who signed in.
    ("GET", "/"): Guard("read", "list"),
    ("GET", "/sites/{site}"): Guard("read", "list"),
    ("GET", "/boxes/{box}"): Guard("read", "list"),
    ("GET", "/versions"): Guard("read", "list"),
    ("GET", "/alerts"): Guard("read", "list"),
    ("GET", "/rollouts"): Guard("read", "list"),
    ("GET", "/rollouts/{rollout}"): Guard("read", "list"),
    ("GET", "/clusters"): Guard("read", "list"),
    ("GET", "/clusters/{cluster}"): Guard("read", "list"),
}

# Who calls: a role (site staff: of site A), or nobody.
CALLERS: Final[list[Role | None]] = [*ROLES, None]


@dataclasses.dataclass(frozen=True)
class Served:
    """A route the app serves: its method and path, and its dependencies (None: not a FastAPI route)."""

    method: str
    path: str
    dependant: Dependant | None


def every_route(app: FastAPI) -> list[Served]:
    """Every (method, path) the app answers, found in the app (included routers too), HEAD left out."""
    found: list[Served] = []
    for route in app.routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is not None:  # an included router (FastAPI >= 0.16x)
            found += [Served(m, c.path, c.dependant) for c in contexts() for m in sorted(c.methods) if m != "HEAD"]
        elif isinstance(route, APIRoute):
            found += [Served(m, route.path, route.dependant) for m in sorted(route.methods) if m != "HEAD"]
        elif isinstance(route, Mount):
            found.append(Served("GET", route.path, None))
        elif isinstance(route, Route):
            found += [Served(m, route.path, None) for m in sorted(route.methods or ()) if m != "HEAD"]
        else:
            raise AssertionError(f"a route of a kind this test does not know: {route!r}; teach every_route")
    return found


def checks_access(dependant: Dependant | None) -> bool:
    if dependant is None:
        return False
    return dependant.call is require_access or any(checks_access(d) for d in dependant.dependencies)


def unguarded(app: FastAPI) -> list[str]:
    """Routes that are neither open on purpose nor declared in ROUTES, and guarded routes that skip the check."""
    problems = []
    for route in every_route(app):
        key = (route.method, route.path)
        if key in OPEN:
            continue
        if key not in ROUTES:
            problems.append(f"{route.method} {route.path} is in neither ROUTES nor OPEN: say who may call it")
        elif not checks_access(route.dependant):
            problems.append(f"{route.method} {route.path} does not depend on require_access")
    return problems


def expected(role: Role | None, guard: Guard, site: str | None) -> Literal[401, 403, 404, "through"]:
    """What the access check answers, worked out from GRANTS: ``through`` when it lets the call in."""
    if role is None:
        return 401
    scoped = role == "site-staff"  # of SITE_A
    if guard.scope == "list":
        return "through" if guard.action in GRANTS[role] else 403
    if scoped and guard.scope == "fleet":
        return 403
    if scoped and site != SITE_A:
        return 404
    return "through" if guard.action in GRANTS[role] else 403


# --- the world: a real controller on SQLite, with an alert and a silence at each of two sites -----------------


def _alert(site: str, box: str, at: float) -> StoredAlert:
    key = AlertKey(AlertKind.BOX_LOST, SiteId(site), BoxId(box))
    return StoredAlert(
        id=alert_id(key, at),
        key=key,
        severity=Severity.CRITICAL,
        summary=f"box-lost {box}",
        description="what to do",
        labels={},
        details={},
        started_at=at - 30,
        fired_at=at,
        updated_at=at,
    )


@dataclasses.dataclass
class World:
    controller: Controller
    url: str
    tokens: dict[Role | None, str | None]
    ids: dict[str, dict[str, str]]  # by site: what fills each path parameter

    def call(self, role: Role | None, method: str, path: str, **kwargs: Any) -> httpx.Response:
        token = self.tokens[role]
        headers = bearer(token) if token else {}
        return httpx.request(method, self.url + path, headers=headers, timeout=10, **kwargs)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    directory = tmp_path_factory.mktemp("matrix")
    with served_controller(directory, f"sqlite:///{directory / 'edgefleet.db'}") as (controller, url):
        now = controller.clock.now()
        ids: dict[str, dict[str, str]] = {}
        for site, box in ((SITE_A, "sh-pudong-gpu-01"), (SITE_B, "bj-daxing-gpu-01")):
            alert = _alert(site, box, now - 60)
            controller.alert_loop.alerts.save([alert])
            silence = controller.alerting.add_silence(
                created_by="setup", comment="planned", site=SiteId(site), duration_s=3600.0
            )
            ids[site] = {
                "site": site,
                "box": box,
                "alert": alert.id,
                "silence": silence.silence.id,
                "cluster": "test-edge",
                "rollout_id": "r-20261201-abcdef",
                "restart_id": "0123456789ab",
                "rollout": "r-20261201-abcdef",
            }
        tokens: dict[Role | None, str | None] = {
            role: mint(controller, role, sites=[SITE_A] if role == "site-staff" else None) for role in ROLES
        }
        tokens[None] = None
        yield World(controller, url, tokens, ids)


# --- the matrix -----------------------------------------------------------------------------------------------


def test_every_route_is_declared_and_goes_through_the_check(world: World) -> None:
    from edgefleet.cloud.api import create_app
    from edgefleet.cloud.settings import Settings

    app = create_app(Settings())
    assert unguarded(app) == []
    served = {(r.method, r.path) for r in every_route(app)}
    assert set(ROUTES) <= served, f"ROUTES names routes the app does not serve: {set(ROUTES) - served}"
    assert set(OPEN) <= served


def test_a_route_that_skips_the_check_is_refused_by_both_guards(world: World) -> None:
    from edgefleet.cloud.api import create_app
    from edgefleet.cloud.settings import Settings
    from tests.cloud.api.serving import serving

    app = create_app(Settings(), controller=world.controller)

    def leak() -> dict[str, str]:
        return {"secret": "every site's data"}

    def guarded() -> dict[str, str]:
        return {"fine": "yes"}

    app.add_api_route("/api/v1/leak", leak, methods=["GET"])
    app.add_api_route("/api/v1/guarded", guarded, methods=["GET"], dependencies=[Depends(require_access)])

    assert unguarded(app) == [
        "GET /api/v1/leak is in neither ROUTES nor OPEN: say who may call it",
        "GET /api/v1/guarded is in neither ROUTES nor OPEN: say who may call it",
    ]
    # Declared, but still skipping the check: the dependency walk sees it.
    ROUTES[("GET", "/api/v1/leak")] = Guard("read", "fleet")
    try:
        assert unguarded(app) == [
            "GET /api/v1/leak does not depend on require_access",
            "GET /api/v1/guarded is in neither ROUTES nor OPEN: say who may call it",
        ]
    finally:
        del ROUTES[("GET", "/api/v1/leak")]
    # And the matrix's first row: without a token it answers, where a guarded route answers 401.
    with serving(app) as url:
        assert httpx.get(f"{url}/api/v1/leak", timeout=10).status_code == 200
        assert httpx.get(f"{url}/api/v1/guarded", timeout=10).status_code == 401


def _cases() -> list[tuple[str, str, Role | None, str | None]]:
    cases = []
    for (method, path), guard in ROUTES.items():
        for role in CALLERS:
            sites: list[str | None] = [SITE_A, SITE_B] if guard.scope == "site" else [None]
            cases += [(method, path, role, site) for site in sites]
    return cases


@pytest.mark.parametrize(("method", "path", "role", "site"), _cases())
def test_the_matrix(world: World, method: str, path: str, role: Role | None, site: str | None) -> None:
    guard = ROUTES[(method, path)]
    ids = world.ids[site or SITE_A]
    body = None if guard.body is None else dict(guard.body)
    if method == "POST" and path == "/api/v1/silences":
        body = {**(body or {}), "site": ids["site"]}
    target = path.format(**ids)
    want = expected(role, guard, site)

    if path == "/api/v1/events":
        with httpx.stream(
            "GET", world.url + target, headers=bearer(world.tokens[role] or "") if role else {}, timeout=10
        ) as response:
            status, text = response.status_code, "" if response.status_code == 200 else response.read().decode()
    else:
        response = world.call(role, method, target, json=body)
        status, text = response.status_code, response.text

    where = f"{method} {target} as {role or 'nobody'}: {status} {text[:300]}"
    if want == "through":
        assert status not in (401, 403, 429, 500), where
        assert not (status == 404 and HIDDEN in text), where
    else:
        assert status == want, where
        if want == 404:
            assert json.loads(text) == {"error": {"code": "not-found", "message": HIDDEN}}, where
        if want == 401:
            assert "edgefleet tokens create" in text, where


# --- site scoping: what site staff of A see of B ----------------------------------------------------------------


def test_site_staff_see_nothing_of_another_site(world: World) -> None:
    def get(path: str, **params: str) -> Any:
        response = world.call("site-staff", "GET", path, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    assert [s["id"] for s in get("/api/v1/sites")] == [SITE_A]
    assert {a["site"] for a in get("/api/v1/alerts", all="true")} == {SITE_A}
    assert {a["site"] for a in world.call("admin", "GET", "/api/v1/alerts", params={"all": "true"}).json()} == {
        SITE_A,
        SITE_B,
    }
    # Counts count only what the caller may see: one alert at A, none of B's.
    assert sum(c["count"] for c in get("/api/v1/alerts/counts")) == 1
    # Asking for B by name is answered as if B did not exist.
    refused = world.call("site-staff", "GET", "/api/v1/alerts/counts", params={"site": SITE_B})
    assert (refused.status_code, refused.json()["error"]["message"]) == (404, HIDDEN)
    assert {s["site"] for s in get("/api/v1/silences", all="true")} == {SITE_A}
    overview = get("/api/v1/overview")
    assert [s["id"] for region in overview["regions"] for s in region["sites"]] == [SITE_A]
    assert {cell[0] for cell in overview["cells"].values()} == {SITE_A}
    assert [s["id"] for s in get("/api/v1/versions")["sites"]] == [SITE_A]
    # Metrics are the whole fleet's: not for site staff (403), whatever they would filter.
    assert world.call("site-staff", "GET", "/metrics").status_code == 403
    assert SITE_B in world.call("viewer", "GET", "/metrics").text

    # The console's stream: its first event, the snapshot, holds site A alone.
    staff = bearer(world.tokens["site-staff"] or "")
    with httpx.stream("GET", world.url + "/api/v1/events", headers=staff, timeout=10) as response:
        data = next(line for line in response.iter_lines() if line.startswith("data: "))
    snapshot = json.loads(data.removeprefix("data: "))
    assert {cell[0] for cell in snapshot["cells"].values()} == {SITE_A}
    assert SITE_B not in data
