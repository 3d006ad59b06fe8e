"""Fixtures shared by the API and CLI tests: one app with an in-memory controller, served by a real uvicorn
for the whole session (starting a server costs ~0.3 s), and reset before each test. ``client`` and the CLI's
``runner`` send an admin token (``api_token``), so that tests not about access keep their meaning."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from edgefleet.cloud.api import create_app
from edgefleet.cloud.settings import Settings
from tests.cloud.api.memory import MemoryController
from tests.cloud.api.serving import serving
from tests.support.access import bearer, mint


@pytest.fixture(scope="session")
def served_memory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MemoryController, str]]:
    memory = MemoryController.small(tmp_path_factory.mktemp("inventory") / "sites")
    with serving(create_app(Settings(), controller=memory)) as url:
        yield memory, url


@pytest.fixture
def memory(served_memory: tuple[MemoryController, str]) -> MemoryController:
    """The in-memory controller behind ``api_url``, as if nothing had been sent yet."""
    served_memory[0].reset()
    return served_memory[0]


@pytest.fixture
def api_url(served_memory: tuple[MemoryController, str], memory: MemoryController) -> str:
    return served_memory[1]


@pytest.fixture(scope="session")
def api_token(served_memory: tuple[MemoryController, str]) -> str:
    """An admin token of the served app, for the whole session (``reset`` keeps tokens)."""
    return mint(served_memory[0], "admin", name="test-admin")


@pytest.fixture
def client(api_url: str, api_token: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api_url, timeout=10, headers=bearer(api_token)) as c:
        yield c
