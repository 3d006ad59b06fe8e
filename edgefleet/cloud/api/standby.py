"""A standby sends every state-changing request on to the leader and returns its answer: never a silent loss.

Only the leader writes (``edgefleet.cloud.leading``). A request that would change state (any method but GET, HEAD
and OPTIONS; sign-in and sign-out under ``/auth/`` excepted, which every replica serves) reaching a standby is
handled here, so that a Service or load balancer in front of every replica can send writes to any of them:

- While a leader with a known address leads, the standby first admits the caller itself (``deps.require_access``,
  the check every route makes: a bearer token, or the console's session cookie with its ``X-CSRF-Token``), then
  sends the request on to the leader (same method, path, query, body; the headers but the hop-by-hop ones, ``Host``
  and the client-address ones, plus ``X-Edgefleet-Forwarded-By: <this replica>``) and returns the leader's answer
  (status, headers but the hop-by-hop ones, body). The leader checks the caller again and decides as if called
  directly: its role checks, its validation, its audit entry, which names the caller (the token's or session's
  name) as without forwarding; the entry's source is the standby's address with the caller's user agent, and the
  standby's log line for each forward names the caller's own address.
- Why the standby admits the caller first: the leader sees the standby's address as the source, so the leader's
  limiter on bad token guesses (``deps.require_access``: 429 after 10 per address) would count every caller behind
  the standby together, and one guesser would lock them all out. The standby counts guesses on the caller's real
  address with its own limiter and forwards only callers it admitted, so guesses never reach the leader. A box's
  enrollment (``POST /api/v1/enroll``, the one write no access check admits) is admitted the same way: the standby
  reads (never spends) the enrollment token and counts an unknown, used or expired one on the box's address with
  its own ``enrollment_guesses``, as the route does; only the leader spends it. No
  header lets a client claim another source address: the client-address headers (``X-Forwarded-For``,
  ``Forwarded``, ``X-Real-IP``) are dropped, not passed. What reaches the leader's limiter is only a token that
  one replica admitted and the other refused in the same instant (revoked, expired or spent between the two
  checks).
- No loops: a request that carries ``X-Edgefleet-Forwarded-By`` is never forwarded again. Reaching a replica that
  does not lead (a takeover between the two hops) it is refused as below; the client retries.
- Refused ``503`` ``{"error": {"code": "not-leader", ...}}`` naming the leader (host, pid, since, address), with
  its address in ``X-Edgefleet-Leader`` (absent while nobody leads) and ``Retry-After``, when nothing was sent: no
  leader (a takeover under way), a leader that did not say its address, the database away, a request already
  forwarded, or a leader that refuses the connection. Safe to retry: nothing was done.
- ``504`` ``outcome-unknown`` when the request went out and no answer came (``FORWARD_TIMEOUT_S``, or the connection
  dropped): the change may or may not have been made; the message says so and how to check (the object itself,
  or ``GET /api/v1/audit``) before retrying, and never claims either.

The body limit (``EDGEFLEET_MAX_BODY_BYTES``) holds: this middleware sits inside ``errors.BodyLimit``, whose
counting ``receive`` it reads the body through. Answers are read whole (a write's answer is small). Reads are
served by every replica from its own live state, never forwarded.

ASGI middleware, installed by ``create_app`` around every route: a route added later is covered without a word.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from typing import Final, Literal

import httpx
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edgefleet.cloud.access.limiting import GuessLimiter
from edgefleet.cloud.access.sessions import SessionRefused
from edgefleet.cloud.api.deps import FleetReader, require_access
from edgefleet.cloud.api.errors import ApiError, error_response
from edgefleet.cloud.enrolling import TOKEN_REFUSED, Enrollment
from edgefleet.cloud.leading import Leadership, LeaderView, describe_holder
from edgefleet.errors import EdgefleetError

log = logging.getLogger(__name__)

# Methods that only read: every replica serves them.
READ_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
# Signing in and out writes only the browser's own session (the shared database's, never fenced): every replica
# serves it, or with two replicas behind one Service every other sign-in would be refused.
ANY_REPLICA_PREFIXES: Final = ("/auth/",)
LEADER_HEADER: Final = "X-Edgefleet-Leader"
# The one write no access check admits (besides signing in): a box's enrollment, whose credential is its
# single-use enrollment token; the standby checks that token (a read) instead (``_admit_box``).
ENROLL: Final = ("POST", "/api/v1/enroll")
# Set by a standby on the request it forwards (its host and pid): the leader's log can tell, and no replica
# forwards such a request again.
FORWARDED_BY_HEADER: Final = "X-Edgefleet-Forwarded-By"
NOT_LEADER_CODE: Final = "not-leader"
OUTCOME_UNKNOWN_CODE: Final = "outcome-unknown"
# A takeover comes within a lease; the client may try again (the leader or this replica) after this long.
RETRY_AFTER_S: Final = 2
# Connecting to the leader: a leader on the same network answers a connect in milliseconds; past this it is away,
# nothing was sent, and the caller is told to retry (503).
FORWARD_CONNECT_TIMEOUT_S: Final = 3.0
# The whole answer: the slowest write (an inventory reload, a restart asking a cluster) takes seconds; the CLI
# waits 30 s for an answer, so the standby gives up a little earlier and can still tell the caller what it knows.
FORWARD_TIMEOUT_S: Final = 25.0
# Headers that belong to one connection (RFC 9110 7.6.1), and those a hop sets itself: never passed on.
HOP_BY_HOP: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
# Headers in which a client could claim another source address: dropped, so that nobody's claim reaches the leader.
CLIENT_ADDRESS_HEADERS: Final = frozenset(
    {"x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "forwarded", "x-real-ip"}
)
# The answer is read decoded (httpx), so its encoding and length are the standby's to set again.
ANSWER_DROPPED: Final = HOP_BY_HOP | {"content-encoding"}

Handling = Literal["serve", "refuse", "forward"]


def handling(*, method: str, path: str, leads: bool, forwarded: bool, view: LeaderView | None) -> Handling:
    """What a replica does with a request: serve it here, refuse it 503 naming the leader, or forward it."""
    if method in READ_METHODS or path.startswith(ANY_REPLICA_PREFIXES) or leads:
        return "serve"
    if forwarded or view is None or view.leader is None or not view.address:
        return "refuse"  # never a second hop; nobody to send it to
    return "forward"


def refusal_message(view: LeaderView | None) -> str:
    """What a standby says to a write it cannot forward: who leads and where to send it."""
    if view is None or view.leader is None:
        return (
            "this controller is a standby and no controller leads the database now (a takeover is under way); "
            f"try again in {RETRY_AFTER_S} s"
        )
    where = f" at {view.address}" if view.address else ""
    return (
        f"this controller is a standby; the leader is {describe_holder(view.leader)}, epoch {view.epoch}{where}: "
        "send changes to the leader"
    )


def unknown_outcome_message(method: str, path: str, address: str, why: str) -> str:
    """What a standby says when the forwarded write went out and no answer came back."""
    return (
        f"this controller is a standby and sent {method} {path} on to the leader at {address}, which gave no answer "
        f"({why}): the change may or may not have been made. Check before sending it again: read the object it "
        "changes, or GET /api/v1/audit (every change, with who made it) on any controller"
    )


def forwarded_headers(raw: list[tuple[bytes, bytes]], forwarder: str) -> list[tuple[bytes, bytes]]:
    """The request's headers as sent on to the leader: hop-by-hop ones (and those ``Connection`` names), ``Host``
    and client-address claims dropped, ``X-Edgefleet-Forwarded-By`` set."""
    named = {
        token.strip().lower()
        for name, value in raw
        if name.lower() == b"connection"
        for token in value.decode("latin-1").split(",")
    }
    dropped = HOP_BY_HOP | CLIENT_ADDRESS_HEADERS | named | {FORWARDED_BY_HEADER.lower()}
    kept = [(name, value) for name, value in raw if name.decode("latin-1").lower() not in dropped]
    return [*kept, (FORWARDED_BY_HEADER.encode(), forwarder.encode("latin-1", "replace"))]


def answer_headers(raw: list[tuple[bytes, bytes]], body: bytes) -> list[tuple[bytes, bytes]]:
    """The leader's answer's headers as returned to the caller: hop-by-hop ones dropped, the length set again."""
    kept = [(name, value) for name, value in raw if name.decode("latin-1").lower() not in ANSWER_DROPPED]
    return [*kept, (b"content-length", str(len(body)).encode())]


def this_replica() -> str:
    """How a forward names the standby that sent it: its host and process id."""
    return f"{socket.gethostname()} pid {os.getpid()}"


class StandbyForwardsWrites:
    """ASGI middleware: state-changing requests are served on the leader, forwarded to it by a standby, or
    refused (module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.forwarder = this_replica()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = str(scope["method"]), str(scope.get("path", ""))
        leadership: Leadership = scope["state"]["controller"].leadership
        leads = leadership.leader if method not in READ_METHODS else True  # a read needs no lease row
        view: LeaderView | None = None
        if not leads:
            try:
                view = leadership.view()
            except EdgefleetError:
                view = None  # the database is away: nobody can be named, and the write could not be made anyway
        forwarded = FORWARDED_BY_HEADER.lower() in Headers(scope=scope)
        decided = handling(method=method, path=path, leads=leads, forwarded=forwarded, view=view)
        if decided == "forward" and (method, path) == ENROLL and scope["state"].get("enrollment") is None:
            decided = "serve"  # enrollment is off here as on the leader (the same settings): the route says so
        if decided == "serve":
            await self.app(scope, receive, send)
        elif decided == "refuse":
            await _refuse(view, scope, receive, send)
        else:
            assert view is not None
            assert view.address is not None
            await self._forward(view, view.address, scope, receive, send)

    async def _forward(self, view: LeaderView, address: str, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        client = request.client.host if request.client is not None else "unknown"
        method, path = str(scope["method"]), str(scope.get("path", ""))
        body = await _read_body(receive)  # through errors.BodyLimit's counting receive: its limit holds
        # The same check the route would make, on the caller's own address (module docstring: guesses).
        if (method, path) == ENROLL:
            caller = f"a box enrolling from {client}"
            refused = await run_in_threadpool(_admit_box, request, body, client)
        else:
            caller, refused = await run_in_threadpool(_admit_caller, request)
        if refused is not None:
            await refused(scope, receive, send)
            return
        query = scope.get("query_string", b"")
        url = address.rstrip("/") + scope.get("raw_path", path.encode()).decode("latin-1")
        if query:
            url += "?" + query.decode("latin-1")
        headers = forwarded_headers(list(scope.get("headers", ())), self.forwarder)
        timeout = httpx.Timeout(FORWARD_TIMEOUT_S, connect=FORWARD_CONNECT_TIMEOUT_S)
        try:
            async with httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False) as http:
                answer = await http.request(method, url, content=body, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            # Nothing was sent: as if no leader could be named; the caller retries.
            log.warning("Cannot forward a write to the leader", extra={"leader": address, "error": str(exc)})
            await _refuse(view, scope, receive, send, also=f"; the leader at {address} does not answer now")
            return
        except httpx.TransportError as exc:
            why = (
                f"none within {FORWARD_TIMEOUT_S:.0f} s"
                if isinstance(exc, httpx.TimeoutException)
                else "the connection ended"
            )
            log.warning(
                "A forwarded write got no answer from the leader",
                extra={"leader": address, "method": method, "path": path, "caller": caller, "error": str(exc)},
            )
            unknown = error_response(504, OUTCOME_UNKNOWN_CODE, unknown_outcome_message(method, path, address, why))
            await unknown(scope, receive, send)
            return
        log.info(
            "Forwarded a write to the leader",
            extra={
                "leader": address,
                "method": method,
                "path": path,
                "caller": caller,
                "client": client,
                "status": answer.status_code,
            },
        )
        content = answer.content
        raw = [(name, value) for name, value in answer.headers.raw]
        await send(
            {"type": "http.response.start", "status": answer.status_code, "headers": answer_headers(raw, content)}
        )
        await send({"type": "http.response.body", "body": content})


def _admit_caller(request: Request) -> tuple[str, Response | None]:
    """(who calls, None) when ``deps.require_access`` admits the request, else (why not, its refusal)."""
    try:
        principal = require_access(request)
    except ApiError as exc:
        refused = error_response(exc.status, exc.code, exc.message)
        refused.headers.update(exc.headers)
        return exc.code, refused
    except SessionRefused as exc:
        return exc.code, error_response(exc.status, exc.code, exc.message)
    return principal.name, None


def _admit_box(request: Request, body: bytes, address: str) -> Response | None:
    """None when a box's enrollment may go to the leader; else the answer the route would give. Its credential is
    a single-use enrollment token, which only the leader spends: here it is read, not spent, and a token no
    enrollment would take counts as a failed guess on the box's own address, as the route counts it."""
    controller: FleetReader = request.state.controller
    enrollment: Enrollment = request.state.enrollment
    limiter: GuessLimiter = request.state.enrollment_guesses
    now = controller.clock.monotonic()
    wait = limiter.retry_after(address, now=now)
    if wait is not None:
        answer = error_response(
            429, "too-many-requests", f"too many failed enrollment tokens from {address}; try again in {wait} s"
        )
        answer.headers["Retry-After"] = str(wait)
        return answer
    try:
        sent = json.loads(body)
    except ValueError:
        return None  # the leader answers 422, naming what is wrong; no token, no guess
    token = sent.get("token") if isinstance(sent, dict) else None
    if not isinstance(token, str):
        return None
    try:
        usable = enrollment.tokens.usable(token, now=controller.clock.now())
    except EdgefleetError as exc:
        return error_response(503, "unavailable", f"cannot check the enrollment token now: {exc}; try again shortly")
    if usable:
        return None
    limiter.failed(address, now=now)
    return error_response(401, "unauthenticated", TOKEN_REFUSED)


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _refuse(view: LeaderView | None, scope: Scope, receive: Receive, send: Send, *, also: str = "") -> None:
    response = error_response(503, NOT_LEADER_CODE, refusal_message(view) + also)
    response.headers["Retry-After"] = str(RETRY_AFTER_S)
    if view is not None and view.leader is not None and view.address:
        response.headers[LEADER_HEADER] = view.address
    await response(scope, receive, send)
