"""The CLI tests run the fleet commands against a real uvicorn serving the API over an in-memory controller."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from edgefleet.cli import cloud, fleet
from tests.cloud.api.fixtures import api_token, api_url, memory, served_memory
from tests.support.access import TOKEN_ENV

__all__ = ["api_token", "api_url", "cli", "memory", "runner", "served_memory"]


@pytest.fixture
def cli() -> typer.Typer:
    """The ``edgefleet`` commands of this part, as ``edgefleet.cli.app`` puts them together."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.add_typer(cloud.app, name="cloud")
    fleet.register(app)
    return app


@pytest.fixture
def runner(api_token: str) -> CliRunner:
    # Wide enough that rich never folds a cell: the tests read the tables' text. The admin token of the served
    # in-memory app; a test against another app passes its own token in ``invoke(env=...)``.
    return CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1", TOKEN_ENV: api_token})
