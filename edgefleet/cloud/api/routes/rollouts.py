"""``/api/v1/rollouts``: the plan of a release over the live fleet (``POST /api/v1/rollouts/plan``, what
``edgefleet rollout plan`` shows), before anything runs; starting a rollout (``POST /api/v1/rollouts``, honouring an
``Idempotency-Key`` header: a retried request answers the rollout the first one started, 200 instead of 201), the
rollouts (``GET``, paged newest first, and one with its waves, sites and gates), the release manager's commands
(``POST /api/v1/rollouts/{id}/pause|resume|promote|abort|rollback``), overriding the blackout windows with a
reason (``override_blackout`` in the start's body, or ``POST /api/v1/rollouts/{id}/override-blackout`` with
``{"reason": ...}`` once the rollout runs: an urgent release is known to be urgent before it starts, and a
running one shows its blocked sites before anyone decides to override; a blank reason is refused with 422), and
site holds (``GET|POST|DELETE /api/v1/sites/{site}/hold``, on ``holds_router``: whether it is held, hold, release). Refusals: 409 for a second active rollout of an
app (naming the active one), a release older than what runs without ``rollback: true``, or a command the
rollout's state does not take; 404 for an unknown rollout or site; 503 when the database cannot be used. A start
whose image a registry does not have is refused with 422, one whose registry cannot be asked with 503, each
naming the image, the registry and what it said (docs/releases.md, "Pinning"); the plan shows each image's pin.

The body is JSON, ``{"release": "<the release manifest as YAML text>"}``: the CLI sends the file as written, so
every problem can name its line. The release loader (``edgefleet.releases.load_release_text``) reads it against
the controller's inventory, as ``edgefleet releases validate`` does a file; then the plan is made over the fleet
now. A release the loader refuses, or one that cannot be planned over the fleet now, is refused with 422 naming
every problem as "line N, field F: reason" in the API's error shape.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response

from edgefleet.cloud.access.audit_log import Actor
from edgefleet.cloud.api.deps import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    ActorDep,
    ControllerDep,
    FleetReader,
    PrincipalDep,
    RolloutsDep,
    authorize,
    require_access,
)
from edgefleet.cloud.api.errors import Conflict, Invalid, NotFound, Unavailable
from edgefleet.cloud.api.fields import Name
from edgefleet.cloud.api.paging import CursorQuery, decode_cursor, encode_cursor, set_next_page
from edgefleet.cloud.api.rollout_schemas import (
    CommandRequest,
    HoldPublic,
    HoldRequest,
    ImagePinPublic,
    OverrideRequest,
    PlanPublic,
    PlanRequest,
    RolloutPublic,
    RolloutRequest,
    RolloutSummaryPublic,
    SiteManifestsPublic,
    hold_public,
    plan_public,
    rollout_public,
    rollout_summary,
)
from edgefleet.cloud.api.schemas import error_responses
from edgefleet.cloud.rollouts.facts import site_facts
from edgefleet.cloud.rollouts.planning import PlanRefused, plan_rollout
from edgefleet.cloud.rollouts.rendering import render
from edgefleet.cloud.rollouts.service import (
    ActiveRolloutExists,
    BadOverride,
    Command,
    ImagesNotPinned,
    RolloutNotFound,
    RolloutRefused,
    RolloutService,
    StoredRollout,
)
from edgefleet.errors import EdgefleetError, Problem, ReleaseError
from edgefleet.ids import SiteId
from edgefleet.manifests import parse_documents
from edgefleet.releases import image_field, load_release_text

router = APIRouter(
    prefix="/api/v1/rollouts",
    tags=["rollouts"],
    dependencies=[Depends(require_access)],
    responses=error_responses(401, 403, 429, 422, 500),
)
holds_router = APIRouter(
    prefix="/api/v1/sites",
    tags=["rollouts"],
    dependencies=[Depends(require_access)],
    responses=error_responses(401, 403, 429, 404, 422, 500, 503),
)

# What problems name as the file: the API's messages give line and field only.
_SHOWN = "release"


def _where(line: int | None, field: str) -> str:
    parts = ([f"line {line}"] if line is not None else []) + ([f"field {field}"] if field else [])
    return ", ".join(parts)


def _said(problem: Problem) -> str:
    return (
        f"{_where(problem.line, problem.field)}: {problem.reason}" if problem.line or problem.field else problem.reason
    )


def _refuse(problems: list[Problem]) -> Invalid:
    return Invalid("the release was refused: " + "; ".join(_said(p) for p in problems))


@router.post(
    "/plan",
    summary="Plan a release over the fleet as it is now",
    response_model=PlanPublic,
)
def plan_release(controller: ControllerDep, principal: PrincipalDep, body: PlanRequest) -> PlanPublic:
    """The canary and the waves of the release, their sites and hardware, the sites held, offline or up to date,
    and the blackouts in force or next at each site; 422 naming the line and field of every problem."""
    authorize(principal, "plan-rollout", None)
    state = controller.state
    inventory = state.inventory  # one inventory for the whole plan, even if a reload lands meanwhile
    try:
        release = load_release_text(body.release, _SHOWN, inventory)
    except ReleaseError as exc:
        raise _refuse(exc.problems) from exc
    now = controller.clock.now()
    facts = site_facts(state, release.app, now=now)
    try:
        plan = plan_rollout(release, inventory, facts, held=_held(controller), now=now)
    except PlanRefused as exc:
        raise _plan_refused(body.release, exc) from exc
    pins = controller.rollouts.pins(release) if controller.rollouts is not None else []
    # What pinning says of an image replaces the loader's "given by tag only" warning (at the same line): nothing
    # once it would be pinned, why not when it would not.
    by_field = {image_field(p.container): p for p in pins}
    warnings = [
        _said(replace(w, reason=pin.warning) if pin is not None and pin.warning else w)
        for w in release.warnings
        if (pin := by_field.get(w.field)) is None or pin.warning
    ]
    told = {w.field for w in release.warnings}
    warnings += [f"{field}: {p.warning}" for field, p in by_field.items() if p.warning and field not in told]
    warnings += [f"a start would be refused: {p.problem}" for p in pins if p.problem]
    public = plan_public(plan, inventory, warnings)
    public.images = [
        ImagePinPublic(container=p.container, image=p.image, pinned=p.pinned, warning=p.warning, problem=p.problem)
        for p in pins
    ]
    if body.manifests:
        central = [inventory.sites[SiteId(s.site)] for s in public.sites]
        public.manifests = [
            SiteManifestsPublic(
                site=site.id, cluster=site.cluster, objects=render(release, site.id, inventory, rollout_id=None)
            )
            for site in central
            if site.kind == "central"
        ]
    return public


def _held(controller: FleetReader) -> frozenset[SiteId]:
    """The sites held now (none where rollouts do not run)."""
    if controller.rollouts is None:
        return frozenset()
    try:
        return frozenset(controller.rollouts.holds())
    except EdgefleetError as exc:
        raise _unavailable(exc) from exc


def _plan_refused(text: str, exc: PlanRefused) -> Invalid:
    # The loader read this text already: its one document gives each refused field its line.
    document = parse_documents(text, _SHOWN, [])[0]
    return _refuse([Problem(_SHOWN, document.line(r.path), r.field, r.reason) for r in exc.refusals])


def _unavailable(exc: EdgefleetError) -> Unavailable:
    return Unavailable(f"cannot use the rollout store now: {exc}")


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="A key of the client's choosing: a request retried with the same key answers the rollout the "
        "first one started, and never starts a second.",
    ),
]
RolloutId = Annotated[str, Path(min_length=1, max_length=63, pattern=r"^[0-9a-z][0-9a-z-]*$")]


@router.post(
    "",
    summary="Start a rollout of a release",
    response_model=RolloutPublic,
    status_code=201,
    responses=error_responses(409, 503),
)
def start_rollout(
    controller: ControllerDep,
    rollouts: RolloutsDep,
    principal: PrincipalDep,
    actor: ActorDep,
    body: RolloutRequest,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> RolloutPublic:
    """Plan the release over the fleet now and start rolling it out; 201 with the rollout, or 200 with the one a
    first request with the same ``Idempotency-Key`` started. 422 names every problem of the release or plan; 409
    when another rollout of the app is active, or the release is older than what runs (without ``rollback: true``)."""
    authorize(principal, "start-rollout", None)
    try:
        rollout, created = rollouts.start(
            body.release,
            by=principal.name,
            idempotency_key=idempotency_key,
            override_blackout=body.override_blackout,
            actor=actor,
        )
    except BadOverride as exc:
        raise Invalid(str(exc)) from exc
    except ReleaseError as exc:
        raise _refuse(exc.problems) from exc
    except PlanRefused as exc:
        raise _plan_refused(body.release, exc) from exc
    except (ActiveRolloutExists, RolloutRefused) as exc:
        raise Conflict(str(exc)) from exc
    except ImagesNotPinned as exc:
        # A registry not answering may answer later (503); one without the image needs the release fixed (422).
        raise (Unavailable(str(exc)) if exc.unavailable else Invalid(str(exc))) from exc
    except EdgefleetError as exc:
        raise _unavailable(exc) from exc
    if not created:
        response.status_code = 200
    return rollout_public(rollout)


@router.get("", summary="List rollouts", response_model=list[RolloutSummaryPublic], responses=error_responses(503))
def list_rollouts(
    request: Request,
    response: Response,
    rollouts: RolloutsDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="At most this many.")] = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> list[RolloutSummaryPublic]:
    """Rollouts newest first (by start, then id), a page at a time: when more follow, the ``X-Next-Cursor`` header
    holds the ``cursor`` of the next page."""
    authorize(principal, "read", None)
    after = decode_cursor(cursor, "rollouts", (float, str)) if cursor is not None else None
    try:
        page = rollouts.page(after=(float(after[0]), str(after[1])) if after else None, limit=limit + 1)
    except EdgefleetError as exc:
        raise _unavailable(exc) from exc
    more = len(page) > limit
    page = page[:limit]
    last = page[-1] if page else None
    set_next_page(request, response, encode_cursor("rollouts", (last.created_at, last.id)) if more and last else None)
    return [rollout_summary(r) for r in page]


def _rollout(rollouts: RolloutService, rollout_id: str) -> StoredRollout:
    try:
        return rollouts.get(rollout_id)
    except RolloutNotFound as exc:
        raise NotFound(str(exc)) from exc
    except EdgefleetError as exc:
        raise _unavailable(exc) from exc


@router.get(
    "/{rollout_id}",
    summary="Show a rollout: each wave and site with its state, gates and reasons",
    response_model=RolloutPublic,
    responses=error_responses(404, 503),
)
def get_rollout(rollouts: RolloutsDep, principal: PrincipalDep, rollout_id: RolloutId) -> RolloutPublic:
    """The rollout's state and reason, each wave with its sites (state, reason, previous release, the gates the
    last tick judged), and the sites deferred and held; 404 for an unknown id."""
    authorize(principal, "read", None)
    return rollout_public(_rollout(rollouts, rollout_id))


def _command(
    rollouts: RolloutService, actor: Actor, rollout_id: str, command: Command, body: CommandRequest | None
) -> RolloutPublic:
    _rollout(rollouts, rollout_id)
    try:
        return rollout_public(rollouts.command(rollout_id, command, by=actor.name, actor=actor))
    except (RolloutRefused, ActiveRolloutExists) as exc:
        raise Conflict(str(exc)) from exc
    except EdgefleetError as exc:
        raise _unavailable(exc) from exc


_COMMAND_RESPONSES = error_responses(404, 409, 503)


@router.post("/{rollout_id}/pause", summary="Pause: no site starts", response_model=RolloutPublic,
             responses=_COMMAND_RESPONSES)  # fmt: skip
def pause_rollout(
    rollouts: RolloutsDep,
    principal: PrincipalDep,
    actor: ActorDep,
    rollout_id: RolloutId,
    body: CommandRequest | None = None,
) -> RolloutPublic:
    """Sites in flight are still gated (and the failure threshold still aborts); no new site starts."""
    authorize(principal, "command-rollout", None)
    return _command(rollouts, actor, rollout_id, "pause", body)


@router.post("/{rollout_id}/resume", summary="Resume a paused rollout", response_model=RolloutPublic,
             responses=_COMMAND_RESPONSES)  # fmt: skip
def resume_rollout(
    rollouts: RolloutsDep,
    principal: PrincipalDep,
    actor: ActorDep,
    rollout_id: RolloutId,
    body: CommandRequest | None = None,
) -> RolloutPublic:
    """Sites start again where the rollout paused."""
    authorize(principal, "command-rollout", None)
    return _command(rollouts, actor, rollout_id, "resume", body)


@router.post("/{rollout_id}/promote", summary="Promote the wave that waits for approval", response_model=RolloutPublic,
             responses=_COMMAND_RESPONSES)  # fmt: skip
def promote_rollout(
    rollouts: RolloutsDep,
    principal: PrincipalDep,
    actor: ActorDep,
    rollout_id: RolloutId,
    body: CommandRequest | None = None,
) -> RolloutPublic:
    """The wave awaiting approval (or, before it waits, the next one that needs it) may start."""
    authorize(principal, "command-rollout", None)
    return _command(rollouts, actor, rollout_id, "promote", body)


@router.post("/{rollout_id}/abort", summary="Abort: stop and revert the sites touched", response_model=RolloutPublic,
             responses=_COMMAND_RESPONSES)  # fmt: skip
def abort_rollout(
    rollouts: RolloutsDep,
    principal: PrincipalDep,
    actor: ActorDep,
    rollout_id: RolloutId,
    body: CommandRequest | None = None,
) -> RolloutPublic:
    """No site starts; every site the rollout applied goes back to the release it ran before (an offline one when
    it returns)."""
    authorize(principal, "command-rollout", None)
    return _command(rollouts, actor, rollout_id, "abort", body)


@router.post("/{rollout_id}/rollback", summary="Roll back every site the rollout changed", response_model=RolloutPublic,
             responses=_COMMAND_RESPONSES)  # fmt: skip
def rollback_rollout(
    rollouts: RolloutsDep,
    principal: PrincipalDep,
    actor: ActorDep,
    rollout_id: RolloutId,
    body: CommandRequest | None = None,
) -> RolloutPublic:
    """Each site the rollout applied goes back to the release it ran before, also after the rollout is done."""
    authorize(principal, "command-rollout", None)
    return _command(rollouts, actor, rollout_id, "rollback", body)


@router.post("/{rollout_id}/override-blackout", summary="Let the rollout start sites inside their blackout windows",
             response_model=RolloutPublic, responses=_COMMAND_RESPONSES)  # fmt: skip
def override_blackout(
    rollouts: RolloutsDep, principal: PrincipalDep, actor: ActorDep, rollout_id: RolloutId, body: OverrideRequest
) -> RolloutPublic:
    """From now on the rollout starts sites blocked by their blackout windows, for the reason given (audited, shown
    on the rollout and on each site started so); 422 for a blank reason, 409 once the rollout ended."""
    authorize(principal, "start-rollout", None)
    _rollout(rollouts, rollout_id)
    try:
        return rollout_public(
            rollouts.override_blackout(rollout_id, reason=body.reason, by=principal.name, actor=actor)
        )
    except BadOverride as exc:
        raise Invalid(str(exc)) from exc
    except RolloutRefused as exc:
        raise Conflict(str(exc)) from exc
    except EdgefleetError as exc:
        raise _unavailable(exc) from exc


SitePath = Name


@holds_router.get("/{site}/hold", summary="Show a site's hold", response_model=HoldPublic)
def show_hold(controller: ControllerDep, rollouts: RolloutsDep, principal: PrincipalDep, site: SitePath) -> HoldPublic:
    """The site's hold (reason, who, since); 404 when the site is not held, or not in the inventory."""
    authorize(principal, "read", SiteId(site))
    if site not in controller.state.inventory.sites:
        raise NotFound(f"no site {site!r} in the inventory; 'edgefleet sites' lists them")
    try:
        held = rollouts.holds().get(SiteId(site))
    except EdgefleetError as exc:
        raise _unavailable(exc) from exc
    if held is None:
        raise NotFound(f"site {site!r} is not held")
    return hold_public(held)


