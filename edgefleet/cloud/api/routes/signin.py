"""The console's sign-in: the page (``GET /signin``), the company provider's round trip (``GET /auth/oidc/login``
then ``GET /auth/oidc/callback``), local users (``POST /auth/local``), signing out (``POST /auth/signout``) and
who is signed in (``GET /api/v1/me``).

Sign-in itself is open (it makes the session), so these routes are the only ones outside the access check but
``/api/v1/me``; the open ones are left out of the OpenAPI, which documents the API a signed-in caller uses
(docs/security.md documents them). A sign-in ends in the ``edgefleet_session`` cookie (server-side session,
``edgefleet.cloud.access.sessions``) and the ``edgefleet_csrf`` cookie the console's script sends back as
``X-CSRF-Token``. Failed sign-ins (a wrong password, a refused provider answer) are counted per source address
and answered 429 with ``Retry-After`` past the limit. Every refusal is a 4xx in the API's error shape.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Annotated, Final
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from edgefleet.cloud.access.authorizing import Principal
from edgefleet.cloud.access.limiting import GuessLimiter
from edgefleet.cloud.access.local_users import LocalUsers
from edgefleet.cloud.access.oidc import OidcClient, OidcRefused
from edgefleet.cloud.access.sessions import COOKIE, CSRF_COOKIE, Session, Sessions, Started
from edgefleet.cloud.api.deps import ControllerDep, PrincipalDep
from edgefleet.cloud.api.errors import (
    ApiError,
    Forbidden,
    Invalid,
    TooManyRequests,
    Unauthorized,
    Unavailable,
)
from edgefleet.cloud.api.schemas import error_responses
from edgefleet.cloud.console.assets import static_dir

# The cookie that ties a provider round trip to the browser that started it; it lives as long as the sign-in may.
SIGNIN_COOKIE: Final = "edgefleet_signin"
SIGNIN_COOKIE_PATH: Final = "/auth/oidc"
SIGNIN_COOKIE_S: Final = 600
WRONG_PASSWORD: Final = "wrong user name or password"


@dataclass
class SignIn:
    """What the sign-in routes hold for the app's life (the lifespan state's ``signin``)."""

    oidc: OidcClient | None
    limiter: GuessLimiter = field(default_factory=GuessLimiter)


def get_signin(request: Request) -> SignIn:
    signin: SignIn = request.state.signin
    return signin


def get_sessions(controller: ControllerDep) -> Sessions:
    sessions = controller.sessions
    if sessions is None:
        raise Unavailable("this controller keeps no console sessions; start it with 'edgefleet cloud serve'")
    return sessions


SignInDep = Annotated[SignIn, Depends(get_signin)]
SessionsDep = Annotated[Sessions, Depends(get_sessions)]

router = APIRouter(include_in_schema=False)
me_router = APIRouter(tags=["console"], responses=error_responses(403, 500))


class Me(BaseModel):
    name: str = Field(description="Who is signed in: the actor recorded for what they do.")
    role: str
    sites: list[str] | None = Field(description="The sites a site-staff principal is scoped to; null: every site.")
    via: str | None = Field(description="How the session was made: oidc or local; null without a console session.")
    csrf: str | None = Field(description="Send it as X-CSRF-Token with every POST, PUT, PATCH or DELETE.")
    expires_at: float | None = Field(description="When the console session ends (Unix seconds).")


@router.get("/signin")
def signin_page() -> FileResponse:
    return FileResponse(static_dir() / "signin.html", headers={"Cache-Control": "no-cache"})


@router.get("/auth/methods")
def methods(signin: SignInDep, controller: ControllerDep) -> dict[str, bool]:
    """What the sign-in page offers: the provider's button, the local form."""
    return {"oidc": signin.oidc is not None, "local": controller.local_users is not None}


@router.get("/auth/oidc/login")
def oidc_login(request: Request, signin: SignInDep, controller: ControllerDep, next: str = "/") -> RedirectResponse:
    client = _oidc(signin)
    try:
        begun = client.begin(_local_path(next), now=controller.clock.now())
    except OidcRefused as exc:
        raise _refusal(exc) from None
    response = RedirectResponse(begun.url, status_code=303)
    response.set_cookie(
        SIGNIN_COOKIE,
        begun.state,
        max_age=SIGNIN_COOKIE_S,
        path=SIGNIN_COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=_secure(request, controller.sessions),
    )
    return response


@router.get("/auth/oidc/callback")
def oidc_callback(
    request: Request, signin: SignInDep, controller: ControllerDep, sessions: SessionsDep
) -> RedirectResponse:
    client = _oidc(signin)
    source = _source(request)
    now = controller.clock.now()
    _check_limit(signin, source, now)
    try:
        principal, next_path = client.finish(
            dict(request.query_params), browser_state=request.cookies.get(SIGNIN_COOKIE), now=now
        )
    except OidcRefused as exc:
        if 400 <= exc.status < 500:
            signin.limiter.failed(source, now=now)
        raise _refusal(exc) from None
    started = sessions.start(principal, "oidc", now=now)
    response = RedirectResponse(next_path, status_code=303)
    response.delete_cookie(SIGNIN_COOKIE, path=SIGNIN_COOKIE_PATH)
    _set_session_cookies(response, request, sessions, started)
    return response


