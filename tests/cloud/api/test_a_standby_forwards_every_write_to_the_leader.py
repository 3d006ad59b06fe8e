"""A standby (edgefleet.cloud.api.standby) sends every state-changing route on to the leader and returns the
leader's answer; it refuses 503 ``not-leader`` naming the leader when nothing can be sent (nobody leads, the leader
does not answer, the request was already forwarded once), and serves every read itself. Every route of the OpenAPI
document is tried, so a route added later is checked without a word.

Three real uvicorn servers over in-memory controllers: a reference leader, a leader behind the standby, and the
standby; they share one token store (as replicas share the database). The reference leader gets each write
directly, the other leader through the standby: the two answers must match."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import Connection

from edgefleet.clock import FakeClock
from edgefleet.cloud.access.enrollment_tokens import EnrollmentTokens
from edgefleet.cloud.access.local_users import LocalUsers
from edgefleet.cloud.access.sessions import COOKIE, Sessions
from edgefleet.cloud.api import create_app
from edgefleet.cloud.api import standby as forwarding
from edgefleet.cloud.api.standby import (
    ANY_REPLICA_PREFIXES,
    ENROLL,
    FORWARDED_BY_HEADER,
    LEADER_HEADER,
    NOT_LEADER_CODE,
    OUTCOME_UNKNOWN_CODE,
    READ_METHODS,
    answer_headers,
    forwarded_headers,
    handling,
    refusal_message,
)
from edgefleet.cloud.enrolling import Enrollment
from edgefleet.cloud.leading import Holder, LeaderView, NotLeaderError
from edgefleet.cloud.migrating import upgrade_schema
from edgefleet.cloud.settings import DEFAULT_MAX_BODY_BYTES, Settings
from edgefleet.cloud.store import Store
from tests.cloud.api.memory import MemoryController
from tests.cloud.api.serving import bound_socket, serving
from tests.cloud.signin.test_only_the_sign_in_routes_are_open import open_routes
from tests.support.access import bearer, mint
from tests.support.peers import free_port

LEADER = Holder("ctrl-a", 4242, 1_800_000_000)
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
    """A leadership that does not lead; ``leader`` None: nobody leads (a takeover under way). ``address``: where
    the leader's API listens."""

    def __init__(self, leader: Holder | None, address: str | None) -> None:
        self._leader = leader
        self._address = address

    @property
    def leader(self) -> bool:
        return False

    @property
    def epoch(self) -> int | None:
        return None

    def fence(self, connection: Connection) -> None:
        raise NotLeaderError("a standby")

    def view(self) -> LeaderView:
        address = self._address if self._leader else None
        return LeaderView(self._leader, address, 7, 1_800_000_000.0 if self._leader else None, False, 4.0)

    def start(
        self, on_elected: Callable[[int], None], on_deposed: Callable[[str], None], hears_broker: object = None
    ) -> None:
        pass

    def stop(self) -> None:
        pass


class Pair:
    """A leader and a standby that names it, sharing one token store; the leader takes the inventory again from
    its sites directory."""

    def __init__(self, leader: MemoryController, leader_url: str, standby: MemoryController, standby_url: str):
        self.leader = leader
        self.leader_url = leader_url
        self.standby = standby
        self.standby_url = standby_url


@contextlib.contextmanager
def pair(
    tmp_path: Path,
    *,
    leader_address: str | None = None,
    leading: Holder | None = LEADER,
    enrollment: Enrollment | None = None,
) -> Iterator[Pair]:
    """A served leader and a served standby naming it (or ``leader_address``, where nothing listens); both with
    ``enrollment`` (one database's enrollment tokens) when given."""
    leader = MemoryController.small(tmp_path / "leader-sites")
    leader.sites_dir = tmp_path / "leader-sites"
    standby = MemoryController.small(tmp_path / "standby-sites")
    standby.tokens = leader.tokens  # one database's tokens
    sock = bound_socket()
    leader_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    standby.leadership = Standby(leading, leader_address or leader_url)
    with (
        serving(create_app(Settings(), controller=leader, enrollment=enrollment), sock),
        serving(create_app(Settings(), controller=standby, enrollment=enrollment)) as standby_url,
    ):
        yield Pair(leader, leader_url, standby, standby_url)


