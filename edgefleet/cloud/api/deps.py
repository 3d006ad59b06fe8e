"""What the API's routes depend on: the controller they read (behind a small protocol, so tests pass an
in-memory one) and the one access check every route goes through.

``create_app`` puts the controller and the settings into the lifespan state; routes take them as
``ControllerDep`` and ``SettingsDep``, alerting as ``AlertingDep`` (the typed ``AlertService``, 503 where it does not
run), rollouts as ``RolloutsDep`` (``rollouts.service.RolloutService``, 503 likewise), the caller as ``PrincipalDep``, and
the caller with the request's source, as the audit names them, as ``ActorDep`` (``record_change`` writes an entry). Routes depend on this module and never on each other. Every route names the action it takes and the site it touches to ``authorize``, which asks the one
decision table (``edgefleet.cloud.access.authorizing``); who calls is found by ``require_access`` (a bearer token,
or the browser's session where sign-in runs), and nobody else: no request names its own actor.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Final, Protocol

from fastapi import Depends, Request

from edgefleet.clock import Clock
from edgefleet.cloud.access.audit_log import Actor, AuditLog, AuditRecord
from edgefleet.cloud.access.authorizing import Action, Principal
from edgefleet.cloud.access.authorizing import authorize as decide
from edgefleet.cloud.access.limiting import GuessLimiter
from edgefleet.cloud.access.local_users import LocalUsers
from edgefleet.cloud.access.sessions import Sessions
from edgefleet.cloud.access.tokens import TokenRecord, admit
from edgefleet.cloud.alerting.service import AlertService
from edgefleet.cloud.api.errors import Forbidden, NotFound, TooManyGuesses, Unauthorized, Unavailable
from edgefleet.cloud.enrolling import Enrollment
from edgefleet.cloud.fleet import FleetState, HealthPoint, InventoryChange
from edgefleet.cloud.hearing import Hearing, IngestStats
from edgefleet.cloud.k8s.gateway import ClusterGateway
from edgefleet.cloud.k8s.health import ClusterHealth
from edgefleet.cloud.leading import Leadership
from edgefleet.cloud.restarts import Restarts
from edgefleet.cloud.rollouts.service import RolloutService
from edgefleet.cloud.saving import SavingHealth
from edgefleet.cloud.settings import Settings
from edgefleet.errors import EdgefleetError
from edgefleet.ids import BoxId, SiteId


class IngestView(Protocol):
    @property
    def counters(self) -> Mapping[str, int]:
        """Messages taken from the broker so far, by outcome (accepted, duplicate, malformed, ...)."""
        ...

    @property
    def connected(self) -> bool:
        """Whether the controller holds a connection to the broker now."""
        ...

    def stats(self) -> IngestStats:
        """What the ingest measured of its own hearing: lag, saturation, quiet time."""
        ...

    @property
    def refused(self) -> str | None:
        """Why the broker refused the last connection (a refused login says so), with no secret; None when it
        did not."""
        ...


class StoreView(Protocol):
    def check(self) -> None:
        """Raise when the database cannot be used now; the error says why."""
        ...


class TokenFinder(Protocol):
    """What ``require_access`` asks of the token store (``access.token_store.TokenStore`` is one)."""

    def find(self, secret: str) -> TokenRecord | None:
        """The record of the token ``secret`` whatever its state; None when no token has that secret."""
        ...


class FleetReader(Protocol):
    """What the API reads of the controller. ``edgefleet.cloud.controller.Controller`` is one; tests pass an
    in-memory one."""

    @property
    def state(self) -> FleetState: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def ingest(self) -> IngestView: ...

    @property
    def store(self) -> StoreView: ...

    @property
    def hearing(self) -> Hearing:
        """Whether the controller hears the fleet well enough to judge box silence (``hearing.assess``)."""
        ...

    @property
    def alerting(self) -> AlertService | None:
        """Alerts and silences; None where alerting does not run (the routes answer 503)."""
        ...

    @property
    def rollouts(self) -> RolloutService | None:
        """Rollouts and site holds; None where they do not run (the routes answer 503)."""
        ...

    def saving(self) -> SavingHealth:
        """How the writes to the database fare (fleet state flushes, alert saves), for /healthz and /metrics."""
        ...

    def box_history(self, box: BoxId, since: float) -> list[HealthPoint]:
        """The box's health points received at ``since`` or later, oldest first."""
        ...

    @property
    def restarts(self) -> Restarts | None:
        """Batch restarts of a cluster's Deployments; None without a gateway (the routes answer 503)."""
        ...

    @property
    def gateway(self) -> ClusterGateway | None:
        """The gateway to the inventory's clusters (reads that call a cluster: the policy audit); None without."""
        ...

    def cluster_health(self) -> list[ClusterHealth]:
        """What the controller knows of each cluster of the inventory (its periodic probe, failed calls), by
        name; reading it calls no cluster."""
        ...

    @property
    def sessions(self) -> Sessions | None:
        """The console's sign-in sessions; None where the console has no sign-in (the sign-in routes answer 503)."""
        ...

    @property
    def local_users(self) -> LocalUsers | None:
        """Local users who may sign in with a password; None where there are none to check."""
        ...

    @property
    def tokens(self) -> TokenFinder:
        """The API tokens ``require_access`` admits (the controller's database)."""
        ...

    @property
    def audit_log(self) -> AuditLog:
        """The one audit log (``access.audit_log``): what ``GET /api/v1/audit`` reads, and what the routes write
        for the changes no store writes it for in the same transaction."""
        ...

    def reload_inventory(self, *, expect_version: str | None = None) -> InventoryChange:
        """Take the sites directory again, whole or not at all; raises InventoryError listing every problem, or
        InventoryVersionMismatch when the directory does not hold ``expect_version``."""
        ...

    @property
    def leadership(self) -> Leadership:
        """Whether this controller leads the database, and who does (``edgefleet.cloud.leading``)."""
        ...


