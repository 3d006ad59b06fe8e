"""The sign-in tests' world: the API over an in-memory fleet, with real sessions and local users in a SQLite
database migrated as the controller migrates it, and a real OpenID Connect provider (node oidc-provider) whose
client's redirect URI is this API's callback. The clock is a fake one started at the real time (the provider's ID
tokens carry real times), moved by the tests that judge expiry and the rate limit."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI

from edgefleet.clock import FakeClock
from edgefleet.cloud.access.local_users import LocalUsers
from edgefleet.cloud.access.oidc_config import OidcSettings, parse_groups
from edgefleet.cloud.access.sessions import Sessions
from edgefleet.cloud.api import create_app
from edgefleet.cloud.migrating import upgrade_schema
from edgefleet.cloud.settings import Settings
from edgefleet.cloud.store import Store
from tests.cloud.api.memory import MemoryController
from tests.cloud.api.serving import bound_socket, serving
from tests.support.oidc_provider import Account, RunningProvider, oidc_provider

GROUPS = """\
groups:
  fleet-admins: admin
  release-managers: release-manager
  sh-pudong-staff: {role: site-staff, sites: [sh-pudong]}
  bj-daxing-staff: {role: site-staff, sites: [bj-daxing]}
"""
ACCOUNTS = {
    "alice": Account(password="alice-password", groups=["everyone", "fleet-admins"]),
    "pudong": Account(password="pudong-password", groups=["sh-pudong-staff", "bj-daxing-staff"]),
    "mallory": Account(password="mallory-password", groups=["everyone", "contractors"]),
}


@dataclass(frozen=True)
class World:
    url: str
    redirect_uri: str
    provider: RunningProvider | None
    memory: MemoryController
    clock: FakeClock
    store: Store
    app: FastAPI

    @property
    def users(self) -> LocalUsers:
        assert self.memory.local_users is not None
        return self.memory.local_users


@contextlib.contextmanager
def _serving(
    tmp_path: Path, sock: socket.socket, oidc: OidcSettings | None, database_url: str
) -> Iterator[tuple[MemoryController, FakeClock, Store, FastAPI]]:
    store = Store(database_url)
    upgrade_schema(store)
    memory = MemoryController.small(tmp_path / "sites")
    clock = FakeClock(start=time.time())
    memory.clock = clock
    memory.sessions = Sessions(store)
    memory.local_users = LocalUsers(store)
    app = create_app(Settings(oidc=oidc), controller=memory)
    try:
        with serving(app, sock):
            yield memory, clock, store, app
    finally:
        store.close()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    sock = bound_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    redirect_uri = f"{url}/auth/oidc/callback"
    with oidc_provider(tmp_path, redirect_uri, ACCOUNTS) as provider:
        oidc = OidcSettings(
            issuer=provider.issuer,
            client_id=provider.client_id,
            client_secret=provider.client_secret,
            redirect_uri=redirect_uri,
            groups=parse_groups(GROUPS, where="groups.yaml"),
        )
        with _serving(tmp_path, sock, oidc, f"sqlite:///{tmp_path / 'controller.db'}") as (memory, clock, store, app):
            yield World(url, redirect_uri, provider, memory, clock, store, app)


@pytest.fixture
def local(tmp_path: Path, database_url: str) -> Iterator[World]:
    """The same API with local users only (no provider set up), on SQLite and on PostgreSQL (where CI has it)."""
    sock = bound_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with _serving(tmp_path, sock, None, database_url) as (memory, clock, store, app):
        yield World(url, "", None, memory, clock, store, app)
