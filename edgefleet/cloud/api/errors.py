"""Every error the HTTP API answers has one JSON shape: ``{"error": {"code": "...", "message": "..."}}``, where
the message says what went wrong and what to do about it.

Routes raise ``ApiError`` subclasses (``NotFound``, ``Forbidden``, ``Conflict``, ``Invalid``, ``Unavailable``); ``install`` (called by ``create_app``) turns
them, Starlette's own HTTP errors (unknown path, wrong method), FastAPI's validation errors (422, reworded to name
the parameter) and any unexpected exception (500: logged with its traceback, never sent) into that shape.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

# Stable words clients may branch on; the message is for people and may change.
CODE_BY_STATUS: dict[int, str] = {
    400: "bad-request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    422: "invalid-request",
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


class NotFound(ApiError):
    status = 404
    code = "not-found"


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


class Unavailable(ApiError):
    """Something the answer needs (the database) cannot be used now; asking again later may work."""

    status = 503
    code = "unavailable"


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content=error_body(code, message))


def describe_validation_errors(errors: Sequence[Any]) -> str:
    """One sentence per invalid parameter, e.g. "query parameter 'health': Input should be 'ok' or ... (got 'x')"."""
    parts = []
    for error in errors:
        loc = [str(p) for p in error.get("loc", ())]
        where, name = (loc[0], ".".join(loc[1:])) if len(loc) > 1 else ("request", ".".join(loc))
        kind = {"query": "query parameter", "path": "path parameter", "body": "body field", "header": "header"}.get(
            where, where
        )
        got = f" (got {error['input']!r})" if error.get("input") is not None else ""
        parts.append(f"{kind} {name!r}: {error.get('msg', 'is invalid')}{got}")
    return "; ".join(parts) + "; see /docs for the parameters each route takes"


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
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
    return error_response(422, CODE_BY_STATUS[422], describe_validation_errors(exc.errors()))


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


def install(app: FastAPI) -> None:
    """Give ``app`` the JSON error shape for every error it can answer."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_middleware(InternalErrors)
