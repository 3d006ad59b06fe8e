"""Sign-in through a real OpenID Connect provider (node oidc-provider, no mock): the authorization code flow with
PKCE, the role and sites from the provider's groups claim through the mapping file, and every way it is refused."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx

from edgefleet.cloud.access.sessions import COOKIE
from tests.cloud.signin.conftest import World
from tests.support.oidc_provider import log_in


def browser() -> httpx.Client:
    return httpx.Client(timeout=10, follow_redirects=False)


def start(world: World, client: httpx.Client, next_path: str = "/alerts") -> str:
    """Ask the controller to sign in; returns the provider's authorization URL it sent the browser to."""
    response = client.get(f"{world.url}/auth/oidc/login", params={"next": next_path})
    assert response.status_code == 303, response.text
    return response.headers["location"]


def test_the_whole_flow_gives_the_role_of_the_first_mapped_group(world: World) -> None:
    with browser() as client:
        authorization = start(world, client)
        asked = parse_qs(urlsplit(authorization).query)
        assert authorization.startswith(world.provider.issuer)
        assert asked["code_challenge_method"] == ["S256"]
        assert asked["response_type"] == ["code"]
        assert asked["state"]
        assert asked["nonce"]
        assert asked["code_challenge"]

        callback = log_in(client, authorization, world.redirect_uri, "alice", "alice-password")
        back = client.get(callback)
        assert back.status_code == 303, back.text
        assert back.headers["location"] == "/alerts"
        cookie = next(c for c in back.headers.get_list("set-cookie") if c.startswith(f"{COOKIE}="))
        assert "HttpOnly" in cookie
        assert "SameSite=lax" in cookie
        assert "Secure" not in cookie

        me = client.get(f"{world.url}/api/v1/me")
        assert me.status_code == 200, me.text
        assert me.json() | {"csrf": None, "expires_at": None} == {
            "name": "alice",
            "role": "admin",
            "sites": None,
            "via": "oidc",
            "csrf": None,
            "expires_at": None,
        }
        assert me.json()["csrf"]


def test_site_staff_groups_add_up_their_sites(world: World) -> None:
    with browser() as client:
        callback = log_in(client, start(world, client), world.redirect_uri, "pudong", "pudong-password")
        assert client.get(callback).status_code == 303
        me = client.get(f"{world.url}/api/v1/me").json()
    assert (me["role"], me["sites"]) == ("site-staff", ["bj-daxing", "sh-pudong"])


def test_a_person_in_no_mapped_group_is_refused_and_no_session_is_made(world: World) -> None:
    with browser() as client:
        callback = log_in(client, start(world, client), world.redirect_uri, "mallory", "mallory-password")
        refused = client.get(callback)
        assert refused.status_code == 403
        message = refused.json()["error"]["message"]
        assert "mallory" in message
        assert "contractors" in message
        assert "mapping file" in message
        assert COOKIE not in client.cookies


def test_a_state_that_the_controller_did_not_give_is_refused(world: World) -> None:
    with browser() as client:
        callback = log_in(client, start(world, client), world.redirect_uri, "alice", "alice-password")
        parts = urlsplit(callback)
        code = parse_qs(parts.query)["code"][0]
        forged = client.get(f"{world.redirect_uri}", params={"code": code, "state": "not-the-state"})
        assert forged.status_code == 400
        assert "start again at /signin" in forged.json()["error"]["message"]
        assert COOKIE not in client.cookies


def test_a_callback_from_another_browser_is_refused(world: World) -> None:
    # The attacker starts a sign-in and hands the victim the callback link: the victim's browser never started it.
    with browser() as attacker, browser() as victim:
        callback = log_in(attacker, start(world, attacker), world.redirect_uri, "alice", "alice-password")
        answer = victim.get(callback)
        assert answer.status_code == 400
        assert "another browser" in answer.json()["error"]["message"]


def test_a_replayed_callback_and_a_replayed_code_are_refused(world: World) -> None:
    with browser() as client:
        callback = log_in(client, start(world, client), world.redirect_uri, "alice", "alice-password")
        assert client.get(callback).status_code == 303

        # The same callback again: its state was used up.
        again = client.get(callback)
        assert again.status_code == 400
        assert "finished already" in again.json()["error"]["message"]

        # The used code under a fresh, valid state: the provider itself refuses a code used before.
        used_code = parse_qs(urlsplit(callback).query)["code"][0]
        fresh_state = parse_qs(urlsplit(start(world, client)).query)["state"][0]
        replayed = client.get(world.redirect_uri, params={"code": used_code, "state": fresh_state})
        assert replayed.status_code == 401
        assert "refused the code" in replayed.json()["error"]["message"]


def test_the_provider_saying_no_is_a_clear_refusal(world: World) -> None:
    with browser() as client:
        state = parse_qs(urlsplit(start(world, client)).query)["state"][0]
        answer = client.get(
            world.redirect_uri,
            params={"error": "access_denied", "error_description": "the user said no", "state": state},
        )
    assert answer.status_code == 401
    assert answer.json()["error"] == {
        "code": "unauthenticated",
        "message": "the sign-in provider refused: the user said no; start again at /signin",
    }


def test_only_a_path_of_this_controller_is_gone_back_to(world: World) -> None:
    with browser() as client:
        callback = log_in(
            client,
            start(world, client, next_path="https://evil.example/"),
            world.redirect_uri,
            "alice",
            "alice-password",
        )
        assert client.get(callback).headers["location"] == "/"
