"""``edgefleet tokens`` works on the controller's database with no token of its own (so an admin can make the
first one): the secret is printed once, ``list`` never shows it, ``revoke`` ends it. ``edgefleet login`` keeps a
token in a 0600 file that the CLI then sends, with ``EDGEFLEET_TOKEN`` winning over it."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from edgefleet.cli import tokens
from edgefleet.cloud.access.token_store import TokenStore
from edgefleet.cloud.access.tokens import admit
from edgefleet.cloud.store import Store
from tests.cli.entry import edgefleet


def test_create_list_and_revoke_at_the_database(database_url: str) -> None:
    env = {"EDGEFLEET_DATABASE_URL": database_url}
    made = edgefleet("tokens", "create", "--name", "berlin-desk", "--role", "site-staff", "--site", "berlin-1",
                     "--expires", "30d", "-o", "json", env=env)  # fmt: skip
    assert made.returncode == 0, made.stderr
    created = json.loads(made.stdout)
    secret = created["token"]
    assert created["role"] == "site-staff"
    assert created["sites"] == ["berlin-1"]
    assert created["state"] == "active"
    assert created["expires_at"] - created["created_at"] == 30 * 86400

    store = Store(database_url)
    try:
        principal = admit(TokenStore(store).find(secret), now=created["created_at"])
    finally:
        store.close()
    assert principal is not None
    assert principal.name == "berlin-desk"

    listed = edgefleet("tokens", "list", "-o", "json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert secret not in listed.stdout
    assert [(t["name"], t["state"]) for t in json.loads(listed.stdout)] == [("berlin-desk", "active")]

    revoked = edgefleet("tokens", "revoke", "berlin-desk", env=env)
    assert revoked.returncode == 0, revoked.stderr
    table = edgefleet("tokens", "list", env=env)
    assert "berlin-desk" in table.stdout
    assert "revoked" in table.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--name", "x", "--role", "root"), "error: unknown role 'root'"),
        (("--name", "x", "--role", "site-staff"), "needs at least one site"),
        (("--name", "x", "--role", "viewer", "--expires", "soon"), "expiry 'soon' is not valid"),
    ],
)
def test_a_bad_request_is_one_clear_line(database_url: str, args: tuple[str, ...], message: str) -> None:
    done = edgefleet("tokens", "create", *args, env={"EDGEFLEET_DATABASE_URL": database_url})
    assert done.returncode == 1
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_login_keeps_the_token_for_its_owner_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    done = edgefleet("login", "--token", "ef_secret", env={"XDG_CONFIG_HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    kept = tmp_path / "edgefleet" / "token"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert kept.read_text() == "ef_secret\n"

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("EDGEFLEET_TOKEN", raising=False)
    assert tokens.bearer_token() == "ef_secret"
    monkeypatch.setenv("EDGEFLEET_TOKEN", "ef_from_env")
    assert tokens.bearer_token() == "ef_from_env"


def test_no_token_anywhere_sends_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("EDGEFLEET_TOKEN", raising=False)
    assert tokens.bearer_token() is None
