"""Local users: argon2 hashes in the database (never the password), one answer for an unknown name and a wrong
password, failed sign-ins limited per source (429 with Retry-After), and a removed user or changed password ends
their sessions at once."""

from __future__ import annotations

import httpx
import pytest
import sqlalchemy as sa

from edgefleet.cloud.access.local_users import LocalUserError
from edgefleet.cloud.access.sessions import COOKIE, CSRF_COOKIE
from edgefleet.ids import SiteId
from tests.cloud.signin.conftest import World

PASSWORD = "correct horse battery staple"


def sign_in(world: World, client: httpx.Client, name: str, password: str) -> httpx.Response:
    return client.post(f"{world.url}/auth/local", json={"name": name, "password": password, "next": "/versions"})


def test_a_local_user_signs_in_and_only_an_argon2_hash_is_kept(local: World) -> None:
    local.users.add("breakglass", "admin", None, PASSWORD, now=local.clock.now())
    with local.store.transaction("read") as connection:
        stored = connection.execute(sa.text("select password_hash from local_user")).scalar_one()
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored

    with httpx.Client(timeout=10) as client:
        answer = sign_in(local, client, "breakglass", PASSWORD)
        assert answer.status_code == 200, answer.text
        assert answer.json()["role"] == "admin"
        assert answer.json()["next"] == "/versions"
        assert client.cookies[CSRF_COOKIE] == answer.json()["csrf"]
        me = client.get(f"{local.url}/api/v1/me").json()
    assert (me["name"], me["role"], me["via"]) == ("breakglass", "admin", "local")


def test_a_form_post_signs_in_and_goes_to_the_page_asked_for(local: World) -> None:
    local.users.add("ops-1", "ops", None, PASSWORD, now=local.clock.now())
    with httpx.Client(timeout=10) as client:
        answer = client.post(f"{local.url}/auth/local", data={"name": "ops-1", "password": PASSWORD, "next": "/alerts"})
        assert answer.status_code == 303
        assert answer.headers["location"] == "/alerts"
        assert COOKIE in client.cookies


def test_an_unknown_name_and_a_wrong_password_get_the_same_answer(local: World) -> None:
    local.users.add("viewer-1", "viewer", None, PASSWORD, now=local.clock.now())
    with httpx.Client(timeout=10) as client:
        wrong = sign_in(local, client, "viewer-1", "not the password at all")
        unknown = sign_in(local, client, "nobody", PASSWORD)
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.json()["error"]["code"] == "unauthenticated"


def test_failed_sign_ins_are_limited_per_source(local: World) -> None:
    local.users.add("viewer-1", "viewer", None, PASSWORD, now=local.clock.now())
    with httpx.Client(timeout=10) as client:
        answers = [sign_in(local, client, "viewer-1", f"guess number {n}").status_code for n in range(10)]
        assert answers == [401] * 10
        # Past the burst, even the right password is refused until the bucket refills: a guesser learns nothing.
        refused = sign_in(local, client, "viewer-1", PASSWORD)
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "too-many-requests"
        assert int(refused.headers["Retry-After"]) > 0
        local.clock.advance(int(refused.headers["Retry-After"]))
        assert sign_in(local, client, "viewer-1", PASSWORD).status_code == 200


def test_removing_a_user_or_changing_their_password_ends_their_sessions(local: World) -> None:
    local.users.add("staff-1", "site-staff", frozenset({SiteId("sh-pudong")}), PASSWORD, now=local.clock.now())
    local.users.add("staff-2", "site-staff", frozenset({SiteId("sh-pudong")}), PASSWORD, now=local.clock.now())
    with httpx.Client(timeout=10) as first, httpx.Client(timeout=10) as second:
        assert sign_in(local, first, "staff-1", PASSWORD).status_code == 200
        assert sign_in(local, second, "staff-2", PASSWORD).status_code == 200
        assert first.get(f"{local.url}/api/v1/me").json()["sites"] == ["sh-pudong"]

        local.users.passwd("staff-1", "a brand new passphrase", now=local.clock.now())
        local.users.remove("staff-2", now=local.clock.now())
        assert first.get(f"{local.url}/api/v1/me").status_code == 401
        assert second.get(f"{local.url}/api/v1/me").status_code == 401
        assert sign_in(local, first, "staff-1", PASSWORD).status_code == 401
        assert sign_in(local, first, "staff-1", "a brand new passphrase").status_code == 200


@pytest.mark.parametrize(
    ("name", "role", "sites", "password", "hint"),
    [
        ("Bad Name", "admin", None, PASSWORD, "lowercase letters"),
        ("short", "admin", None, "too short", "12 at least"),
        ("staff", "site-staff", None, PASSWORD, "needs at least one site"),
    ],
)
def test_a_user_that_cannot_be_is_refused_with_the_fix(
    local: World, name: str, role: str, sites: frozenset[SiteId] | None, password: str, hint: str
) -> None:
    with pytest.raises(ValueError, match=hint):
        local.users.add(name, role, sites, password, now=local.clock.now())  # type: ignore[arg-type]


def test_a_name_is_taken_once(local: World) -> None:
    local.users.add("ops-1", "ops", None, PASSWORD, now=local.clock.now())
    with pytest.raises(LocalUserError, match="exists already"):
        local.users.add("ops-1", "viewer", None, PASSWORD, now=local.clock.now())