def get_controller(request: Request) -> FleetReader:
    controller: FleetReader = request.state.controller
    return controller


def get_settings(request: Request) -> Settings:
    settings: Settings = request.state.settings
    return settings


ControllerDep = Annotated[FleetReader, Depends(get_controller)]
SettingsDep = Annotated[Settings, Depends(get_settings)]

# A page of a list (``paging``: the next page follows a cursor); the CLI shows the newest first, ops filter for
# more. The fleet's lists (sites, a site's boxes, unknown boxes) hold up to MAX_LIMIT by default: the whole
# shipped fleet (103 sites) in one answer, as before they paged.
DEFAULT_LIMIT: Final = 100
FLEET_DEFAULT_LIMIT: Final = 1000
MAX_LIMIT: Final = 1000
# What may start an alert or silence id: lowercase letters, digits and dashes, four at least (as git wants).
ID_START: Final = r"^[0-9a-z][0-9a-z-]{3,63}$"
# An ambiguous start names this many of the ids it starts, so that the caller can pick.
MAX_CANDIDATES: Final = 5


def get_alerting(controller: ControllerDep) -> AlertService:
    alerting = controller.alerting
    if alerting is None:
        raise Unavailable("alerting does not run in this controller; start it with 'edgefleet cloud serve'")
    return alerting


AlertingDep = Annotated[AlertService, Depends(get_alerting)]


def get_rollouts(controller: ControllerDep) -> RolloutService:
    rollouts = controller.rollouts
    if rollouts is None:
        raise Unavailable("rollouts do not run in this controller; start it with 'edgefleet cloud serve'")
    return rollouts


RolloutsDep = Annotated[RolloutService, Depends(get_rollouts)]


def store_unavailable(exc: Exception) -> Unavailable:
    """The database behind the alert store failed; the store's message names it and what to check."""
    return Unavailable(f"cannot use the alert store now: {exc}")


class SessionReader(Protocol):
    """Browser sign-in (a session cookie), where the app has it as ``request.state.sessions``."""

    def principal(self, request: Request, now: float) -> Principal | None:
        """Who the request's session cookie stands for; None without one. Raises ``Unauthorized`` or
        ``Forbidden`` itself for a bad cookie or a change without its CSRF token."""
        ...


# The one 401 message, whatever was wrong (no token, an unknown, expired or revoked one): a guesser learns
# nothing from it, and a person learns how to get a token.
UNAUTHENTICATED: Final = (
    "this needs an API token: send 'Authorization: Bearer <token>' (the CLI sends the one 'edgefleet login "
    "--token ...' kept, or EDGEFLEET_TOKEN); an admin makes one with 'edgefleet tokens create', and a token that "
    "expired or was revoked must be replaced"
)