def every_route(client: httpx.Client) -> list[tuple[str, str]]:
    paths = client.get("/openapi.json").json()["paths"]
    return [(method.upper(), path.format(**IDS)) for path, methods in paths.items() for method in methods]


def code_of(answer: httpx.Response) -> str | None:
    try:
        body = answer.json()
    except ValueError:
        return None
    return body.get("error", {}).get("code") if isinstance(body, dict) else None


def audit_names(url: str, token: str) -> list[tuple[str, str, str]]:
    """(principal, action, source) of every audit entry of the controller at ``url``, newest first."""
    with httpx.Client(base_url=url, timeout=10, headers=bearer(token)) as client:
        answer = client.get("/api/v1/audit")
    assert answer.status_code == 200, answer.text
    return [(e["principal"], e["action"], e["source"]) for e in answer.json()]


def test_every_write_through_a_standby_gets_the_answer_the_leader_gives(tmp_path: Path) -> None:
    reference = MemoryController.small(tmp_path / "reference-sites")
    reference.sites_dir = tmp_path / "reference-sites"
    with pair(tmp_path) as both, contextlib.ExitStack() as stack:
        reference.tokens = both.leader.tokens  # before serving: the app takes the token store at start
        reference_url = stack.enter_context(serving(create_app(Settings(), controller=reference)))
        token = mint(both.leader, "admin", name="ops-alice")
        direct = httpx.Client(base_url=reference_url, timeout=30, headers=bearer(token))
        through = httpx.Client(base_url=both.standby_url, timeout=30, headers=bearer(token))
        with direct, through:
            routes = every_route(through)
            writes = [(m, p) for m, p in routes if m not in READ_METHODS and not p.startswith("/auth/")]
            assert len(writes) >= 5, "the API has write routes to try"
            answered: set[int] = set()
            for method, path in writes:
                expected = direct.request(method, path, json={})
                got = through.request(method, path, json={})
                assert (got.status_code, code_of(got)) == (expected.status_code, code_of(expected)), (method, path)
                assert code_of(got) != NOT_LEADER_CODE, (method, path)
                answered.add(got.status_code)
            assert answered & {200, 201, 202, 204}, f"some write succeeded through the standby: {answered}"
            # Signing in and out writes only the browser's own session: the standby serves it itself.
            for path in ("/auth/local", "/auth/signout"):
                assert NOT_LEADER_CODE not in through.post(path, json={}).text, path
            # Reads are the standby's own (the in-memory controller answers some of them 503 itself: no alerting).
            for method, path in routes:
                if method == "GET" and path != "/api/v1/events":
                    answer = through.get(path)
                    assert NOT_LEADER_CODE not in answer.text, path
                    assert LEADER_HEADER not in answer.headers, path
        # Each write reached the leader once, as it reached the reference: the two logs hold the same actions.
        assert [a for _, a, _ in audit_names(both.leader_url, token)] == [
            a for _, a, _ in audit_names(reference_url, token)
        ]


def test_a_write_through_the_standby_changes_the_leader_and_the_audit_names_the_caller(tmp_path: Path) -> None:
    with pair(tmp_path) as both:
        token = mint(both.leader, "admin", name="ops-alice")
        with httpx.Client(base_url=both.standby_url, timeout=30, headers=bearer(token)) as client:
            answer = client.post("/api/v1/inventory/reload", json={}, headers={"User-Agent": "alice-cli/1.0"})
        assert answer.status_code == 200, answer.text
        assert both.leader.audit_log is not None
        entries = audit_names(both.leader_url, token)
        assert entries[0][:2] == ("ops-alice", "reload-inventory")
        assert entries[0][2].endswith("alice-cli/1.0"), entries[0]  # the caller's user agent came through
        assert audit_names(both.standby_url, token) == []  # the standby wrote nothing itself


