"""``require_access`` over HTTP: a token admits its holder as its role; no token, a garbage one, an expired or a
revoked one get the same 401 (saying how to get a token, hinting at nothing that exists); an address that keeps
guessing gets 429 with Retry-After, even for a good token, until its bucket refills at the controller's clock;
without a bearer the browser's session (``request.state.sessions``, where sign-in runs) may name the caller."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI, Request

from edgefleet.cloud.access.authorizing import Principal
from edgefleet.cloud.access.limiting import BURST, RATE_PER_S
from edgefleet.cloud.api import create_app
from edgefleet.cloud.api.deps import UNAUTHENTICATED
from edgefleet.cloud.api.errors import Unauthorized
from edgefleet.cloud.settings import Settings
from edgefleet.ids import SiteId
from tests.cloud.api.memory import MemoryController
from tests.cloud.api.serving import serving
from tests.support.access import bearer, mint


@pytest.fixture
def memory(tmp_path: Path) -> MemoryController:
    return MemoryController.small(tmp_path / "sites")


@pytest.fixture
def url(memory: MemoryController) -> Iterator[str]:
    # An app of its own: the guess limiter lives in the app's state, and these tests spend its budget.
    with serving(create_app(Settings(), controller=memory)) as served:
        yield served


def unauthenticated(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {"error": {"code": "unauthenticated", "message": UNAUTHENTICATED}}


def test_a_token_admits_its_holder_as_its_role(memory: MemoryController, url: str) -> None:
    viewer = bearer(mint(memory, "viewer", name="zhao.lei"))
    assert httpx.get(f"{url}/api/v1/sites", headers=viewer).status_code == 200
    refused = httpx.post(f"{url}/api/v1/inventory/reload", headers=viewer)
    assert refused.status_code == 403
    assert (
        refused.json()["error"]["message"]
        == "'zhao.lei' (viewer) may not reload-inventory; ask an admin for a role that may"
    )


def test_no_garbage_expired_or_revoked_token_gets_the_same_401(memory: MemoryController, url: str) -> None:
    expiring = mint(memory, "admin", expires_in_s=60.0)
    revoked_name = "left.the.company"
    revoked = mint(memory, "admin", name=revoked_name)
    assert httpx.get(f"{url}/api/v1/sites", headers=bearer(expiring)).status_code == 200
    assert httpx.get(f"{url}/api/v1/sites", headers=bearer(revoked)).status_code == 200

    memory.clock.advance(60.0)
    memory.tokens.revoke(revoked_name, now=memory.clock.now())

    unauthenticated(httpx.get(f"{url}/api/v1/sites"))
    unauthenticated(httpx.get(f"{url}/api/v1/sites", headers=bearer("ef_" + "x" * 43)))
    unauthenticated(httpx.get(f"{url}/api/v1/sites", headers={"Authorization": "Basic YWRtaW46YWRtaW4="}))
    unauthenticated(httpx.get(f"{url}/api/v1/sites", headers={"Authorization": "Bearer"}))
    unauthenticated(httpx.get(f"{url}/api/v1/sites", headers=bearer(expiring)))
    unauthenticated(httpx.get(f"{url}/api/v1/sites", headers=bearer(revoked)))
    # The pages too; the probes and the console's assets need no token.
    unauthenticated(httpx.get(f"{url}/"))
    for open_path in ("/livez", "/readyz", "/healthz", "/console/console.css"):
        assert httpx.get(f"{url}{open_path}").status_code == 200, open_path


def test_an_address_that_keeps_guessing_waits_even_with_a_good_token(memory: MemoryController, url: str) -> None:
    good = bearer(mint(memory, "admin"))
    for _ in range(int(BURST)):
        unauthenticated(httpx.get(f"{url}/api/v1/sites", headers=bearer("ef_guess")))

    for headers in (bearer("ef_guess"), good):
        refused = httpx.get(f"{url}/api/v1/sites", headers=headers)
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "too-many-requests"
        assert int(refused.headers["retry-after"]) == round(1 / RATE_PER_S)
    # No header is no guess: it is answered 401, and spends nothing.
    unauthenticated(httpx.get(f"{url}/api/v1/sites"))

    # The bucket refills by the controller's clock, never the wall's.
    memory.clock.advance(1 / RATE_PER_S)
    assert httpx.get(f"{url}/api/v1/sites", headers=good).status_code == 200


class FakeSessions:
    """What browser sign-in will put in ``request.state.sessions``: a cookie named ``session`` stands for
    site staff of sh-pudong; ``bad`` is a cookie that does not verify."""

    def __init__(self) -> None:
        self.asked_at: list[float] = []

    def principal(self, request: Request, now: float) -> Principal | None:
        self.asked_at.append(now)
        cookie = request.cookies.get("session")
        if cookie is None:
            return None
        if cookie == "bad":
            raise Unauthorized("your session ended; sign in again")
        return Principal(name="li.wei", role="site-staff", sites=frozenset({SiteId("sh-pudong")}))


def test_without_a_bearer_the_browsers_session_names_the_caller(memory: MemoryController) -> None:
    sessions = FakeSessions()
    app: FastAPI = create_app(Settings(), controller=memory)

    @app.middleware("http")
    async def sign_in(request: Request, call_next):  # type: ignore[no-untyped-def]
        request.state.sessions = sessions
        return await call_next(request)

    with serving(app) as url:
        signed_in = httpx.get(f"{url}/api/v1/sites", cookies={"session": "li"})
        assert [s["id"] for s in signed_in.json()] == ["sh-pudong"]
        assert httpx.get(f"{url}/metrics", cookies={"session": "li"}).status_code == 403
        ended = httpx.get(f"{url}/api/v1/sites", cookies={"session": "bad"})
        assert (ended.status_code, ended.json()["error"]["message"]) == (401, "your session ended; sign in again")
        unauthenticated(httpx.get(f"{url}/api/v1/sites"))
        # A bearer wins over a cookie: the session is not asked.
        asked = len(sessions.asked_at)
        admin = bearer(mint(memory, "admin"))
        assert len(httpx.get(f"{url}/api/v1/sites", headers=admin, cookies={"session": "li"}).json()) == 3
    assert len(sessions.asked_at) == asked
    assert set(sessions.asked_at) == {memory.clock.now()}  # asked at the controller's clock


def test_while_the_database_refuses_a_known_token_admits_and_an_unread_one_is_told_to_wait(
    memory: MemoryController, url: str
) -> None:
    known = bearer(mint(memory, "viewer", name="used.before"))
    unread = bearer(mint(memory, "viewer", name="first.use.now"))
    assert httpx.get(f"{url}/api/v1/sites", headers=known).status_code == 200
    with memory.tokens.store.transaction("drop the token table") as connection:  # the database refuses reads
        connection.execute(sa.text("DROP TABLE api_token"))

    assert httpx.get(f"{url}/api/v1/sites", headers=known).status_code == 200
    waiting = httpx.get(f"{url}/api/v1/sites", headers=unread)
    assert waiting.status_code == 503, waiting.text  # not a 500 with a traceback, not a 401: nothing is known
    assert "database does not answer" in waiting.json()["error"]["message"]
