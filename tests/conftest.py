"""Fixtures shared by every test: a real Mosquitto per test that asks for one, storage back ends, the inventory."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.peers import Mosquitto, mosquitto, postgres_database

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
    server = os.environ.get("EDGEFLEET_TEST_DATABASE_URL")
    if not server:
        pytest.skip("EDGEFLEET_TEST_DATABASE_URL is not set (CI sets it)")
    with postgres_database(server) as url:
        yield url