def test_a_request_already_forwarded_is_refused_at_a_standby_never_sent_again(tmp_path: Path) -> None:
    with pair(tmp_path) as both:
        token = mint(both.leader, "admin", name="ops-alice")
        with httpx.Client(base_url=both.standby_url, timeout=30, headers=bearer(token)) as client:
            # Planted: as if another standby had forwarded it here, believing this replica leads.
            answer = client.post("/api/v1/inventory/reload", json={}, headers={FORWARDED_BY_HEADER: "ctrl-b pid 7"})
        assert answer.status_code == 503
        assert code_of(answer) == NOT_LEADER_CODE
        assert answer.headers[LEADER_HEADER] == both.leader_url
        assert audit_names(both.leader_url, token) == []  # nothing reached the leader


def test_a_leader_that_does_not_answer_gets_the_not_leader_refusal(tmp_path: Path) -> None:
    away = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pair(tmp_path, leader_address=away) as both:
        token = mint(both.leader, "admin", name="ops-alice")
        with httpx.Client(base_url=both.standby_url, timeout=30, headers=bearer(token)) as client:
            answer = client.post("/api/v1/inventory/reload", json={})
        assert answer.status_code == 503
        assert code_of(answer) == NOT_LEADER_CODE
        assert answer.headers[LEADER_HEADER] == away
        assert answer.headers["Retry-After"] == "2"
        assert f"the leader at {away} does not answer now" in answer.json()["error"]["message"]


def test_a_leader_that_takes_the_write_and_never_answers_gets_504_outcome_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A socket that listens and never reads: the kernel takes the connection and the request, nobody answers.
    silent = bound_socket()
    silent.listen(8)
    monkeypatch.setattr(forwarding, "FORWARD_TIMEOUT_S", 1.0)
    try:
        with pair(tmp_path, leader_address=f"http://127.0.0.1:{silent.getsockname()[1]}") as both:
            token = mint(both.leader, "admin", name="ops-alice")
            with httpx.Client(base_url=both.standby_url, timeout=30, headers=bearer(token)) as client:
                answer = client.post("/api/v1/inventory/reload", json={})
    finally:
        silent.close()
    assert answer.status_code == 504
    assert code_of(answer) == OUTCOME_UNKNOWN_CODE
    message = answer.json()["error"]["message"]
    assert "may or may not have been made" in message
    assert "GET /api/v1/audit" in message


def test_the_body_limit_holds_at_the_standby_declared_or_streamed(tmp_path: Path) -> None:
    with pair(tmp_path) as both:
        token = mint(both.leader, "admin", name="ops-alice")
        big = b"x" * (DEFAULT_MAX_BODY_BYTES + 1)

        def streamed() -> Iterator[bytes]:  # chunked: no Content-Length to refuse it by
            for start in range(0, len(big), 8192):
                yield big[start : start + 8192]

        with httpx.Client(base_url=both.standby_url, timeout=30, headers=bearer(token)) as client:
            declared = client.post("/api/v1/inventory/reload", content=big)
            chunked = client.post("/api/v1/inventory/reload", content=streamed())
        assert (declared.status_code, code_of(declared)) == (413, "too-large")
        assert (chunked.status_code, code_of(chunked)) == (413, "too-large")
        assert audit_names(both.leader_url, token) == []  # nothing reached the leader


def test_with_nobody_leading_the_refusal_names_no_address(tmp_path: Path) -> None:
    with pair(tmp_path, leading=None) as both:
        token = mint(both.leader, "admin", name="ops-alice")
        with httpx.Client(base_url=both.standby_url, timeout=30, headers=bearer(token)) as client:
            answer = client.post("/api/v1/inventory/reload", json={})
    assert answer.status_code == 503
    assert code_of(answer) == NOT_LEADER_CODE
    assert LEADER_HEADER not in answer.headers
    assert answer.headers["Retry-After"] == "2"