def require_access(request: Request) -> Principal:
    """The one access check every route goes through (a router-level dependency of every router): who calls.

    ``Authorization: Bearer <token>``: the token store's record, admitted at the controller's clock (unknown,
    expired and revoked tokens get the same 401). A source address that sent too many unknown tokens lately is
    answered 429 before its token is looked up, good or not. Without the header, the browser's session
    (``request.state.sessions``, where sign-in runs) may name the caller; else 401.
    """
    controller: FleetReader = request.state.controller
    now = controller.clock.now()
    header = request.headers.get("authorization")
    if header is None:
        sessions: SessionReader | None = getattr(request.state, "sessions", None)
        principal = None if sessions is None else sessions.principal(request, now)
        if principal is None:
            raise Unauthorized(UNAUTHENTICATED)
        return principal
    guesses: GuessLimiter = request.state.guesses
    address = request.client.host if request.client is not None else "unknown"
    wait = guesses.retry_after(address, now=now)
    if wait is not None:
        raise TooManyGuesses(wait)
    scheme, _, secret = header.strip().partition(" ")
    tokens: TokenFinder = request.state.tokens
    try:
        found = tokens.find(secret.strip()) if scheme.lower() == "bearer" and secret.strip() else None
    except EdgefleetError as exc:  # the store's StoreError or UnreachableError
        # A token not read before the database went away cannot be checked now (the store logs the outage once):
        # say so, rather than answer 500 with a traceback per request, and count no guess.
        raise Unavailable(
            "cannot check this token now: the controller's database does not answer; try again shortly "
            "(tokens already used with this controller still work meanwhile)"
        ) from exc
    principal = admit(found, now=now)
    if principal is None:
        guesses.failed(address, now=now)
        raise Unauthorized(UNAUTHENTICATED)
    return principal


PrincipalDep = Annotated[Principal, Depends(require_access)]

# Where a request came from, for the audit: the client's address and its user agent (cut: only a hint).
MAX_USER_AGENT_CHARS: Final = 200


def request_source(request: Request) -> str:
    """``ADDRESS UA`` of the request: its client's address (as the server saw it) and its user agent."""
    address = request.client.host if request.client is not None else "unknown"
    agent = request.headers.get("user-agent", "")[:MAX_USER_AGENT_CHARS]
    return f"{address} {agent}".strip()


def get_actor(request: Request, principal: PrincipalDep) -> Actor:
    """Who acts in this request, as the audit records it: the principal (name and role) and the request's source."""
    return Actor(principal.name, principal.role, request_source(request))


ActorDep = Annotated[Actor, Depends(get_actor)]


def authorize(principal: Principal, action: Action, site: SiteId | None) -> None:
    """Refuse unless ``access.authorizing.authorize`` allows ``action`` on ``site`` (None: something
    fleet-wide): 403 for a known caller lacking the role, 404 for another site's object (as if absent)."""
    decision = decide(principal, action, site)
    if decision.outcome == "hidden":
        # Says nothing of what exists beyond the caller's sites.
        raise NotFound("not found among the sites you may see; GET /api/v1/sites lists them")
    if decision.outcome == "forbidden":
        raise Forbidden(decision.reason)


def get_enrollment(request: Request) -> Enrollment | None:
    """Box enrollment (``edgefleet.cloud.enrolling``), or None where the app was built without it."""
    enrollment: Enrollment | None = request.state.enrollment
    return enrollment


OptionalEnrollmentDep = Annotated[Enrollment | None, Depends(get_enrollment)]


def record_change(controller: FleetReader, entry: AuditRecord) -> None:
    """Append the audit entry of a change a route just made, for the changes that no store can write in their own
    transaction (the alert loop's, kept in memory and saved by its persister; the inventory, taken from files).

    Safe after the change: the change is made and answered from memory, and the entry names it at the injected
    clock's now. A database that refuses the entry (down, its disk full) does not undo or refuse the change, which
    the controller keeps serving from memory as it does the alerts themselves: the entry waits in memory and is
    written, in order, before the next one that succeeds (``AuditLog.keep``). Only a controller that dies while
    entries wait loses them; the log never holds an entry for a change that did not happen.
    """
    controller.audit_log.keep(entry)