@router.post("/auth/local")
async def local_signin(
    request: Request, signin: SignInDep, controller: ControllerDep, sessions: SessionsDep
) -> Response:
    """Sign in as a local user: JSON ``{"name", "password", "next"}`` or the same as a form."""
    users = controller.local_users
    if users is None:
        raise Unavailable("this controller has no local users; sign in through the company provider")
    _check_origin(request)
    source = _source(request)
    now = controller.clock.now()
    _check_limit(signin, source, now)
    is_form, fields = _read_fields(request.headers.get("content-type", ""), await request.body())
    name, password = fields.get("name", ""), fields.get("password", "")
    if not name or not password:
        raise Invalid("send the user's 'name' and 'password' (JSON or a form)")
    principal = await run_in_threadpool(_check_password, users, name, password)
    if principal is None:
        signin.limiter.failed(source, now=now)
        raise Unauthorized(f"{WRONG_PASSWORD}; try again, or sign in through the company provider")
    started = sessions.start(principal, "local", now=now)
    next_path = _local_path(fields.get("next", "/"))
    response: Response
    if is_form:
        response = RedirectResponse(next_path, status_code=303)
    else:
        response = JSONResponse({**_me(principal, started.session).model_dump(), "next": next_path})
    _set_session_cookies(response, request, sessions, started)
    return response


@router.post("/auth/signout")
def signout(request: Request, controller: ControllerDep, sessions: SessionsDep) -> JSONResponse:
    now = controller.clock.now()
    # Checks the CSRF token too: a page elsewhere must not be able to sign a person out.
    if sessions.principal(request, now) is None:
        raise Unauthorized("not signed in: this browser holds no console session")
    sessions.end(request.cookies[COOKIE], now=now)
    response = JSONResponse({"signed_out": True})
    response.delete_cookie(COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
    return response


@me_router.get("/api/v1/me", response_model=Me)
def me(request: Request, principal: PrincipalDep, controller: ControllerDep) -> Me:
    """Who the caller is: their name, role and sites; with a console session, its CSRF token and end."""
    sessions = controller.sessions
    held = None if sessions is None else sessions.session(request, controller.clock.now())
    if held is not None:
        return _me(held[1].principal, held[1])
    return _me(principal, None)


def _me(principal: Principal, session: Session | None) -> Me:
    return Me(
        name=principal.name,
        role=principal.role,
        sites=None if principal.sites is None else sorted(principal.sites),
        via=None if session is None else session.via,
        csrf=None if session is None else session.csrf,
        expires_at=None if session is None else session.expires_at,
    )


def _oidc(signin: SignIn) -> OidcClient:
    if signin.oidc is None:
        raise Unavailable(
            "sign-in through a company provider is not set up on this controller (EDGEFLEET_OIDC_ISSUER); "
            "sign in as a local user"
        )
    return signin.oidc


def _refusal(exc: OidcRefused) -> ApiError:
    kinds: dict[int, type[ApiError]] = {400: ApiError, 401: Unauthorized, 403: Forbidden, 503: Unavailable}
    return kinds.get(exc.status, ApiError)(exc.message)


def _check_password(users: LocalUsers, name: str, password: str) -> Principal | None:
    return users.check(name, password)


def _check_limit(signin: SignIn, source: str, now: float) -> None:
    wait = signin.limiter.retry_after(source, now=now)
    if wait is not None:
        raise TooManyRequests(
            f"too many failed sign-ins from {source}; wait {wait} s and try again", retry_after_s=wait
        )


def _check_origin(request: Request) -> None:
    # A form on another site may post here (SameSite does not stop the post, only cookies): refuse it, so that no
    # page can sign a person in as someone else (login CSRF). Browsers send Origin with every POST.
    origin = request.headers.get("origin")
    if origin is None:
        return
    ours = f"{request.url.scheme}://{request.url.netloc}"
    if origin != ours:
        raise Forbidden(f"a sign-in posted from {origin!r} is refused; sign in on {ours}/signin")


def _read_fields(content_type: str, body: bytes) -> tuple[bool, dict[str, str]]:
    """(whether it was a form, its fields) of a JSON or urlencoded body."""
    kind = content_type.split(";", maxsplit=1)[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":
        parsed = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
        return True, {key: values[0] for key, values in parsed.items()}
    if kind in ("application/json", ""):
        try:
            value = json.loads(body or b"{}")
        except ValueError as exc:
            raise Invalid(f'the body is not valid JSON: {exc}; send {{"name": ..., "password": ...}}') from None
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise Invalid('send a JSON object of text: {"name": ..., "password": ...}')
        return False, value
    raise Invalid(f"a sign-in is JSON or a form, not {kind!r}")


def _local_path(target: str) -> str:
    """Where to go after sign-in: a path of this controller only (never another site: no open redirect)."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    if target.startswith(("/auth/", "/signin")):
        return "/"
    return target


def _source(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _secure(request: Request, sessions: Sessions | None) -> bool:
    chosen = None if sessions is None else sessions.secure_cookies
    return request.url.scheme == "https" if chosen is None else chosen


def _set_session_cookies(response: Response, request: Request, sessions: Sessions, started: Started) -> None:
    secure = _secure(request, sessions)
    max_age = int(sessions.ttl_s)
    response.set_cookie(COOKIE, started.secret, max_age=max_age, path="/", httponly=True, samesite="lax", secure=secure)
    # Readable by the console's script (not HttpOnly): it sends it back as X-CSRF-Token. Strict: no other site's
    # page ever brings it along.
    response.set_cookie(
        CSRF_COOKIE, started.session.csrf, max_age=max_age, path="/", httponly=False, samesite="strict", secure=secure
    )