def test_bad_tokens_through_a_standby_count_against_the_guesser_not_the_standby(tmp_path: Path) -> None:
    with pair(tmp_path) as both:
        good = mint(both.leader, "admin", name="ops-alice")
        # Two clients on two loopback addresses, both behind the same standby.
        guesser = httpx.Client(
            base_url=both.standby_url, timeout=30, transport=httpx.HTTPTransport(local_address="127.0.0.2")
        )
        other = httpx.Client(
            base_url=both.standby_url, timeout=30, transport=httpx.HTTPTransport(local_address="127.0.0.3")
        )
        with guesser, other:
            answers = [
                guesser.post("/api/v1/inventory/reload", json={}, headers=bearer(f"guess-{n}")).status_code
                for n in range(11)
            ]
            assert answers == [401] * 10 + [429]
            # Limited at the standby, on the guesser's address: even a good token waits now.
            assert guesser.post("/api/v1/inventory/reload", json={}, headers=bearer(good)).status_code == 429
            # Another caller behind the same standby writes as before: the leader counted no guess.
            answer = other.post("/api/v1/inventory/reload", json={}, headers=bearer(good))
            assert answer.status_code == 200, answer.text
        assert [(p, a) for p, a, _ in audit_names(both.leader_url, good)] == [("ops-alice", "reload-inventory")]


def test_bad_enrollment_tokens_through_a_standby_count_against_the_box_not_the_standby(tmp_path: Path) -> None:
    tokens = EnrollmentTokens(Store("sqlite://"))
    tokens.create_schema()
    clock = FakeClock()
    # Enrollment without a broker: a known token reaches "enrollment is off" (left unspent), an unknown one is a
    # guess; enough to see where guesses are counted.
    inventory = MemoryController.small(tmp_path / "enrolled-sites").inventory
    enrollment = Enrollment(tokens, broker=None, pki_dir=None, inventory=lambda: inventory, clock=clock)
    secret, _ = tokens.create("sh-pudong", created_by="ops-alice", now=clock.now())
    with pair(tmp_path, enrollment=enrollment) as both:
        guesser = httpx.Client(
            base_url=both.standby_url, timeout=30, transport=httpx.HTTPTransport(local_address="127.0.0.2")
        )
        box = httpx.Client(
            base_url=both.standby_url, timeout=30, transport=httpx.HTTPTransport(local_address="127.0.0.3")
        )
        with guesser, box:
            answers = [
                guesser.post("/api/v1/enroll", json={"token": f"guess-{n}", "box": "sh-pudong-gpu-01"}).status_code
                for n in range(11)
            ]
            assert answers == [401] * 10 + [429]
            # Another box behind the same standby reaches the leader, which is not limiting the standby.
            answer = box.post("/api/v1/enroll", json={"token": secret, "box": "sh-pudong-gpu-01"})
        assert answer.status_code == 503, answer.text
        assert code_of(answer) == "unavailable"
        assert "box enrollment is off" in answer.json()["error"]["message"]
    with pair(tmp_path / "off") as both, httpx.Client(base_url=both.standby_url, timeout=30) as client:
        # No enrollment on the standby (nor, with the same settings, on the leader): the route says so itself.
        off = client.post("/api/v1/enroll", json={"token": "any", "box": "sh-pudong-gpu-01"})
    assert off.status_code == 503
    assert code_of(off) == "unavailable"


def test_the_consoles_session_and_csrf_token_pass_through_a_standby(tmp_path: Path) -> None:
    database = Store(f"sqlite:///{tmp_path / 'controller.db'}")
    upgrade_schema(database)
    try:
        with pair(tmp_path) as both:
            clock = FakeClock(start=time.time())
            for memory in (both.leader, both.standby):
                memory.clock = clock
                memory.sessions = Sessions(database)
                memory.local_users = LocalUsers(database)
            assert both.leader.local_users is not None
            both.leader.local_users.add("ops-1", "ops", None, "correct horse battery staple", now=clock.now())
            # The app reads sessions at start: serve the two again over them.
            with (
                serving(create_app(Settings(), controller=both.leader)) as leader_url,
                serving(create_app(Settings(), controller=both.standby)) as standby_url,
            ):
                both.standby.leadership = Standby(LEADER, leader_url)
                with httpx.Client(base_url=standby_url, timeout=30) as browser:
                    signed = browser.post(
                        "/auth/local", json={"name": "ops-1", "password": "correct horse battery staple"}
                    )
                    assert signed.status_code == 200, signed.text
                    csrf = str(signed.json()["csrf"])
                    assert browser.cookies[COOKIE]
                    refused = browser.post("/api/v1/inventory/reload", json={})
                    assert refused.status_code == 403  # the standby checks the CSRF token itself
                    answer = browser.post("/api/v1/inventory/reload", json={}, headers={"X-CSRF-Token": csrf})
                    assert answer.status_code == 200, answer.text
                token = mint(both.leader, "admin", name="ops-reader")
                assert [(p, a) for p, a, _ in audit_names(leader_url, token)] == [("ops-1", "reload-inventory")]
    finally:
        database.close()


