"""Hostile input is refused at the API's edge with a 422 that names the parameter, on SQLite and PostgreSQL alike,
before the alert service or the database sees it: non-finite numbers, NUL and control characters, absurd lengths,
bodies too large (413) and bodies that are no JSON (named by line and column). Messages write durations and times
as people do. A silence sent twice is stored once.

Each reproduction of issue 13 is a test of its own, against a real controller (built, not started) on a real
database; the guard that every parameter goes through a constrained type is proven on a planted bare ``str``."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from edgefleet.clock import FakeClock
from edgefleet.cloud.alerting.service import SilenceRejected
from edgefleet.cloud.api import create_app
from edgefleet.cloud.api.errors import MAX_BODY_BYTES
from edgefleet.cloud.controller import Controller
from edgefleet.cloud.settings import Settings
from edgefleet.ids import SiteId
from tests.cloud.api.controlled import served_controller
from tests.cloud.api.memory import MemoryController
from tests.cloud.api.serving import serving
from tests.support.access import admin_headers

SILENCE = {"site": "sh-pudong", "comment": "switch replacement"}
JSON = {"content-type": "application/json"}


@pytest.fixture
def served(tmp_path: Path, database_url: str) -> Iterator[tuple[Controller, httpx.Client]]:
    with served_controller(tmp_path, database_url) as (controller, url):
        client = httpx.Client(base_url=url, headers=admin_headers(controller, name="li.wei"))
        with client:
            yield controller, client


@pytest.fixture
def client(served: tuple[Controller, httpx.Client]) -> httpx.Client:
    """On SQLite and on PostgreSQL: for what reached the database before."""
    return served[1]


@pytest.fixture
def sqlite_client(tmp_path: Path) -> Iterator[httpx.Client]:
    """On SQLite only: for what never reached the database (parsing, sizes, wording)."""
    database = f"sqlite:///{tmp_path / 'edgefleet.db'}"
    with served_controller(tmp_path, database) as (controller, url):
        client = httpx.Client(base_url=url, headers=admin_headers(controller, name="li.wei"))
        with client:
            yield client


def refused(response: httpx.Response, status: int = 422) -> str:
    """The message of a refusal in the one error shape."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == {413: "too-large", 422: "invalid-request"}[status]
    message = body["error"]["message"]
    assert isinstance(message, str)
    return message


# --- non-finite numbers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("duration", "says"),
    [
        (b"NaN", "body field 'duration': Input should be a finite number"),
        (b"Infinity", "body field 'duration': Input should be a finite number"),
        (b"1e999", "body field 'duration': Input should be a finite number"),
        (b'"nan"', "body field 'duration': 'nan' is no duration"),
        (b'"inf"', "body field 'duration': 'inf' is no duration"),
    ],
)
def test_a_silence_of_nan_duration_is_refused_and_the_list_still_answers(
    client: httpx.Client, duration: bytes, says: str
) -> None:
    body = json.dumps(SILENCE).encode()[:-1] + b', "duration": ' + duration + b"}"
    assert says in refused(client.post("/api/v1/silences", content=body, headers=JSON))

    listed = client.get("/api/v1/silences", params={"all": "true"})
    assert listed.status_code == 200, listed.text
    assert listed.json() == []


def test_no_caller_stores_a_silence_without_a_finite_end(served: tuple[Controller, httpx.Client]) -> None:
    """Defence in depth: the alert service itself refuses what the API's types would."""
    alerting = served[0].alerting
    for ends in ({"duration_s": math.nan}, {"duration_s": math.inf}, {"ends_at": math.nan}, {"ends_at": math.inf}):
        with pytest.raises(SilenceRejected):
            alerting.add_silence(created_by="li.wei", comment="fan", site=SiteId("sh-pudong"), **ends)  # type: ignore[arg-type]
    assert alerting.list_silences(include_expired=True) == []


def test_a_non_finite_query_number_is_refused(sqlite_client: httpx.Client) -> None:
    for value in ("nan", "inf", "-inf", "1e999"):
        message = refused(sqlite_client.get("/api/v1/boxes/sh-pudong-gpu-01", params={"history_s": value}))
        assert message.startswith("query parameter 'history_s': Input should be a finite number"), message


