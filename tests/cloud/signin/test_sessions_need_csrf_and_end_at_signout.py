"""The console's session cookie: an unsafe request that carries it must carry the session's CSRF token too; signing
out ends the session at once, server-side (the old cookie admits no one); an expired session admits no one; a page
asked for by a browser that is not signed in goes to the sign-in page. The unit under test is
``Sessions.principal``, which ``require_access`` asks for a request without a bearer token, and the routes."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
import pytest
from fastapi import Request

from edgefleet.cloud.access.authorizing import Principal
from edgefleet.cloud.access.sessions import (
    COOKIE,
    CSRF_COOKIE,
    SESSION_TTL_S,
    CsrfRefused,
    SessionUnknown,
)
from edgefleet.cloud.api.deps import require_access
from edgefleet.cloud.api.errors import Unauthorized
from tests.cloud.signin.conftest import World

PASSWORD = "correct horse battery staple"


@dataclass
class Asked:
    """A request as ``principal`` reads it."""

    method: str
    cookies: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


def signed_in(world: World, client: httpx.Client) -> str:
    world.users.add("ops-1", "ops", None, PASSWORD, now=world.clock.now())
    answer = client.post(f"{world.url}/auth/local", json={"name": "ops-1", "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["csrf"])


def test_an_unsafe_request_needs_the_sessions_csrf_token(local: World) -> None:
    assert local.memory.sessions is not None
    sessions = local.memory.sessions
    with httpx.Client(timeout=10) as client:
        csrf = signed_in(local, client)
        cookie = {COOKIE: client.cookies[COOKIE]}
    now = local.clock.now()

    assert sessions.principal(Asked("GET", cookie), now).name == "ops-1"  # type: ignore[union-attr]
    assert sessions.principal(Asked("GET"), now) is None  # no cookie: the caller is no one (bearer tokens decide)
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        with pytest.raises(CsrfRefused, match="must send the X-CSRF-Token header") as refused:
            sessions.principal(Asked(method, cookie), now)
        assert refused.value.status == 403
        with pytest.raises(CsrfRefused, match="does not match"):
            sessions.principal(Asked(method, cookie, {"X-CSRF-Token": csrf[:-1] + "x"}), now)
        assert sessions.principal(Asked(method, cookie, {"X-CSRF-Token": csrf}), now).name == "ops-1"  # type: ignore[union-attr]

    with pytest.raises(SessionUnknown):
        sessions.principal(Asked("GET", {COOKIE: "a-guessed-session"}), now)
    with pytest.raises(SessionUnknown, match="sign in again"):
        sessions.principal(Asked("GET", cookie), now + SESSION_TTL_S)


def test_signing_out_without_the_token_is_refused_and_with_it_ends_the_session_at_once(local: World) -> None:
    with httpx.Client(timeout=10) as client:
        csrf = signed_in(local, client)
        kept = client.cookies[COOKIE]

        refused = client.post(f"{local.url}/auth/signout")
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "forbidden"
        assert client.get(f"{local.url}/api/v1/me").status_code == 200

        out = client.post(f"{local.url}/auth/signout", headers={"X-CSRF-Token": csrf})
        assert out.status_code == 200, out.text
        assert COOKIE not in client.cookies
        assert CSRF_COOKIE not in client.cookies

    # The old cookie, replayed by whoever kept it, admits no one any more.
    with httpx.Client(timeout=10, cookies={COOKIE: kept}) as replay:
        gone = replay.get(f"{local.url}/api/v1/me")
        assert gone.status_code == 401
        assert gone.json()["error"]["code"] == "unauthenticated"


def test_pages_send_a_browser_without_a_session_to_sign_in_and_the_api_answers_401(local: World) -> None:
    # What require_access does once it asks the sessions (the glue with bearer tokens): put in through its seam.
    def sessions_only(request: Request) -> Principal:
        found = request.state.sessions.principal(request, local.clock.now())
        if found is None:
            raise Unauthorized("sign in first")
        return found  # type: ignore[no-any-return]

    local.app.dependency_overrides[require_access] = sessions_only
    with httpx.Client(timeout=10) as client:
        page = client.get(f"{local.url}/alerts?state=firing", headers={"Accept": "text/html"})
        assert page.status_code == 303
        assert page.headers["location"] == "/signin?next=%2Falerts%3Fstate%3Dfiring"
        api = client.get(f"{local.url}/api/v1/sites", headers={"Accept": "text/html,application/json"})
        assert api.status_code == 401
        assert api.json()["error"]["code"] == "unauthenticated"
        assert "/console/signin.js" in client.get(f"{local.url}/signin").text

        csrf = signed_in(local, client)
        assert client.get(f"{local.url}/alerts", headers={"Accept": "text/html"}).status_code == 200
        assert client.get(f"{local.url}/api/v1/sites").status_code == 200
        # An unsafe API call with the cookie but not the token: 403, with the token: through to the route.
        assert client.post(f"{local.url}/api/v1/inventory/reload").status_code == 403
        assert client.post(f"{local.url}/api/v1/inventory/reload", headers={"X-CSRF-Token": csrf}).status_code != 403

        client.cookies.set(COOKIE, "ended-or-never-was")
        ended = client.get(f"{local.url}/versions", headers={"Accept": "text/html"})
        assert ended.status_code == 303
        assert ended.headers["location"].startswith("/signin?next=")


def test_a_sign_in_posted_from_another_site_is_refused(local: World) -> None:
    local.users.add("ops-1", "ops", None, PASSWORD, now=local.clock.now())
    with httpx.Client(timeout=10) as client:
        answer = client.post(
            f"{local.url}/auth/local",
            json={"name": "ops-1", "password": PASSWORD},
            headers={"Origin": "https://evil.example"},
        )
    assert answer.status_code == 403
    assert "evil.example" in answer.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b'{"name": "ops-1"}', "application/json", "send the user's 'name' and 'password'"),
        (b"{not json", "application/json", "not valid JSON"),
        (b"name=x", "text/plain", "JSON or a form"),
    ],
)
def test_a_sign_in_that_cannot_be_read_is_a_clear_4xx(
    local: World, body: bytes, content_type: str, message: str
) -> None:
    with httpx.Client(timeout=10) as client:
        answer = client.post(f"{local.url}/auth/local", content=body, headers={"Content-Type": content_type})
    assert answer.status_code == 422
    assert message in answer.json()["error"]["message"]


def test_without_a_provider_its_sign_in_says_so(local: World) -> None:
    with httpx.Client(timeout=10) as client:
        assert client.get(f"{local.url}/auth/methods").json() == {"oidc": False, "local": True}
        answer = client.get(f"{local.url}/auth/oidc/login")
    assert answer.status_code == 503
    assert "EDGEFLEET_OIDC_ISSUER" in answer.json()["error"]["message"]


def test_the_cookies_are_marked_secure_when_the_setting_says_so(local: World) -> None:
    assert local.memory.sessions is not None
    local.memory.sessions.secure_cookies = True  # EDGEFLEET_COOKIE_SECURE=true: behind a TLS-terminating proxy
    local.users.add("ops-1", "ops", None, PASSWORD, now=local.clock.now())
    with httpx.Client(timeout=10) as client:
        answer = client.post(f"{local.url}/auth/local", json={"name": "ops-1", "password": PASSWORD})
    cookies = {c.split("=", 1)[0]: c for c in answer.headers.get_list("set-cookie")}
    assert "Secure" in cookies[COOKIE]
    assert "HttpOnly" in cookies[COOKIE]
    assert "Secure" in cookies[CSRF_COOKIE]
    assert "HttpOnly" not in cookies[CSRF_COOKIE]  # the console's script reads it
    assert "SameSite=strict" in cookies[CSRF_COOKIE]
