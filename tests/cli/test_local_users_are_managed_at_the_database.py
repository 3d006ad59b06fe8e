"""``edgefleet users`` works on the controller's database: ``add`` stores an argon2 hash (the password is never
printed or stored), ``list`` shows no secret, ``passwd`` and ``remove`` take effect for sign-in at once, and a bad
request is one clear line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgefleet.cloud.access.local_users import LocalUsers
from edgefleet.cloud.store import Store
from tests.cli.entry import edgefleet

PASSWORD = "correct horse battery staple"


def checked(database_url: str, name: str, password: str) -> str | None:
    store = Store(database_url)
    try:
        found = LocalUsers(store).check(name, password)
    finally:
        store.close()
    return None if found is None else found.role


def test_add_list_passwd_and_remove(database_url: str, tmp_path: Path) -> None:
    env = {"EDGEFLEET_DATABASE_URL": database_url}
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n")
    added = edgefleet("users", "add", "breakglass", "--role", "admin", "--password-file", str(secret), env=env)
    assert added.returncode == 0, added.stderr
    assert PASSWORD not in added.stdout + added.stderr
    assert checked(database_url, "breakglass", PASSWORD) == "admin"

    listed = edgefleet("users", "list", "-o", "json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert [(u["name"], u["role"]) for u in json.loads(listed.stdout)] == [("breakglass", "admin")]
    assert "argon2" not in listed.stdout

    secret.write_text("another long passphrase")
    changed = edgefleet("users", "passwd", "breakglass", "--password-file", str(secret), env=env)
    assert changed.returncode == 0, changed.stderr
    assert checked(database_url, "breakglass", PASSWORD) is None
    assert checked(database_url, "breakglass", "another long passphrase") == "admin"

    removed = edgefleet("users", "remove", "breakglass", env=env)
    assert removed.returncode == 0, removed.stderr
    assert checked(database_url, "breakglass", "another long passphrase") is None


@pytest.mark.parametrize(
    ("args", "password", "message"),
    [
        (("add", "x", "--role", "root"), PASSWORD, "error: unknown role 'root'"),
        (("add", "x", "--role", "site-staff"), PASSWORD, "needs at least one site"),
        (("add", "x", "--role", "viewer"), "short", "use 12 at least"),
        (("remove", "nobody"), PASSWORD, "no local user named 'nobody'"),
    ],
)
def test_a_bad_request_is_one_clear_line(
    database_url: str, tmp_path: Path, args: tuple[str, ...], password: str, message: str
) -> None:
    secret = tmp_path / "password"
    secret.write_text(password)
    extra = ("--password-file", str(secret)) if args[0] == "add" else ()
    answer = edgefleet("users", *args, *extra, env={"EDGEFLEET_DATABASE_URL": database_url})
    assert answer.returncode != 0
    assert message in answer.stderr
    assert "Traceback" not in answer.stderr