# --- NUL and control characters ---------------------------------------------------------------------------

CONTROL = "must not hold NUL or other control characters"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/api/v1/silences/silence-ab%00cd"),
        ("GET", "/api/v1/alerts/alert-ab%00cd"),
        ("POST", "/api/v1/alerts/alert-ab%00cd/ack"),
        ("GET", "/api/v1/sites/sh-pudong%00"),
        ("GET", "/api/v1/sites/sh-pudong%1b%5b2J/boxes"),
        ("GET", "/api/v1/boxes/sh-pudong-gpu-01%0a"),
    ],
)
def test_a_nul_or_control_character_in_an_id_is_refused(client: httpx.Client, method: str, path: str) -> None:
    response = client.request(method, path, json={} if method == "POST" else None)
    message = refused(response)
    assert message.startswith("path parameter "), message
    assert CONTROL in message


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/v1/alerts", {"site": "sh-\x00pudong"}),
        ("/api/v1/alerts/counts", {"site": "sh-pudong\x07"}),
        ("/api/v1/sites", {"region": "east\x00"}),
    ],
)
def test_a_nul_or_control_character_in_a_query_is_refused(
    client: httpx.Client, path: str, params: dict[str, str]
) -> None:
    message = refused(client.request("GET", path, params=params))
    (name,) = params
    assert message.startswith(f"query parameter {name!r}: {CONTROL}"), message


def test_a_nul_in_a_body_field_is_refused_naming_each_field(client: httpx.Client) -> None:
    body = {"site": "sh-pu\x00dong", "box": "sh-pudong-gpu\x0001", "comment": "fan\x00", "duration": "2h"}
    message = refused(client.post("/api/v1/silences", json=body))
    for field in ("site", "box", "comment"):
        assert f"body field {field!r}: {CONTROL}" in message, message


# --- the actor is who signed in ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/api/v1/silences", {**SILENCE, "duration": "2h", "created_by": "someone.else"}, "created_by"),
        ("POST", "/api/v1/alerts/alert-abcd/ack", {"by": "someone.else"}, "by"),
        ("POST", "/api/v1/clusters/test-edge/restart", {"dry_run": True, "by": "someone.else"}, "by"),
        ("POST", "/api/v1/rollouts/r-20261201-abcdef/pause", {"by": "someone.else"}, "by"),
        ("POST", "/api/v1/sites/sh-pudong/hold", {"reason": "peak day", "by": "someone.else"}, "by"),
    ],
)
def test_a_request_naming_its_own_actor_is_refused_naming_the_field(
    sqlite_client: httpx.Client, method: str, path: str, body: dict[str, Any], field: str
) -> None:
    message = refused(sqlite_client.request(method, path, json=body))
    assert message.startswith(f"body field {field!r}: the actor is who signed in"), message
    assert f"drop {field!r}" in message


def test_ending_a_silence_by_someone_named_in_the_query_is_refused(sqlite_client: httpx.Client) -> None:
    added = sqlite_client.post("/api/v1/silences", json={**SILENCE, "duration": "90m"})
    assert added.status_code == 201, added.text
    assert added.json()["created_by"] == "li.wei"  # the token's name
    message = refused(sqlite_client.delete(f"/api/v1/silences/{added.json()['id']}", params={"by": "someone.else"}))
    assert message.startswith("query parameter 'by': the actor is who signed in"), message


def test_a_comment_may_hold_line_breaks(sqlite_client: httpx.Client) -> None:
    response = sqlite_client.post(
        "/api/v1/silences", json={**SILENCE, "comment": "fan\nticket OPS-12\tswap", "duration": 60}
    )
    assert response.status_code == 201, response.text
    assert response.json()["comment"] == "fan\nticket OPS-12\tswap"


# --- absurd sizes -----------------------------------------------------------------------------------------


