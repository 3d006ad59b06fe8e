"""Every error the HTTP API answers has one JSON shape: ``{"error": {"code": "...", "message": "..."}}``, where
the message says what went wrong and what to do about it.

Routes raise ``ApiError`` subclasses (``Unauthorized``, ``Forbidden``, ``NotFound``, ``Conflict``, ``Invalid``,
``TooManyRequests``, ``Unavailable``); the console's session store raises ``SessionRefused`` (401 or 403). A 401 on
a console page asked for by a browser (GET, ``Accept: text/html``) is a redirect to ``/signin`` instead.
``install`` (called by ``create_app``) turns them, Starlette's own HTTP errors (unknown path, wrong method),
FastAPI's validation errors (422, reworded to name the parameter; a body that is no JSON names the line and column),
a body over the limit (413, counted as it streams in, never read ahead) and any unexpected exception (500: logged with
its traceback, never sent) into that shape.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, ClassVar, Final
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edgefleet.cloud.access.sessions import SessionRefused
from edgefleet.cloud.api.fields import MAX_COMMENT_CHARS, PRINTABLE_MESSAGES, shown
from edgefleet.cloud.settings import DEFAULT_MAX_BODY_BYTES

log = logging.getLogger(__name__)

# Stable words clients may branch on; the message is for people and may change.
CODE_BY_STATUS: dict[int, str] = {
    400: "bad-request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    413: "too-large",
    422: "invalid-request",
    429: "too-many-requests",
    500: "internal",
    503: "unavailable",
}


class ApiError(Exception):
    """An answer other than 2xx that a route chose to give."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad-request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        # Headers the answer carries besides the body (``WWW-Authenticate``, ``Retry-After``).
        self.headers: dict[str, str] = {}


class TooManyRequests(ApiError):
    """Too many failed sign-ins from one source; ``retry_after_s`` goes out as ``Retry-After``."""

    status = 429
    code = "too-many-requests"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.headers["Retry-After"] = str(retry_after_s)


class NotFound(ApiError):
    status = 404
    code = "not-found"


class Unauthorized(ApiError):
    """No caller is known: no token, or one that is unknown, expired or revoked (the same answer for each, so
    that a guess learns nothing). Says how to get a token; answers ``WWW-Authenticate: Bearer`` as RFC 6750 asks.
    """

    status = 401
    code = "unauthenticated"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.headers["WWW-Authenticate"] = "Bearer"


class Forbidden(ApiError):
    status = 403
    code = "forbidden"


class Conflict(ApiError):
    """The request is right, but not now: the alert or silence is in a state that does not allow it."""

    status = 409
    code = "conflict"


class Invalid(ApiError):
    """A body that parses but cannot be taken (a silence naming an unknown site, ...); lists every problem."""

    status = 422
    code = "invalid-request"


class TooManyGuesses(ApiError):
    """This address sent too many unknown tokens lately; it may try again after ``retry_after_s``."""

    status = 429
    code = "too-many-requests"

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(
            f"too many unknown tokens from this address; try again in {retry_after_s} s with a valid token "
            "('edgefleet tokens list' shows which are active)"
        )
        self.headers["Retry-After"] = str(retry_after_s)


class Unavailable(ApiError):
    """Something the answer needs (the database) cannot be used now; asking again later may work."""

    status = 503
    code = "unavailable"


# Fields that once named who acts ("by", "created_by"): the actor is now who signed in, never what a request says.
# A client that still sends one is refused, naming it, rather than silently not recorded as it asked.
ACTOR_FIELDS: Final = frozenset({"by", "created_by"})
ACTOR_REFUSED: Final = "the actor is who signed in (the token's or session's name); drop {field!r}"


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content=error_body(code, message))


def describe_validation_errors(errors: Sequence[Any], body: object = None) -> str:
    """One sentence per invalid parameter, e.g. "query parameter 'health': Input should be 'ok' or ... (got 'x')";
    a body that is no JSON is named by line and column (``body`` is the text FastAPI could not parse)."""
    parts = []
    for error in errors:
        if error.get("type") == "json_invalid":
            parts.append(_json_invalid(error, body))
            continue
        loc = [str(p) for p in error.get("loc", ())]
        where, name = (loc[0], ".".join(loc[1:])) if len(loc) > 1 else ("request", ".".join(loc))
        kind = {"query": "query parameter", "path": "path parameter", "body": "body field", "header": "header"}.get(
            where, where
        )
        message = error.get("msg", "is invalid")
        if error.get("type") == "extra_forbidden" and name in ACTOR_FIELDS:
            parts.append(f"{kind} {name!r}: {ACTOR_REFUSED.format(field=name)}")
            continue
        if error.get("type") == "string_pattern_mismatch":
            message = PRINTABLE_MESSAGES.get(error.get("ctx", {}).get("pattern"), message)
        # Our own refusals (fields.py) quote what they were given, in the words of their unit.
        quoted = "given" in error.get("ctx", {})
        got = f" (got {shown(error['input'])})" if error.get("input") is not None and not quoted else ""
        parts.append(f"{kind} {name!r}: {message}{got}")
    return "; ".join(parts) + "; see /docs for the parameters each route takes"