@holds_router.post("/{site}/hold", summary="Hold a site: rollouts skip it until released", response_model=HoldPublic)
def hold_site(
    controller: ControllerDep,
    rollouts: RolloutsDep,
    principal: PrincipalDep,
    actor: ActorDep,
    site: SitePath,
    body: HoldRequest,
) -> HoldPublic:
    """Rollouts skip the site until it is released (a site already in flight is still gated); 404 for a site not
    in the inventory."""
    authorize(principal, "hold-site", SiteId(site))
    if site not in controller.state.inventory.sites:
        raise NotFound(f"no site {site!r} in the inventory; 'edgefleet sites' lists them")
    try:
        return hold_public(rollouts.hold(SiteId(site), reason=body.reason, by=principal.name, actor=actor))
    except EdgefleetError as exc:
        raise _unavailable(exc) from exc


@holds_router.delete("/{site}/hold", summary="Release a site's hold", response_model=HoldPublic)
def release_site(rollouts: RolloutsDep, principal: PrincipalDep, actor: ActorDep, site: SitePath) -> HoldPublic:
    """The hold released; 404 when the site is not held."""
    authorize(principal, "hold-site", SiteId(site))
    try:
        released = rollouts.release_hold(SiteId(site), by=principal.name, actor=actor)
    except EdgefleetError as exc:
        raise _unavailable(exc) from exc
    if released is None:
        raise NotFound(f"site {site!r} is not held")
    return hold_public(released)
