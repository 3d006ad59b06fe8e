"""Schemathesis over the whole OpenAPI of the real app: every operation, with generated valid and invalid input
(NUL, huge numbers, wrong types, missing fields), against a real controller (built, its ingest connected to a real Mosquitto) on SQLite, and on PostgreSQL
where the suite has one (which refuses NUL in text: a NUL that got past the edge would answer 503). No
request may get a 5xx, and every answer must match the response schema the OpenAPI documents.

Examples per operation are bounded so that the run stays within a few seconds per operation; the database is one
for the whole module, so silences added by one example are there for the next (as in real use)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from edgefleet.cloud.access.authorizing import ROLES, Role
from edgefleet.cloud.api import create_app
from edgefleet.cloud.settings import Settings
from tests.cloud.api.controlled import served_controller
from tests.support.access import bearer, mint
from tests.support.peers import mosquitto, postgres_database

# Per operation; 16 operations. Enough to reach NaN, NUL and the bounds of every parameter; a minute in all at most.
MAX_EXAMPLES = 30
# For every other role: fewer, since most of what they send stops at the access check (403, or 404 beyond their
# sites), which must still be a documented 4xx and never a 5xx.
MAX_EXAMPLES_OTHER_ROLES = 6


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, dict[Role, dict[str, str]]]]:
    directory = tmp_path_factory.mktemp("schemathesis")
    with contextlib.ExitStack() as stack:
        if request.param == "sqlite":
            database = f"sqlite:///{directory / 'edgefleet.db'}"
        else:
            server = os.environ.get("EDGEFLEET_TEST_DATABASE_URL")
            if not server:
                pytest.skip("EDGEFLEET_TEST_DATABASE_URL is not set (CI sets it)")
            database = stack.enter_context(postgres_database(server))
        broker = stack.enter_context(mosquitto(directory))
        controller, url = stack.enter_context(served_controller(directory, database, broker=broker))
        # A token of each role (site staff: of one center): an admin's reaches past the access check to find what
        # a route does with its input; the others' show that being refused is never a server error either.
        yield (
            url,
            {
                role: bearer(mint(controller, role, sites=["sh-pudong"] if role == "site-staff" else None))
                for role in ROLES
            },
        )


# The OpenAPI the app serves, read from the app itself: building it needs no controller. (Schemathesis' lazy
# ``from_fixture`` would fetch it from the served app, but relies on pytest internals that pytest 9 removed.)
# The event stream is left out: it never ends, so no call to it returns (tests/cloud/api/test_console_api.py
# checks its refusals and its events).
schema = schemathesis.openapi.from_dict(create_app(Settings()).openapi()).exclude(path="/api/v1/events")


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_input_makes_the_api_fail(case: schemathesis.Case, api: tuple[str, dict[Role, dict[str, str]]]) -> None:
    url, headers = api
    case.call_and_validate(
        base_url=url,
        headers=headers["admin"],
        checks=[not_a_server_error, response_schema_conformance, content_type_conformance],
    )


@pytest.mark.slow
@pytest.mark.parametrize("role", [r for r in ROLES if r != "admin"])
@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES_OTHER_ROLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
)
def test_no_input_makes_the_api_fail_for_any_role(
    case: schemathesis.Case, api: tuple[str, dict[Role, dict[str, str]]], role: Role
) -> None:
    url, headers = api
    case.call_and_validate(
        base_url=url,
        headers=headers[role],
        checks=[not_a_server_error, response_schema_conformance, content_type_conformance],
    )
