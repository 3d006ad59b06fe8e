"""``/api/v1/boxes/{box}``: one box with its latest health and its recent history."""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Depends, Query

from edgefleet.cloud.api.deps import ControllerDep, PrincipalDep, authorize, require_access
from edgefleet.cloud.api.errors import NotFound, Unavailable
from edgefleet.cloud.api.fields import Name, Seconds
from edgefleet.cloud.api.reading import read_boxes
from edgefleet.cloud.api.schemas import BoxDetail, box_public, error_responses, health_point_public, utc
from edgefleet.errors import EdgefleetError
from edgefleet.ids import BoxId

# A quarter of an hour of 10 s heartbeats (90 points) draws a useful chart and keeps the answer small.
DEFAULT_HISTORY_S: Final = 900.0
# The controller keeps a day by default (EDGEFLEET_HISTORY_RETENTION); a week bounds the answer however it is
# configured. Longer views belong in Prometheus.
MAX_HISTORY_S: Final = 7 * 24 * 3600.0

router = APIRouter(
    prefix="/api/v1/boxes",
    tags=["boxes"],
    dependencies=[Depends(require_access)],
    responses=error_responses(401, 403, 429, 422, 500),
)


@router.get(
    "/{box}",
    summary="Show a box",
    response_model=BoxDetail,
    responses=error_responses(404, 503),
)
def get_box(
    box: Name,
    controller: ControllerDep,
    principal: PrincipalDep,
    history_s: Annotated[
        Seconds, Query(gt=0, le=MAX_HISTORY_S, description="How far back the history goes, in seconds.")
    ] = DEFAULT_HISTORY_S,
) -> BoxDetail:
    """The box's inventory entry, reachability, Kubernetes node, latest heartbeat and health history."""
    found = controller.state.inventory.boxes.get(BoxId(box))
    if found is None:
        unknown = (
            " (it publishes but is in no site manifest: add it to sites/)" if box in controller.state.unknown else ""
        )
        raise NotFound(
            f"no box {box!r} in the inventory{unknown}; GET /api/v1/sites/{{site}}/boxes lists a site's boxes"
        )
    authorize(principal, "read", found.site)
    now = controller.clock.now()
    (view,) = read_boxes(controller.state, [found.id], now=now)
    since = now - history_s
    try:
        history = controller.box_history(found.id, since)
    except EdgefleetError as exc:  # history older than memory holds comes from the database
        raise Unavailable(f"cannot read the history of {box!r} now: {exc}") from exc
    return BoxDetail(
        **box_public(view.box, view.live, view.reachability, view.node, now=now).model_dump(),
        history_since=utc(since),
        history=[health_point_public(p) for p in history],
    )