def _json_invalid(error: Any, body: object) -> str:
    """ "the body is not valid JSON: Expecting value at line 2 column 14 (position 36)"."""
    loc = error.get("loc", ())
    position = loc[-1] if loc and isinstance(loc[-1], int) else None
    reason = error.get("ctx", {}).get("error", "it cannot be parsed")
    if position is None:
        return f"the body is not valid JSON: {reason}"
    if isinstance(body, str):
        line = body.count("\n", 0, position) + 1
        column = position - body.rfind("\n", 0, position)
        return f"the body is not valid JSON: {reason} at line {line} column {column} (position {position})"
    return f"the body is not valid JSON: {reason} at position {position}"


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    if exc.status == 401 and wants_page(request):
        return to_signin(request)
    response = error_response(exc.status, exc.code, exc.message)
    response.headers.update(exc.headers)
    return response


async def _session_refused(request: Request, exc: Exception) -> Response:
    # Raised by the console's session store (edgefleet.cloud.access.sessions), which knows no HTTP framework.
    assert isinstance(exc, SessionRefused)
    if exc.status == 401 and wants_page(request):
        return to_signin(request)
    return error_response(exc.status, exc.code, exc.message)


def wants_page(request: Request) -> bool:
    """A browser asking for a console page (not the API, not an asset): a refusal sends it to sign in instead."""
    path = request.url.path
    return (
        request.method in ("GET", "HEAD")
        and not path.startswith(("/api/", "/console/", "/auth/", "/signin"))
        and "text/html" in request.headers.get("accept", "")
    )


def to_signin(request: Request) -> RedirectResponse:
    """To the sign-in page, which brings the person back to the page they asked for."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/signin?{urlencode({'next': target})}", status_code=303)


# What FastAPI answers (400) when the body is JSON-typed but cannot be decoded at all: not UTF-8, or an integer
# longer than Python converts. Reworded here, as a 422 like every other refused input.
_BODY_UNREADABLE: Final = "There was an error parsing the body"


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc.__cause__, _TooLarge):
        # FastAPI wraps whatever stops the body's reading as "cannot parse"; BodyLimit answers it (413).
        raise exc.__cause__
    if exc.status_code == 400 and exc.detail == _BODY_UNREADABLE:
        why = "it is not UTF-8 text" if isinstance(exc.__cause__, UnicodeDecodeError) else "it holds a number too long"
        return error_response(
            422, CODE_BY_STATUS[422], f"the body cannot be read as JSON: {why}; send a JSON object (see /docs)"
        )
    if exc.status_code == 404:
        message = f"no route {request.url.path!r}; the API lives under /api/v1 (see /docs)"
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path!r}; see /docs for what each path takes"
    else:
        message = str(exc.detail)
    response = error_response(exc.status_code, CODE_BY_STATUS.get(exc.status_code, "error"), message)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(422, CODE_BY_STATUS[422], describe_validation_errors(exc.errors(), exc.body))


class InternalErrors:
    """ASGI middleware: an exception no handler took becomes a logged 500 with the JSON error body.

    Done here rather than with an ``Exception`` handler because Starlette re-raises after such a handler, so the
    server would log the same traceback a second time without our context.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception(
                "Failed to answer API request", extra={"method": scope.get("method"), "path": scope.get("path")}
            )
            if started:
                raise  # half a response is out; only the server can end the connection now
            response = error_response(
                500,
                CODE_BY_STATUS[500],
                "the controller failed to answer this request; the controller's log has the details",
            )
            await response(scope, receive, send)


# The largest body a route takes is a release manifest (60,000 characters, ``rollout_schemas``): 64 KiB is ample,
# and a larger body is refused as it arrives. ``EDGEFLEET_MAX_BODY_BYTES`` (``Settings.max_body_bytes``) sets it.
MAX_BODY_BYTES: Final = DEFAULT_MAX_BODY_BYTES


class _TooLarge(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` is answered 413 in the error shape, whether its
    Content-Length says so (refused before a byte is read) or it streams (chunked) past the limit. Nothing is
    read ahead: the route reads the body as it comes, through a ``receive`` that counts, and the chunk that goes
    over the limit ends the request there, so at most ``max_bytes`` plus one chunk is ever held."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", ())).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send, int(declared))
            return
        size = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal size
            message = await receive()
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > self.max_bytes:
                    raise _TooLarge(size)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge as exc:
            if started:
                raise  # a route that answered before reading its body whole; only the server can end it now
            await self._refuse(scope, receive, send, exc.size)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, size: int) -> None:
        response = error_response(
            413,
            CODE_BY_STATUS[413],
            f"the request body is over {self.max_bytes // 1024} KiB ({size} bytes at least), more than any route "
            f"takes (a silence's comment holds {MAX_COMMENT_CHARS} characters at most); send less",
        )
        await response(scope, receive, send)


def install(app: FastAPI, *, max_body_bytes: int = MAX_BODY_BYTES) -> None:
    """Give ``app`` the JSON error shape for every error it can answer, and its limit on request bodies."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(SessionRefused, _session_refused)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    app.add_middleware(InternalErrors)
