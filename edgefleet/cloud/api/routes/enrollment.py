"""Box enrollment over the API: minting a site's enrollment token, and a box redeeming one.

- ``POST /api/v1/sites/{site}/enrollment-tokens`` passes the access check like every route (action
  ``enroll-box`` on that site: admins, and site staff of that site) and answers the token once.
- ``POST /api/v1/enroll`` is the one route a caller reaches without an API token: a box being installed has none.
  The enrollment token in the body is its authentication. Failed tries are rate limited per source address
  (``access.limiting.GuessLimiter``: past the burst, 429 with ``Retry-After`` whatever the next token is), and an
  unknown, used or expired token all get the same 401. The answer carries the box's broker password, certificate
  and key once; nothing here logs them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from edgefleet.cloud.access.audit_log import Actor, AuditRecord, Target
from edgefleet.cloud.access.enrollment_tokens import DEFAULT_EXPIRY_S, MAX_EXPIRY_S
from edgefleet.cloud.access.limiting import GuessLimiter
from edgefleet.cloud.api.deps import (
    ActorDep,
    ControllerDep,
    OptionalEnrollmentDep,
    PrincipalDep,
    authorize,
    record_change,
    request_source,
    require_access,
)
from edgefleet.cloud.api.errors import Conflict, Forbidden, Invalid, NotFound, Unavailable, error_response
from edgefleet.cloud.api.fields import Duration, Name, duration_schema
from edgefleet.cloud.api.schemas import ErrorBody, error_responses, utc
from edgefleet.cloud.broker.grants import BadBoxName
from edgefleet.cloud.enrolling import AlreadyEnrolled, BoxOfAnotherSite, Enrollment, EnrollmentOff, TokenRefused
from edgefleet.errors import EdgefleetError
from edgefleet.ids import SiteId

# A token is "ef_" and 43 characters; anything much longer is not one.
MAX_TOKEN_CHARS: Final = 200

tokens_router = APIRouter(
    prefix="/api/v1/sites",
    tags=["enrollment"],
    dependencies=[Depends(require_access)],
    responses=error_responses(403, 422, 500),
)
# No access check: the enrollment token in the body is the caller's credential (module docstring).
router = APIRouter(prefix="/api/v1", tags=["enrollment"], responses=error_responses(422, 500))

_REFUSED: Final[dict[int | str, dict[str, Any]]] = {
    401: {"model": ErrorBody, "description": "The enrollment token is unknown, used or expired."},
    403: {"model": ErrorBody, "description": "The inventory places the box at another site than the token's."},
    409: {"model": ErrorBody, "description": "The box has a broker account already; revoke it first."},
    429: {"model": ErrorBody, "description": "Too many failed tokens from this address; see Retry-After."},
}


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EnrollmentTokenCreate(_Body):
    expires_in: Annotated[Duration, Field(json_schema_extra=duration_schema(MAX_EXPIRY_S))] = DEFAULT_EXPIRY_S


class EnrollmentTokenPublic(BaseModel):
    id: str = Field(description="A name to list the token by; not the secret.")
    site: str
    token: str = Field(description="The secret, shown this once: give it to the box's installer.")
    expires_at: datetime


class EnrollBody(_Body):
    # What ``tokens.mint`` makes: "ef_" and URL-safe base64.
    token: Annotated[str, StringConstraints(min_length=1, max_length=MAX_TOKEN_CHARS, pattern=r"^[A-Za-z0-9_-]+$")]
    box: Name


class EnrolledPublic(BaseModel):
    box: str
    site: str
    in_inventory: bool = Field(
        description="False: the box is in no site manifest; it shows as unknown until the manifest adds it."
    )
    username: str
    client_id: str
    password: str = Field(description="The box's broker password, shown this once.")
    certificate: str = Field(description="The box's client certificate (PEM).")
    key: str = Field(description="The certificate's private key (PEM), shown this once.")
    ca: str = Field(description="The CA certificates that signed the broker's certificate (PEM).")
    broker_host: str
    broker_port: int


def _enrollment(enrollment: OptionalEnrollmentDep) -> Enrollment:
    if enrollment is None:
        raise Unavailable("box enrollment does not run in this controller; start it with 'edgefleet cloud serve'")
    return enrollment


EnrollmentDep = Annotated[Enrollment, Depends(_enrollment)]


@tokens_router.post(
    "/{site}/enrollment-tokens",
    summary="Create an enrollment token",
    status_code=201,
    response_model=EnrollmentTokenPublic,
    responses=error_responses(404, 503),
)
def create_enrollment_token(
    site: Name,
    body: EnrollmentTokenCreate,
    controller: ControllerDep,
    principal: PrincipalDep,
    actor: ActorDep,
    enrollment: EnrollmentDep,
) -> EnrollmentTokenPublic:
    """A single-use token that lets one new box of ``site`` get its broker login (POST /api/v1/enroll)."""
    authorize(principal, "enroll-box", SiteId(site))
    if SiteId(site) not in controller.state.inventory.sites:
        raise NotFound(f"no site {site!r} in the inventory; GET /api/v1/sites lists them")
    try:
        secret, record = enrollment.tokens.create(
            site, created_by=principal.name[:63], now=controller.clock.now(), expires_in_s=body.expires_in
        )
    except EdgefleetError as exc:
        raise Unavailable(str(exc)) from None
    record_change(
        controller,
        AuditRecord(
            controller.clock.now(),
            actor,
            "create-enrollment-token",
            Target("enrollment-token", record.id, SiteId(site)),
            f"create enrollment token {record.id} for a box of {site}",
            after={"id": record.id, "expires_at": record.expires_at},  # never the secret
        ),
    )
    return EnrollmentTokenPublic(id=record.id, site=record.site, token=secret, expires_at=utc(record.expires_at))


@router.post(
    "/enroll",
    summary="Enroll a box",
    response_model=EnrolledPublic,
    responses={**_REFUSED, **error_responses(503)},
)
def enroll(body: EnrollBody, request: Request, controller: ControllerDep, enrollment: EnrollmentDep) -> Any:
    """Trade a single-use enrollment token of the box's site for the box's own broker login, given once."""
    limiter: GuessLimiter = request.state.enrollment_guesses
    address = request.client.host if request.client else "unknown"
    now = controller.clock.monotonic()
    wait = limiter.retry_after(address, now=now)
    if wait is not None:
        answer = error_response(
            429, "too-many-requests", f"too many failed enrollment tokens from {address}; try again in {wait} s"
        )
        answer.headers["Retry-After"] = str(wait)
        return answer
    try:
        enrolled = enrollment.enroll(body.token, body.box)
    except TokenRefused as exc:
        limiter.failed(address, now=now)
        return error_response(401, "unauthenticated", str(exc))
    except BadBoxName as exc:
        raise Invalid(str(exc)) from None
    except BoxOfAnotherSite as exc:
        raise Forbidden(str(exc)) from None
    except AlreadyEnrolled as exc:
        raise Conflict(str(exc)) from None
    except EnrollmentOff as exc:
        raise Unavailable(str(exc)) from None
    except EdgefleetError as exc:
        # The broker or the database could not be used; the token was left unspent.
        raise Unavailable(f"cannot enroll the box now: {exc}") from None
    # The box is the actor: its enrollment token was its credential (no principal signed in).
    record_change(
        controller,
        AuditRecord(
            controller.clock.now(),
            Actor(f"box {enrolled.box}", None, request_source(request)),
            "enroll-box",
            Target("box", enrolled.box, SiteId(enrolled.site)),
            f"box {enrolled.box} enrolled at {enrolled.site} as {enrolled.username}",
            after={"username": enrolled.username, "in_inventory": enrolled.in_inventory},  # never the password
        ),
    )
    return EnrolledPublic(
        box=enrolled.box,
        site=enrolled.site,
        in_inventory=enrolled.in_inventory,
        username=enrolled.username,
        client_id=enrolled.client_id,
        password=enrolled.password,
        certificate=enrolled.certificate,
        key=enrolled.key,
        ca=enrolled.ca,
        broker_host=enrolled.broker_host,
        broker_port=enrolled.broker_port,
    )
