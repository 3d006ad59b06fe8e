"""Fixtures shared by every test: a real Mosquitto per test that asks for one, storage back ends, the inventory, and
the guard that fails any test whose log records or HTTP answers show one of the suite's secrets
(``tests/support/secrets.py``)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from edgefleet.credentials import forget_hidden
from tests.support.peers import Mosquitto, mosquitto, postgres_database
from tests.support.secrets import SecretWatch, install

REPO = Path(__file__).resolve().parent.parent
SITES = REPO / "sites"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Commands run in-process (``cloud serve``, ``sim run``) configure the root logger; undo it after each test so
    no later test sees their handlers or levels."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    named = {name: logging.getLogger(name).level for name in ("apscheduler", "edgefleet.agent", "httpx")}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, name_level in named.items():
        logging.getLogger(name).setLevel(name_level)


@pytest.fixture(autouse=True)
def secret_watch() -> Iterator[SecretWatch]:
    """No test secret in any log record any logger creates, nor in any answer read through httpx. Records below a
    logger's level are never created: a test that handles secrets sets the level it wants checked (INFO)."""
    watch = SecretWatch()
    undo = install(watch)
    try:
        yield watch
    finally:
        undo()
        # Values registered with the log mask by one test must not hide a leak from the next one's output.
        forget_hidden()
    leaks = watch.leaks()
    if leaks:
        pytest.fail("a test secret was shown:\n  " + "\n  ".join(leaks), pytrace=False)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with mosquitto(tmp_path) as b:
        yield b


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each storage test runs on SQLite, and on PostgreSQL when EDGEFLEET_TEST_DATABASE_URL names a server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'edgefleet.db'}"
        return
    with _own_postgres_database() as url:
        yield url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL database of the test's own, for what needs PostgreSQL (replicas sharing one database);
    skipped when EDGEFLEET_TEST_DATABASE_URL names no server."""
    with _own_postgres_database() as url:
        yield url


@contextmanager
def _own_postgres_database() -> Iterator[str]:
    server = os.environ.get("EDGEFLEET_TEST_DATABASE_URL")
    if not server:
        pytest.skip("EDGEFLEET_TEST_DATABASE_URL is not set (CI sets it)")
    with postgres_database(server) as url:
        yield url
