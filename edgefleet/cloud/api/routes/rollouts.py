"""``/api/v1/rollouts``: the plan of a release over the live fleet (``POST /api/v1/rollouts/plan``, what
``edgefleet rollout plan`` shows), before anything runs.

The body is JSON, ``{"release": "<the release manifest as YAML text>"}``: the CLI sends the file as written, so
every problem can name its line. A release that does not parse, or that cannot be planned over the fleet now,
is refused with 422 naming every problem as "line N, field F: reason".
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from fastapi import APIRouter, Depends

from edgefleet.cloud.api.deps import ControllerDep, PrincipalDep, authorize, require_access
from edgefleet.cloud.api.errors import Invalid
from edgefleet.cloud.api.rollout_schemas import PlanPublic, PlanRequest, plan_public
from edgefleet.cloud.api.schemas import error_responses
from edgefleet.cloud.rollouts.facts import site_facts
from edgefleet.cloud.rollouts.planning import PlanRefused, plan_rollout
from edgefleet.errors import Problem
from edgefleet.manifests import Document, check_kind, convert, read_documents
from edgefleet.releases import API_VERSION, KIND, ReleaseManifest

router = APIRouter(
    prefix="/api/v1/rollouts",
    tags=["rollouts"],
    dependencies=[Depends(require_access)],
    responses=error_responses(403, 422, 500),
)

_FIELDS_DOC = "docs/rollouts.md"


def _where(line: int | None, field: str) -> str:
    parts = ([f"line {line}"] if line is not None else []) + ([f"field {field}"] if field else [])
    return ", ".join(parts)


def _refuse(problems: list[Problem]) -> Invalid:
    said = "; ".join(f"{_where(p.line, p.field)}: {p.reason}" if p.line or p.field else p.reason for p in problems)
    return Invalid(f"the release was refused: {said}")


def _read_release(text: str) -> tuple[ReleaseManifest, Document]:
    """The release in ``text``, with its document (for the line of a field); raises ``Invalid`` naming every
    problem. The release loader (``edgefleet.releases``) takes this over when it lands."""
    problems: list[Problem] = []
    with tempfile.TemporaryDirectory() as directory:
        file = Path(directory) / "release.yaml"
        file.write_text(text, encoding="utf-8")
        documents = read_documents(file, problems)
    if not problems and len(documents) != 1:
        problems.append(Problem("", None, "", f"send one release manifest, not {len(documents)} YAML documents"))
    if problems:
        raise _refuse(problems)
    document = documents[0]
    release = None
    if check_kind(document, "", API_VERSION, KIND, problems):
        release = convert(document, ReleaseManifest, "", problems, fields_doc=_FIELDS_DOC)
    if release is None:
        raise _refuse(problems)
    return release, document


@router.post(
    "/plan",
    summary="Plan a release over the fleet as it is now",
    response_model=PlanPublic,
)
def plan_release(controller: ControllerDep, principal: PrincipalDep, body: PlanRequest) -> PlanPublic:
    """The canary and the waves of the release, their sites and hardware, the sites held, offline or up to date,
    and the blackouts in force or next at each site; 422 naming the line and field of every problem."""
    authorize(principal, None)
    release, document = _read_release(body.release)
    state = controller.state
    inventory = state.inventory  # one inventory for the whole plan, even if a reload lands meanwhile
    now = controller.clock.now()
    facts = site_facts(state, release.spec.app, now=now)
    try:
        # No site can be held yet: holds come with the rollout store (issue 15, control); the plan takes them then.
        plan = plan_rollout(release, inventory, facts, held=frozenset(), now=now)
    except PlanRefused as exc:
        raise _refuse([Problem("", document.line(r.path), r.field, r.reason) for r in exc.refusals]) from exc
    return plan_public(plan, inventory)
