"""A standby (edgefleet.cloud.api.standby) answers every state-changing route 503 ``not-leader`` naming the leader
in the message and the ``X-Edgefleet-Leader`` header, and serves every read; the leader serves both. Every route
of the OpenAPI document is tried, so a route added later is checked without a word."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from sqlalchemy.engine import Connection

from edgefleet.cloud.api import create_app
from edgefleet.cloud.api.standby import LEADER_HEADER, NOT_LEADER_CODE, READ_METHODS, refusal_message
from edgefleet.cloud.leading import Holder, LeaderView, NotLeaderError
from edgefleet.cloud.settings import Settings
from tests.cloud.api.memory import MemoryController
from tests.cloud.api.serving import serving

LEADER = Holder("ctrl-a", 4242, 1_800_000_000)
LEADER_URL = "http://ctrl-a:8000"
IDS = {
    "site": "sh-pudong",
    "box": "sh-pudong-gpu-01",
    "alert": "an-alert",
    "silence": "a-silence",
    "cluster": "test-edge",
    "rollout_id": "r-20261201-abcdef",
    "restart_id": "0123456789ab",
}


class Standby:
    """A leadership that does not lead; ``leader`` None: nobody leads (a takeover under way)."""

    def __init__(self, leader: Holder | None) -> None:
        self._leader = leader

    @property
    def leader(self) -> bool:
        return False

    @property
    def epoch(self) -> int | None:
        return None

    def fence(self, connection: Connection) -> None:
        raise NotLeaderError("a standby")

    def view(self) -> LeaderView:
        address = LEADER_URL if self._leader else None
        return LeaderView(self._leader, address, 7, 1_800_000_000.0 if self._leader else None, False, 4.0)

    def start(
        self, on_elected: Callable[[int], None], on_deposed: Callable[[str], None], hears_broker: object = None
    ) -> None:
        pass

    def stop(self) -> None:
        pass


def every_route(client: httpx.Client) -> list[tuple[str, str]]:
    paths = client.get("/openapi.json").json()["paths"]
    return [(method.upper(), path.format(**IDS)) for path, methods in paths.items() for method in methods]


def test_every_write_is_refused_on_a_standby_naming_the_leader(memory: MemoryController) -> None:
    memory.leadership = Standby(LEADER)
    with serving(create_app(Settings(), controller=memory)) as url, httpx.Client(base_url=url, timeout=10) as client:
        routes = every_route(client)
        writes = [(m, p) for m, p in routes if m not in READ_METHODS]
        assert len(writes) >= 5, "the API has write routes to try"
        for method, path in writes:
            answer = client.request(method, path, json={})
            assert answer.status_code == 503, (method, path)
            assert answer.json()["error"]["code"] == NOT_LEADER_CODE
            assert answer.headers[LEADER_HEADER] == LEADER_URL
            assert "host ctrl-a, pid 4242" in answer.json()["error"]["message"]
        # Signing in and out writes only the browser's own session: any replica serves it.
        for path in ("/auth/local", "/auth/signout"):
            assert NOT_LEADER_CODE not in client.post(path, json={}).text, path
        # Reads pass on to their routes (the in-memory controller answers some of them 503 itself: no alerting).
        for method, path in routes:
            if method == "GET" and path != "/api/v1/events":
                answer = client.get(path)
                assert NOT_LEADER_CODE not in answer.text, path
                assert LEADER_HEADER not in answer.headers, path


@pytest.mark.parametrize(
    ("view", "says"),
    [
        (LeaderView(LEADER, LEADER_URL, 7, 1.0, False, 4.0), f"epoch 7 at {LEADER_URL}: send changes to the leader"),
        (LeaderView(None, None, 7, None, False, None), "no controller leads the database now"),
        (None, "no controller leads the database now"),
    ],
)
def test_the_refusal_says_who_leads_or_that_nobody_does(view: LeaderView | None, says: str) -> None:
    assert says in refusal_message(view)


def test_with_nobody_leading_the_refusal_names_no_address(memory: MemoryController) -> None:
    memory.leadership = Standby(None)
    with serving(create_app(Settings(), controller=memory)) as url, httpx.Client(base_url=url, timeout=10) as client:
        answer = client.post("/api/v1/inventory/reload", json={})
    assert answer.status_code == 503
    assert LEADER_HEADER not in answer.headers
    assert answer.headers["Retry-After"] == "2"


def test_the_leader_takes_writes(client: httpx.Client) -> None:
    answer = client.post("/api/v1/inventory/reload", json={})
    assert answer.status_code != 503
