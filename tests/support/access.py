"""API tokens for tests: every app a test builds admits only callers with a token, so a test mints one of the
role it means into the app's own token store (``controller.tokens``) and sends it, as headers for httpx or as
``EDGEFLEET_TOKEN`` for the CLI. Fixtures default to an admin token, so that a test that is not about access
keeps its meaning; a test about access mints the role it checks."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterable
from typing import Any, Final, Protocol

import httpx
import pytest

from edgefleet.clock import Clock
from edgefleet.cloud.access.authorizing import Role
from edgefleet.cloud.access.token_store import TokenStore
from edgefleet.cloud.store import Store
from edgefleet.ids import SiteId

TOKEN_ENV: Final = "EDGEFLEET_TOKEN"

# Names are unique per token store and stay taken after revoking; a counter keeps each test's names apart.
_numbers = itertools.count(1)


class HasTokens(Protocol):
    """A controller (the real one, the in-memory one): its token store and its clock."""

    @property
    def tokens(self) -> TokenStore: ...

    @property
    def clock(self) -> Clock: ...


def mint(
    controller: HasTokens,
    role: Role = "admin",
    *,
    sites: Iterable[str] | None = None,
    name: str | None = None,
    expires_in_s: float | None = None,
) -> str:
    """A new token of ``role`` (site staff: of ``sites``) in ``controller``'s store, made at its clock's now;
    returns the secret. ``name`` is the actor its actions are recorded under (default: a unique test name)."""
    scope = frozenset(SiteId(s) for s in sites) if sites is not None else None
    secret, _record = controller.tokens.create(
        name or f"test-{role}-{next(_numbers)}",
        role,
        scope,
        now=controller.clock.now(),
        expires_in_s=expires_in_s,
    )
    return secret


def bearer(secret: str) -> dict[str, str]:
    """The headers that send ``secret``."""
    return {"Authorization": f"Bearer {secret}"}


def admin_headers(controller: HasTokens, *, name: str | None = None) -> dict[str, str]:
    """Headers with a new admin token of ``controller``: for tests that are not about who may do what."""
    return bearer(mint(controller, "admin", name=name))


def cli_env(secret: str) -> dict[str, str]:
    """The environment that makes the CLI send ``secret`` (``CliRunner.invoke(env=...)``, a subprocess)."""
    return {TOKEN_ENV: secret}


def mint_at(
    database_url: str, role: Role = "admin", *, sites: Iterable[str] | None = None, name: str | None = None
) -> str:
    """A new token in the database of a controller the test does not hold (one ``create_app`` or ``edgefleet
    cloud serve`` runs), as ``edgefleet tokens create`` makes it there; the controller must have migrated it."""
    store = Store(database_url)
    try:
        scope = frozenset(SiteId(s) for s in sites) if sites is not None else None
        secret, _record = TokenStore(store).create(
            name or f"test-{role}-{next(_numbers)}", role, scope, now=time.time(), expires_in_s=None
        )
    finally:
        store.close()
    return secret


def use_token(monkeypatch: pytest.MonkeyPatch, secret: str) -> str:
    """Make the CLI run in this process (``CliRunner``) send ``secret``, as ``EDGEFLEET_TOKEN`` does; ``as_cli``
    sends it too. Returns ``secret``."""
    monkeypatch.setenv(TOKEN_ENV, secret)
    return secret


class _AsTheCli:
    """httpx's ``get``, ``post``, ``delete`` with the token the CLI would send (``EDGEFLEET_TOKEN``): for tests
    that compare what the CLI prints with what the API answers."""

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        headers = {**bearer(os.environ[TOKEN_ENV]), **kwargs.pop("headers", {})}
        kwargs.setdefault("timeout", 10)
        return httpx.request(method, url, headers=headers, **kwargs)

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", url, **kwargs)


as_cli: Final = _AsTheCli()


def cli_headers() -> dict[str, str]:
    """The headers that send the token the CLI sends now (``EDGEFLEET_TOKEN``, set by ``use_token``)."""
    return bearer(os.environ[TOKEN_ENV])
