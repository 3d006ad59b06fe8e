"""The console's sessions: who signed in through the browser (OpenID Connect or a local user), kept on the server.

A session is a row of ``console_session`` keyed by the SHA-256 of a random secret; the browser holds the secret
in the ``edgefleet_session`` cookie (HttpOnly, SameSite=Lax, Secure over https) and nothing else of it. Kept on
the server rather than in a signed cookie so that signing out, removing a local user or changing their password
ends the session at once, everywhere: a signed cookie stays good until it expires.

CSRF: each session has its own random token (a synchronizer token). An unsafe request (POST, PUT, PATCH, DELETE)
that comes with the session cookie must send it in ``X-CSRF-Token``; a page from another site can make the
browser send the cookie (a form post), but cannot read the token. The console's script reads it from the
``edgefleet_csrf`` cookie (not HttpOnly: it is no credential alone) or from ``GET /api/v1/me``.

``Sessions.principal(request, now)`` is what the API's ``require_access`` asks when a request carries no bearer
token: None without a session cookie, the principal of a live session, or ``SessionRefused`` (401 for a session
unknown, ended or expired; 403 for a missing or wrong CSRF token), which the API answers in its error shape.
Who calls: the API (``require_access``, ``routes/signin.py``), built by the controller over its database.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Literal, Protocol

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from edgefleet.cloud.access.authorizing import ROLES, Principal
from edgefleet.cloud.store import Store
from edgefleet.ids import SiteId

COOKIE: Final = "edgefleet_session"
CSRF_COOKIE: Final = "edgefleet_csrf"
CSRF_HEADER: Final = "X-CSRF-Token"
# A working day and a bit: a shift signs in once; a browser left open overnight signs in again.
SESSION_TTL_S: Final = 12 * 3600.0
# Methods that change something: these must prove they come from the console's own pages.
UNSAFE_METHODS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SECRET_BYTES: Final = 32

Via = Literal["oidc", "local"]


class SessionRefused(Exception):
    """A session cookie that admits no one; ``status`` and ``code`` are the API's answer."""

    status: ClassVar[int] = 401
    code: ClassVar[str] = "unauthenticated"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SessionUnknown(SessionRefused):
    """Unknown, ended or expired: the same answer for each, so a guessed cookie learns nothing."""


class CsrfRefused(SessionRefused):
    status = 403
    code = "forbidden"


class ConsoleSessionRow(SQLModel, table=True):
    __tablename__ = "console_session"

    digest: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=255, index=True)
    role: str = Field(max_length=32)
    # The sites of a site-staff session, as a JSON list; NULL for every site.
    sites: str | None = Field(default=None)
    via: str = Field(max_length=8)
    csrf: str = Field(max_length=64)
    created_at: float
    expires_at: float
    ended_at: float | None = Field(default=None)


SESSIONS: Final[sa.Table] = ConsoleSessionRow.__table__  # type: ignore[attr-defined]
TABLES: Final = [SESSIONS]


class Asking(Protocol):
    """What ``principal`` reads of a request (Starlette's ``Request`` is one)."""

    @property
    def method(self) -> str: ...

    @property
    def cookies(self) -> Mapping[str, str]: ...

    @property
    def headers(self) -> Mapping[str, str]: ...


@dataclass(frozen=True, slots=True)
class Session:
    principal: Principal
    via: Via
    csrf: str
    created_at: float
    expires_at: float
    ended_at: float | None

    def live(self, now: float) -> bool:
        return self.ended_at is None and now < self.expires_at


