"""``/api/v1/audit``: read the audit log (``access.audit_log``), newest first, a page at a time. Read only: the path
takes GET alone (any other method is a 405), and nothing else in the API edits or deletes an entry.

Who reads what: the action is ``read-audit``. A fleet-wide principal sees every entry; a site-scoped one (site staff)
sees only the entries of their own sites, never a fleet-wide one (a rollout started, the inventory reloaded), and a
``site`` filter naming another site is answered 404 as if it did not exist.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Final

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import Field

from edgefleet.cloud.access.audit_log import AuditQuery, AuditRecord, Json
from edgefleet.cloud.api.deps import DEFAULT_LIMIT, MAX_LIMIT, ControllerDep, PrincipalDep, authorize, require_access
from edgefleet.cloud.api.errors import Invalid, Unavailable
from edgefleet.cloud.api.fields import Name
from edgefleet.cloud.api.paging import CursorQuery, decode_cursor, encode_cursor, set_next_page
from edgefleet.cloud.api.schemas import _Public, error_responses, utc
from edgefleet.errors import EdgefleetError
from edgefleet.ids import SiteId

router = APIRouter(
    prefix="/api/v1/audit",
    tags=["audit"],
    dependencies=[Depends(require_access)],
    responses=error_responses(403, 404, 422, 503),
)


class AuditTargetPublic(_Public):
    kind: str = Field(description="rollout, site, alert, silence, inventory, cluster, node or token.")
    id: str


class AuditEntryPublic(_Public):
    id: int = Field(description="The entry's place in the log: later entries have greater ids.")
    at: datetime
    principal: str = Field(description="Who acted: the API caller's name, the reconciler, or a person at the database.")
    role: str | None = Field(description="The caller's role; null for the controller itself or the database's user.")
    action: str = Field(description="What was done, in a word: start-rollout, hold-site, acknowledge-alert, ...")
    target: AuditTargetPublic | None
    site: str | None = Field(description="The site the action touched; null for a fleet-wide action.")
    summary: str = Field(description="The action in a sentence.")
    before: Json = Field(description="The object's relevant state before (null: it did not exist).")
    after: Json = Field(description="The object's relevant state after (null: it no longer exists).")
    source: str | None = Field(description="Where the request came from: client address and user agent.")


def _public(record: AuditRecord) -> AuditEntryPublic:
    target = record.target
    return AuditEntryPublic(
        id=record.id or 0,
        at=utc(record.at),
        principal=record.actor.name,
        role=record.actor.role,
        action=record.action,
        target=None if target is None else AuditTargetPublic(kind=target.kind, id=target.id),
        site=None if target is None else target.site,
        summary=record.summary,
        before=record.before,
        after=record.after,
        source=record.actor.source,
    )


# Ids are 64-bit integers in the database; a cursor naming another number is none of ours.
MAX_ID: Final = 2**63 - 1


def _cursor_id(cursor: str) -> int:
    """The id a cursor of this list holds: the page starts after (below) it."""
    (value,) = decode_cursor(cursor, "audit", (float,))
    if not (isinstance(value, float) and math.isfinite(value) and 0 < value <= MAX_ID and value == int(value)):
        raise Invalid(
            f"query parameter 'cursor': {cursor[:40]!r} is no cursor of this list of audit; pass the X-Next-Cursor "
            "header of the page before as it came, or leave cursor out to start from the first page"
        )
    return int(value)


def _seconds(moment: datetime) -> float:
    return (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).timestamp()


@router.get("", summary="Read the audit log", response_model=list[AuditEntryPublic])
def read_audit(
    request: Request,
    response: Response,
    controller: ControllerDep,
    principal: PrincipalDep,
    since: Annotated[
        datetime | None, Query(description="Entries at this time or later (ISO 8601; UTC without a zone).")
    ] = None,
    until: Annotated[datetime | None, Query(description="Entries before this time.")] = None,
    who: Annotated[Name | None, Query(alias="principal", description="Only this principal's entries.")] = None,
    action: Annotated[Name | None, Query(description="Only this action (start-rollout, hold-site, ...).")] = None,
    site: Annotated[Name | None, Query(description="Only the entries of this site.")] = None,
    target: Annotated[
        Name | None, Query(description="Only the entries about this object: KIND:ID (rollout:r-...), or a KIND.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="At most this many.")] = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> list[AuditEntryPublic]:
    """Every state-changing action, newest first: who (principal, role, source), when, what, on which target and
    site, and the state before and after. A page at a time: when more follow, the ``X-Next-Cursor`` header holds
    the ``cursor`` of the next page. Site staff read only their sites' entries."""
    if site is not None:
        authorize(principal, "read-audit", SiteId(site))
    elif principal.sites is None:
        authorize(principal, "read-audit", None)
    else:
        # A scoped reader asks for the whole log: the role is checked on one of its sites, the entries are kept
        # to its sites below (lists that mix sites filter instead of refusing).
        authorize(principal, "read-audit", min(principal.sites))
    kind, _, target_id = (target or "").partition(":")
    if target is not None and not kind:
        raise Invalid(f"query parameter 'target': {target!r} names no kind; use KIND:ID, e.g. rollout:r-20261201-ab12")
    query = AuditQuery(
        since=None if since is None else _seconds(since),
        until=None if until is None else _seconds(until),
        principal=who,
        action=action,
        site=None if site is None else SiteId(site),
        target_kind=kind or None,
        target_id=target_id or None,
        sites=principal.sites,
    )
    before_id = _cursor_id(cursor) if cursor is not None else None
    try:
        page = controller.audit_log.page(query, before_id=before_id, limit=limit + 1)
    except EdgefleetError as exc:
        raise Unavailable(f"cannot read the audit log now: {exc}") from exc
    more = len(page) > limit
    page = page[:limit]
    last = page[-1] if page else None
    set_next_page(request, response, encode_cursor("audit", (float(last.id or 0),)) if more and last else None)
    return [_public(r) for r in page]
