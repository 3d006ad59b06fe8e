"""``/api/v1/silences``: list, add and end silences (planned maintenance, a known fault) through the alert loop.

A new silence is checked whole (``silences.validate_silence`` against the inventory, plus its end): every problem
is answered at once as a 422. Adding a silence identical to an active one (the same matchers, author and reason, an
end within a minute: a retried request) stores nothing and answers that one with 200 instead of 201. Ending a
silence keeps it, expired, with who ended it; it is named by its id or a unique start of it, as alerts are.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status

from edgefleet.cloud.access.audit_log import AuditRecord, Json, Target, summary_of
from edgefleet.cloud.access.authorizing import Principal
from edgefleet.cloud.alerting.service import (
    AlertNotFound,
    AlertService,
    SilenceExists,
    SilenceRejected,
    SilenceStateError,
)
from edgefleet.cloud.alerting.silences import SilenceRecord
from edgefleet.cloud.api.alert_schemas import (
    SilenceCreate,
    SilencePublic,
    alert_error_responses,
    silence_public,
    timestamp,
)
from edgefleet.cloud.api.deps import (
    DEFAULT_LIMIT,
    ID_START,
    MAX_CANDIDATES,
    MAX_LIMIT,
    ActorDep,
    AlertingDep,
    ControllerDep,
    PrincipalDep,
    authorize,
    record_change,
    require_access,
    store_unavailable,
)
from edgefleet.cloud.api.errors import ACTOR_REFUSED, Conflict, Invalid, NotFound
from edgefleet.cloud.api.fields import Name
from edgefleet.cloud.api.paging import CursorQuery, decode_cursor, encode_cursor, set_next_page
from edgefleet.errors import EdgefleetError
from edgefleet.ids import BoxId, SiteId
from edgefleet.inventory import Inventory

router = APIRouter(
    prefix="/api/v1/silences",
    tags=["silences"],
    dependencies=[Depends(require_access)],
    responses=alert_error_responses(401, 403, 429, 422, 500, 503),
)


def _site_of(inventory: Inventory, site: str | None, box: str | None) -> SiteId | None:
    """The site a silence is about (its own, or its box's); None for a fleet-wide one (a kind only)."""
    if site is not None:
        return SiteId(site)
    found = inventory.boxes.get(BoxId(box)) if box is not None else None
    return found.site if found is not None else None


def _may_read(principal: Principal, inventory: Inventory, record: SilenceRecord) -> bool:
    silence = record.silence
    return principal.may_see(_site_of(inventory, silence.site, silence.box))


@router.get("", summary="List silences", response_model=list[SilencePublic])
def list_silences(
    request: Request,
    response: Response,
    controller: ControllerDep,
    alerting: AlertingDep,
    principal: PrincipalDep,
    include_ended: Annotated[bool, Query(alias="all", description="Also the silences that ended.")] = False,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="At most this many.")] = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> list[SilencePublic]:
    """Active and pending silences, newest first (by start, then id; with ``all``, ended ones too), a page at a
    time: when more follow, the ``X-Next-Cursor`` header holds the ``cursor`` of the next page."""
    after = decode_cursor(cursor, "silences", (float, str)) if cursor is not None else None
    inventory = controller.state.inventory
    page: list[SilenceRecord] = []
    more = False
    try:
        # The caller's sites are applied here, not in the store: read on until the page is full or none are left.
        key = (float(after[0]), str(after[1])) if after is not None else None
        while len(page) <= limit:
            records = alerting.list_silences(include_expired=include_ended, after=key, limit=limit + 1)
            page += [r for r in records if _may_read(principal, inventory, r)]
            if len(records) <= limit:
                break
            key = (records[-1].silence.starts_at, records[-1].silence.id)
    except EdgefleetError as exc:
        raise store_unavailable(exc) from exc
    more = len(page) > limit
    page = page[:limit]
    last = page[-1].silence if page else None
    set_next_page(request, response, encode_cursor("silences", (last.starts_at, last.id)) if more and last else None)
    now = controller.clock.now()
    return [silence_public(r, now=now) for r in page]