@dataclass(frozen=True, slots=True)
class Started:
    """A new session: the secret goes into the cookie, once; the store keeps only its hash."""

    secret: str
    session: Session


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class Sessions:
    """The console's sessions in the controller's database."""

    def __init__(self, store: Store, *, ttl_s: float = SESSION_TTL_S, secure_cookies: bool | None = None) -> None:
        self.store = store
        self.ttl_s = ttl_s
        # True: cookies only over https; False: never marked Secure; None: Secure when the request came over https.
        self.secure_cookies = secure_cookies

    def create_schema(self) -> None:
        """For tests of this store alone; the controller migrates instead."""
        with self.store.transaction("create the console session table") as connection:
            SQLModel.metadata.create_all(connection, tables=TABLES)

    def start(self, principal: Principal, via: Via, *, now: float) -> Started:
        secret = secrets.token_urlsafe(SECRET_BYTES)
        session = Session(
            principal=principal,
            via=via,
            csrf=secrets.token_urlsafe(SECRET_BYTES),
            created_at=now,
            expires_at=now + self.ttl_s,
            ended_at=None,
        )
        with self.store.transaction("start a console session") as connection:
            # Sessions long expired are of no use to anyone: each sign-in sweeps them, so the table stays small.
            connection.execute(sa.delete(SESSIONS).where(SESSIONS.c.expires_at < now - self.ttl_s))
            connection.execute(sa.insert(SESSIONS), [_row(digest(secret), session)])
        return Started(secret=secret, session=session)

    def find(self, secret: str) -> Session | None:
        with self.store.transaction("read a console session") as connection:
            row = connection.execute(sa.select(SESSIONS).where(SESSIONS.c.digest == digest(secret))).first()
        return None if row is None else _session(row)

    def end(self, secret: str, *, now: float) -> None:
        """Sign out: the session admits no one from ``now`` on (ending an ended session changes nothing)."""
        with self.store.transaction("end a console session") as connection:
            connection.execute(
                sa.update(SESSIONS)
                .where(SESSIONS.c.digest == digest(secret), SESSIONS.c.ended_at.is_(None))
                .values(ended_at=now)
            )

    def session(self, request: Asking, now: float) -> tuple[str, Session] | None:
        """The live session a request's cookie names, with its secret; None without a cookie. Checks no CSRF."""
        secret = request.cookies.get(COOKIE)
        if not secret:
            return None
        found = self.find(secret)
        if found is None or not found.live(now):
            raise SessionUnknown("your console session has ended or expired; sign in again at /signin")
        return secret, found

    def principal(self, request: Asking, now: float) -> Principal | None:
        """Who a request without a bearer token is: see the module's docstring."""
        held = self.session(request, now)
        if held is None:
            return None
        _, found = held
        if request.method.upper() in UNSAFE_METHODS:
            sent = request.headers.get(CSRF_HEADER, "")
            if not sent:
                raise CsrfRefused(
                    f"a {request.method} with the console's session cookie must send the {CSRF_HEADER} header "
                    f"(the value of the {CSRF_COOKIE} cookie, or 'csrf' of GET /api/v1/me)"
                )
            if not hmac.compare_digest(sent.encode(), found.csrf.encode()):
                raise CsrfRefused(
                    f"the {CSRF_HEADER} header does not match this session; reload the console (a new sign-in "
                    "gives a new token)"
                )
        return found.principal


def end_sessions_of(connection: sa.Connection, name: str, via: Via, *, now: float) -> None:
    """End every live session of ``name`` signed in ``via``, inside the caller's transaction (a local user
    removed, or their password changed)."""
    connection.execute(
        sa.update(SESSIONS)
        .where(SESSIONS.c.name == name, SESSIONS.c.via == via, SESSIONS.c.ended_at.is_(None))
        .values(ended_at=now)
    )


def _row(key: str, session: Session) -> dict[str, Any]:
    principal = session.principal
    return {
        "digest": key,
        "name": principal.name,
        "role": principal.role,
        "sites": None if principal.sites is None else json.dumps(sorted(principal.sites)),
        "via": session.via,
        "csrf": session.csrf,
        "created_at": session.created_at,
        "expires_at": session.expires_at,
        "ended_at": session.ended_at,
    }


def _session(row: Any) -> Session:
    role = next((r for r in ROLES if r == row.role), None)
    via: Via = "local" if row.via == "local" else "oidc"
    if role is None:  # a row from a release with other roles: it admits no one
        return Session(Principal("unknown", "viewer"), via, row.csrf, row.created_at, row.expires_at, row.created_at)
    sites = None if row.sites is None else frozenset(SiteId(s) for s in json.loads(row.sites))
    return Session(
        principal=Principal(name=row.name, role=role, sites=sites),
        via=via,
        csrf=row.csrf,
        created_at=row.created_at,
        expires_at=row.expires_at,
        ended_at=row.ended_at,
    )