def test_an_absurdly_long_id_or_text_is_refused_and_not_echoed_whole(sqlite_client: httpx.Client) -> None:
    long_id = "a" * 5000
    message = refused(sqlite_client.get(f"/api/v1/boxes/{long_id}"))
    assert message.startswith("path parameter 'box': String should have at most 253 characters"), message
    assert len(message) < 300, "the refused input is quoted short"

    message = refused(sqlite_client.post("/api/v1/silences", json={**SILENCE, "comment": "x" * 2001, "duration": "2h"}))
    assert "body field 'comment': String should have at most 2000 characters" in message
    assert len(message) < 300


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_over_the_limit_is_a_413(sqlite_client: httpx.Client, chunked: bool) -> None:
    big = json.dumps({**SILENCE, "comment": "x" * (MAX_BODY_BYTES + 1), "duration": "2h"}).encode()
    content: bytes | Iterator[bytes] = iter([big[:1000], big[1000:]]) if chunked else big
    message = refused(sqlite_client.post("/api/v1/silences", content=content, headers=JSON), status=413)
    assert message.startswith("the request body is over 64 KiB"), message
    assert sqlite_client.get("/api/v1/silences").json() == []


def test_a_huge_duration_is_written_as_people_write_it(sqlite_client: httpx.Client) -> None:
    message = refused(sqlite_client.post("/api/v1/silences", json={**SILENCE, "duration": 1e300}))
    assert message.startswith(
        "body field 'duration': 1e+300s is longer than a silence may last (30d); silence for less and extend it later"
    ), message
    message = refused(sqlite_client.post("/api/v1/silences", json={**SILENCE, "duration": "45d"}))
    assert message.startswith("body field 'duration': 45d is longer than a silence may last (30d)"), message
    message = refused(sqlite_client.post("/api/v1/silences", json={**SILENCE, "duration": int("9" * 300)}))
    assert "9" * 20 not in message, message


# --- malformed JSON ---------------------------------------------------------------------------------------


def test_malformed_json_names_the_line_and_column(sqlite_client: httpx.Client) -> None:
    body = b'{"site": "sh-pudong",\n "duration": 5,,\n "created_by": "li.wei"}'
    message = refused(sqlite_client.post("/api/v1/silences", content=body, headers=JSON))
    assert message.startswith(
        "the body is not valid JSON: Expecting property name enclosed in double quotes at line 2 column 16 "
        "(position 37)"
    ), message
    assert "body field" not in message


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'{"by": "li.wei"', "the body is not valid JSON: Expecting ',' delimiter at line 1 column 16 (position 15)"),
        (b'{"by": "\xff"}', "the body cannot be read as JSON: it is not UTF-8 text"),
        (b'{"by": ' + b"9" * 5000 + b"}", "the body cannot be read as JSON: it holds a number too long"),
    ],
)
def test_a_body_that_cannot_be_read_says_why(sqlite_client: httpx.Client, body: bytes, says: str) -> None:
    message = refused(sqlite_client.post("/api/v1/alerts/alert-abcd/ack", content=body, headers=JSON))
    assert message.startswith(says), message


# --- times as people write them ---------------------------------------------------------------------------


def test_times_in_messages_are_iso_8601_not_epoch_seconds(sqlite_client: httpx.Client) -> None:
    message = refused(sqlite_client.post("/api/v1/silences", json={**SILENCE, "ends_at": "2020-01-01T00:00:00Z"}))
    assert message == (
        "ends_at (2020-01-01T00:00:00Z) is already past: it is 2027-01-15T08:00:00Z now; give a later time, "
        "or a duration such as 2h"
    )

    added = sqlite_client.post("/api/v1/silences", json={**SILENCE, "duration": "90m"})
    assert added.status_code == 201, added.text
    silence = added.json()["id"]
    assert sqlite_client.delete(f"/api/v1/silences/{silence}").status_code == 200
    again = sqlite_client.delete(f"/api/v1/silences/{silence}")
    assert again.status_code == 409
    assert again.json()["error"]["message"] == f"silence {silence} already ended at 2027-01-15T08:00:00Z by li.wei"


# --- a silence sent twice ---------------------------------------------------------------------------------


