"""One access check (``deps.require_access``) guards every route but the probes, and routes pass the action they
take and the site they touch to ``deps.authorize``. These tests put callers in through that one seam;
tests/cloud/access/test_the_route_matrix.py calls every route with real tokens of every role."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from edgefleet.cloud.access.authorizing import Principal
from edgefleet.cloud.api import create_app
from edgefleet.cloud.api.deps import require_access
from edgefleet.cloud.api.errors import Forbidden
from edgefleet.cloud.settings import Settings
from edgefleet.ids import SiteId
from tests.cloud.api.memory import MemoryController
from tests.cloud.api.serving import serving

OPEN_ROUTES = [("post", "/api/v1/enroll")]
ADMIN = Principal(name="admin", role="admin")
PUDONG_STAFF = Principal(name="pudong-staff", role="site-staff", sites=frozenset({SiteId("sh-pudong")}))


@pytest.mark.parametrize(
    ("principal", "site", "allowed"),
    [
        (ADMIN, SiteId("sh-pudong"), True),
        (ADMIN, None, True),
        (PUDONG_STAFF, SiteId("sh-pudong"), True),
        (PUDONG_STAFF, SiteId("bj-daxing"), False),
        (PUDONG_STAFF, None, False),
    ],
)
def test_who_may_see_what(principal: Principal, site: SiteId | None, allowed: bool) -> None:
    assert principal.may_see(site) is allowed


def test_every_route_is_refused_when_the_check_refuses(memory: MemoryController) -> None:
    def refuse_everyone() -> Principal:
        raise Forbidden("nobody may read today")

    app = create_app(Settings(), controller=memory)
    app.dependency_overrides[require_access] = refuse_everyone
    with serving(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        paths = client.get("/openapi.json").json()["paths"]
        ids = {
            "site": "sh-pudong",
            "box": "sh-pudong-gpu-01",
            "alert": "an-alert",
            "silence": "a-silence",
            "cluster": "test-edge",
            "rollout_id": "r-20261201-abcdef",
            "restart_id": "0123456789ab",
        }
        answers = {
            (method, path): client.request(method, path.format(**ids)).status_code
            for path, methods in paths.items()
            for method in methods
        }

        # The console's pages are not in the OpenAPI (they are HTML, not API); they are refused all the same.
        pages = {
            path: client.get(path).status_code
            for path in [
                "/",
                "/sites/sh-pudong",
                "/boxes/sh-pudong-gpu-01",
                "/versions",
                "/alerts",
                "/rollouts",
                "/rollouts/new",
                "/rollouts/r-20261201-abcdef",
                "/clusters",
                "/clusters/test-edge",
            ]
        }

    # The one route open to callers without an API token: a box being installed has none, and presents its
    # enrollment token instead (routes/enrollment.py); without one it gets nothing.
    open_answers = {route: answers.pop(route) for route in OPEN_ROUTES}
    assert open_answers == {("post", "/api/v1/enroll"): 503}  # this controller runs no enrollment
    # The probes answer without a token (Kubernetes' and load balancers' probes carry none; docs/security.md).
    probes = {("get", "/livez"), ("get", "/readyz"), ("get", "/healthz")}
    assert {key: answers.pop(key) for key in probes} == dict.fromkeys(probes, 200)
    assert len(answers) == 42
    assert answers == dict.fromkeys(answers, 403)
    assert pages == dict.fromkeys(pages, 403)


@pytest.fixture
def staff_client(memory: MemoryController) -> Iterator[httpx.Client]:
    app = create_app(Settings(), controller=memory)
    app.dependency_overrides[require_access] = lambda: PUDONG_STAFF
    with serving(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        yield client


def test_a_site_scoped_caller_sees_only_their_site(staff_client: httpx.Client) -> None:
    assert [s["id"] for s in staff_client.get("/api/v1/sites").json()] == ["sh-pudong"]
    assert staff_client.get("/api/v1/sites/sh-pudong/boxes").status_code == 200
    assert staff_client.get("/api/v1/boxes/sh-pudong-gpu-01").status_code == 200
    assert staff_client.get("/api/v1/sites/sh-pudong/history").status_code == 200
    for path in [
        "/api/v1/sites/bj-daxing",
        "/api/v1/sites/bj-daxing/boxes",
        "/api/v1/boxes/bj-daxing-gpu-01",
        "/api/v1/sites/bj-daxing/history",
    ]:
        # Another site's object is answered as if it did not exist, naming no other site.
        response = staff_client.get(path)
        assert response.status_code == 404, path
        assert response.json() == {
            "error": {
                "code": "not-found",
                "message": "not found among the sites you may see; GET /api/v1/sites lists them",
            }
        }
    overview = staff_client.get("/api/v1/overview").json()
    assert [site["id"] for region in overview["regions"] for site in region["sites"]] == ["sh-pudong"]
    assert {cell[0] for cell in overview["cells"].values()} == {"sh-pudong"}
    assert overview["counters"]["active_rollouts"] is None  # rollouts span the fleet: fleet-wide data
    versions = staff_client.get("/api/v1/versions").json()
    assert [site["id"] for site in versions["sites"]] == ["sh-pudong"]
    for path in ["/metrics", "/api/v1/unknown-boxes"]:
        response = staff_client.get(path)
        assert response.status_code == 403, path
        assert "fleet-wide data is not theirs" in response.json()["error"]["message"]
