"""``/api/v1/rollouts``: the plan of a release over the live fleet (``POST /api/v1/rollouts/plan``, what
``edgefleet rollout plan`` shows), before anything runs.

The body is JSON, ``{"release": "<the release manifest as YAML text>"}``: the CLI sends the file as written, so
every problem can name its line. The release loader (``edgefleet.releases.load_release_text``) reads it against
the controller's inventory, as ``edgefleet releases validate`` does a file; then the plan is made over the fleet
now. A release the loader refuses, or one that cannot be planned over the fleet now, is refused with 422 naming
every problem as "line N, field F: reason" in the API's error shape.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from edgefleet.cloud.api.deps import ControllerDep, PrincipalDep, authorize, require_access
from edgefleet.cloud.api.errors import Invalid
from edgefleet.cloud.api.rollout_schemas import PlanPublic, PlanRequest, plan_public
from edgefleet.cloud.api.schemas import error_responses
from edgefleet.cloud.rollouts.facts import site_facts
from edgefleet.cloud.rollouts.planning import PlanRefused, plan_rollout
from edgefleet.errors import Problem, ReleaseError
from edgefleet.manifests import parse_documents
from edgefleet.releases import load_release_text

router = APIRouter(
    prefix="/api/v1/rollouts",
    tags=["rollouts"],
    dependencies=[Depends(require_access)],
    responses=error_responses(403, 422, 500),
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
    authorize(principal, None)
    state = controller.state
    inventory = state.inventory  # one inventory for the whole plan, even if a reload lands meanwhile
    try:
        release = load_release_text(body.release, _SHOWN, inventory)
    except ReleaseError as exc:
        raise _refuse(exc.problems) from exc
    now = controller.clock.now()
    facts = site_facts(state, release.app, now=now)
    try:
        # No site can be held yet: holds come with the rollout store (issue 15, control); the plan takes them then.
        plan = plan_rollout(release, inventory, facts, held=frozenset(), now=now)
    except PlanRefused as exc:
        # The loader read this text already: its one document gives each refused field its line.
        document = parse_documents(body.release, _SHOWN, [])[0]
        raise _refuse([Problem(_SHOWN, document.line(r.path), r.field, r.reason) for r in exc.refusals]) from exc
    return plan_public(plan, inventory, [_said(w) for w in release.warnings])