def test_an_identical_active_silence_is_stored_once(served: tuple[Controller, httpx.Client]) -> None:
    controller, client = served
    first = client.post("/api/v1/silences", json={**SILENCE, "duration": "2h"})
    assert first.status_code == 201, first.text
    assert isinstance(controller.clock, FakeClock)
    controller.clock.advance(20.0)  # a retry: its "2h" is counted from a later now

    again = client.post("/api/v1/silences", json={**SILENCE, "duration": "2h"})
    assert again.status_code == 200, again.text
    assert again.json() == first.json() | {"state": "active"}
    assert [s["id"] for s in client.get("/api/v1/silences").json()] == [first.json()["id"]]

    # Not the same plan: another reason, another end, another matcher; each is a silence of its own.
    for other in (
        {**SILENCE, "comment": "another ticket", "duration": "2h"},
        {**SILENCE, "duration": "3h"},
        {**SILENCE, "kind": "box-lost", "duration": "2h"},
    ):
        assert client.post("/api/v1/silences", json=other).status_code == 201, other
    assert len(client.get("/api/v1/silences").json()) == 4

    # Once it has ended, the same silence may be planned again.
    assert client.delete(f"/api/v1/silences/{first.json()['id']}").status_code == 200
    renewed = client.post("/api/v1/silences", json={**SILENCE, "duration": "2h"})
    assert renewed.status_code == 201, renewed.text
    assert renewed.json()["id"] != first.json()["id"]


# --- the guard: every parameter goes through a constrained type -------------------------------------------


def unconstrained(spec: dict[str, Any]) -> list[str]:
    """Every string parameter or body field of the OpenAPI that has no length bound, or no pattern or enum."""
    schemas = spec.get("components", {}).get("schemas", {})

    def strings(schema: dict[str, Any], where: str) -> Iterator[tuple[str, dict[str, Any]]]:
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            schema = schemas[name]
        for option in schema.get("anyOf", []):
            yield from strings(option, where)
        if schema.get("type") == "string":
            yield where, schema
        for field, sub in schema.get("properties", {}).items():
            yield from strings(sub, f"{where}.{field}")

    found = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            places = [
                (f"{method.upper()} {path} {p['in']} {p['name']}", p["schema"]) for p in operation.get("parameters", [])
            ]
            for content in operation.get("requestBody", {}).get("content", {}).values():
                places.append((f"{method.upper()} {path} body", content["schema"]))
            for where, schema in places:
                for name, string in strings(schema, where):
                    if "enum" in string or string.get("format") == "date-time":
                        continue
                    if "maxLength" not in string or "pattern" not in string:
                        found.append(name)
    return found


def test_every_parameter_of_the_api_is_constrained() -> None:
    assert unconstrained(create_app(Settings()).openapi()) == []


def test_the_guard_sees_a_bare_string_parameter() -> None:
    app = create_app(Settings())
    extra = FastAPI()

    @extra.get("/api/v1/planted/{thing}")
    def planted(thing: str, note: str | None = None) -> None: ...

    app.include_router(extra.router)
    assert unconstrained(app.openapi()) == [
        "GET /api/v1/planted/{thing} path thing",
        "GET /api/v1/planted/{thing} query note",
    ]


@pytest.mark.parametrize("chunked", [False, True])
def test_the_body_limit_is_a_setting(tmp_path: Path, chunked: bool) -> None:
    memory = MemoryController.small(tmp_path / "sites")
    app = create_app(Settings(max_body_bytes=1024), controller=memory)
    body = json.dumps({"release": "x" * 2000}).encode()
    content: bytes | Iterator[bytes] = iter([body[:500], body[500:1000], body[1000:]]) if chunked else body
    with serving(app) as url, httpx.Client(base_url=url, headers=admin_headers(memory)) as client:
        message = refused(client.post("/api/v1/rollouts/plan", content=content, headers=JSON), status=413)
        assert message.startswith("the request body is over 1 KiB"), message
        # Under the limit, the body goes through whole (here to the release's own check).
        assert client.post("/api/v1/rollouts/plan", json={"release": "x" * 500}).status_code == 422