@router.post(
    "",
    summary="Add a silence",
    status_code=status.HTTP_201_CREATED,
    response_model=SilencePublic,
    responses={
        200: {
            "model": SilencePublic,
            "description": "An identical silence is active (same matchers, author and reason, an end within a "
            "minute): it is answered, and nothing new is stored.",
        }
    },
)
def add_silence(
    body: SilenceCreate,
    response: Response,
    controller: ControllerDep,
    alerting: AlertingDep,
    principal: PrincipalDep,
    actor: ActorDep,
) -> SilencePublic:
    """Mute the alerts that match (site, box, kind; at least one) from now until ``ends_at`` or for
    ``duration``. Muted alerts are still evaluated, stored and listed; when the silence ends and they still fire,
    they are told then. Sent again (a retry), the same silence is answered with 200 and stored once."""
    inventory = controller.state.inventory
    authorize(principal, "silence", _site_of(inventory, body.site, body.box))
    try:
        record = alerting.add_silence(
            created_by=principal.name,
            comment=body.comment,
            site=SiteId(body.site) if body.site is not None else None,
            box=BoxId(body.box) if body.box is not None else None,
            kind=body.kind,
            ends_at=timestamp(body.ends_at) if body.ends_at is not None else None,
            duration_s=body.duration,
        )
    except SilenceExists as exc:
        # A retry: nothing new is stored, so nothing new is audited (the first request's entry stands).
        response.status_code = status.HTTP_200_OK
        return silence_public(exc.record, now=controller.clock.now())
    except SilenceRejected as exc:
        raise Invalid("; ".join(exc.problems)) from exc
    except EdgefleetError as exc:
        raise store_unavailable(exc) from exc
    silenced = record.silence
    record_change(
        controller,
        AuditRecord(
            controller.clock.now(),
            actor,
            "add-silence",
            Target("silence", silenced.id, _site_of(inventory, silenced.site, silenced.box)),
            f"add silence {silenced.id}",
            after=_silence_state(record),
        ),
    )
    return silence_public(record, now=controller.clock.now())


@router.delete(
    "/{silence}",
    summary="End a silence",
    response_model=SilencePublic,
    responses=alert_error_responses(404, 409),
)
def end_silence(
    silence: Name,
    controller: ControllerDep,
    alerting: AlertingDep,
    principal: PrincipalDep,
    actor: ActorDep,
    by: Annotated[str | None, Query(include_in_schema=False)] = None,
) -> SilencePublic:
    """End the silence (its id or a unique start of it) now: the alerts it muted are told if they still fire. It
    stays listed, expired. Who ended it is who signed in."""
    if by is not None:
        # Once a parameter; refused rather than ignored, so that an old client learns its name is not recorded.
        raise Invalid(f"query parameter 'by': {ACTOR_REFUSED.format(field='by')}")
    inventory = controller.state.inventory
    try:
        record = _resolve_silence(alerting, principal, inventory, silence)
        authorize(principal, "silence", _site_of(inventory, record.silence.site, record.silence.box))
        ended = alerting.end_silence(record.silence.id, by=principal.name)
    except AlertNotFound as exc:
        raise NotFound(str(exc)) from exc
    except SilenceStateError as exc:
        raise Conflict(str(exc)) from exc
    except EdgefleetError as exc:
        raise store_unavailable(exc) from exc
    site = _site_of(inventory, record.silence.site, record.silence.box)
    record_change(
        controller,
        AuditRecord(
            controller.clock.now(),
            actor,
            "end-silence",
            Target("silence", record.silence.id, site),
            f"end silence {record.silence.id}",
            before=_silence_state(record),
            after=_silence_state(ended),
        ),
    )
    return silence_public(ended, now=controller.clock.now())


def _silence_state(record: SilenceRecord) -> dict[str, Json]:
    """What the audit keeps of a silence: what it mutes, until when, who made it and why, who ended it."""
    silence = record.silence
    return summary_of(
        {
            "site": silence.site,
            "box": silence.box,
            "kind": silence.kind,
            "starts_at": silence.starts_at,
            "ends_at": silence.ends_at,
            "created_by": silence.created_by,
            "comment": silence.comment,
            "ended_by": record.ended_by,
        }
    )


def _resolve_silence(alerting: AlertService, principal: Principal, inventory: Inventory, given: str) -> SilenceRecord:
    """The silence with id ``given``, else the only one the caller may read whose id starts so."""
    try:
        return alerting.silence(given)
    except AlertNotFound:
        if not re.fullmatch(ID_START, given):
            raise
    found = [
        r
        for r in alerting.list_silences(include_expired=True, id_prefix=given, limit=None)
        if _may_read(principal, inventory, r)
    ]
    if not found:
        raise AlertNotFound(
            f"no silence {given!r}, nor one whose id starts so; GET /api/v1/silences?all=true "
            "(or 'edgefleet silence list --all') lists the ids"
        )
    if len(found) > 1:
        listed = ", ".join(r.silence.id for r in found[:MAX_CANDIDATES])
        more = ", ..." if len(found) > MAX_CANDIDATES else ""
        raise Conflict(f"{given!r} starts the id of {len(found)} silences: {listed}{more}; give more of the id")
    return found[0]