@pytest.mark.parametrize(
    ("view", "says"),
    [
        (LeaderView(LEADER, "http://ctrl-a:8000", 7, 1.0, False, 4.0), "epoch 7 at http://ctrl-a:8000: send changes"),
        (LeaderView(None, None, 7, None, False, None), "no controller leads the database now"),
        (None, "no controller leads the database now"),
    ],
)
def test_the_refusal_says_who_leads_or_that_nobody_does(view: LeaderView | None, says: str) -> None:
    assert says in refusal_message(view)


def test_only_a_write_at_a_standby_with_a_named_leader_that_was_not_forwarded_yet_is_forwarded() -> None:
    named = LeaderView(LEADER, "http://ctrl-a:8000", 7, 1.0, False, 4.0)
    unnamed = LeaderView(LEADER, None, 7, 1.0, False, 4.0)
    write = {"method": "POST", "path": "/api/v1/inventory/reload"}
    assert handling(**write, leads=False, forwarded=False, view=named) == "forward"
    assert handling(**write, leads=True, forwarded=True, view=None) == "serve"
    assert handling(**write, leads=False, forwarded=True, view=named) == "refuse"
    assert handling(**write, leads=False, forwarded=False, view=unnamed) == "refuse"
    assert handling(**write, leads=False, forwarded=False, view=None) == "refuse"
    assert handling(method="GET", path="/api/v1/sites", leads=False, forwarded=False, view=named) == "serve"
    assert handling(method="POST", path="/auth/local", leads=False, forwarded=False, view=named) == "serve"


def test_hop_by_hop_and_client_address_headers_do_not_pass() -> None:
    sent = [
        (b"host", b"standby:8000"),
        (b"connection", b"keep-alive, x-secret-hop"),
        (b"x-secret-hop", b"1"),
        (b"x-forwarded-for", b"10.9.9.9"),
        (b"forwarded", b"for=10.9.9.9"),
        (b"authorization", b"Bearer abc"),
        (b"cookie", b"edgefleet_session=x"),
        (b"x-csrf-token", b"t"),
        (b"content-length", b"2"),
        (b"x-edgefleet-forwarded-by", b"a claim"),
    ]
    passed = forwarded_headers(sent, "ctrl-b pid 7")
    assert passed == [
        (b"authorization", b"Bearer abc"),
        (b"cookie", b"edgefleet_session=x"),
        (b"x-csrf-token", b"t"),
        (FORWARDED_BY_HEADER.encode(), b"ctrl-b pid 7"),
    ]
    answered = [(b"set-cookie", b"a=1"), (b"set-cookie", b"b=2"), (b"transfer-encoding", b"chunked")]
    assert answer_headers(answered, b"{}") == [
        (b"set-cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
        (b"content-length", b"2"),
    ]


def test_every_write_open_without_an_api_token_is_one_the_standby_admits_its_own_way(tmp_path: Path) -> None:
    # The standby admits a forwarded caller with require_access; a write route open without it (its own
    # credential) would be refused 401 at a standby: each must be sign-in (served by every replica) or ENROLL.
    app = create_app(Settings(), controller=MemoryController.small(tmp_path))
    open_writes = {(m, p) for m, p in open_routes(app) if m not in READ_METHODS}
    assert ENROLL in open_writes
    assert {(m, p) for m, p in open_writes if not p.startswith(ANY_REPLICA_PREFIXES)} == {ENROLL}
