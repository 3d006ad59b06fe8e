"""``/api/v1/inventory``: the inventory in force (its version and size), and taking the sites directory again
(``POST /api/v1/inventory/reload``, what ``edgefleet sites apply`` calls; SIGHUP does the same).

A reload is whole or nothing: a directory with any problem is refused with 422 listing every one (file, line,
field, reason) and the inventory in force stays; ``expect_version`` refuses with 409 when the controller's
directory does not hold what the caller applied. Changing the inventory is fleet-wide: the caller must be allowed
fleet-wide data.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from edgefleet.cloud.access.audit_log import inventory_reloaded
from edgefleet.cloud.api.deps import ActorDep, ControllerDep, PrincipalDep, authorize, record_change, require_access
from edgefleet.cloud.api.errors import Conflict, Invalid
from edgefleet.cloud.api.schemas import error_responses
from edgefleet.cloud.fleet import InventoryChange
from edgefleet.errors import InventoryError, InventoryVersionMismatch

router = APIRouter(
    prefix="/api/v1/inventory",
    tags=["inventory"],
    dependencies=[Depends(require_access)],
    responses=error_responses(401, 403, 429, 422, 500),
)

# A version as ``inventory.inventory_version`` writes it: lower-case hex.
VERSION_PATTERN = r"^[0-9a-f]{1,64}$"


class InventoryPublic(BaseModel):
    version: str = Field(description="Content hash of the site manifests in force.")
    sites: int
    boxes: int


class ReloadBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expect_version: str | None = Field(
        default=None,
        pattern=VERSION_PATTERN,
        max_length=64,
        description="Refuse (409) unless the controller's sites directory holds this version.",
    )


class InventoryChangePublic(BaseModel):
    version: str
    previous_version: str
    changed: bool
    sites: int
    boxes: int
    sites_added: list[str]
    sites_removed: list[str]
    boxes_added: list[str]
    boxes_removed: list[str]
    boxes_moved: list[str]
    adopted: list[str] = Field(description="Boxes that were listed as unknown and are now in the inventory.")


@router.get("", summary="Show the inventory in force", response_model=InventoryPublic)
def show_inventory(controller: ControllerDep, principal: PrincipalDep) -> InventoryPublic:
    """The version of the site manifests in force, and how many sites and boxes they name."""
    authorize(principal, "read", None)
    inventory = controller.state.inventory
    return InventoryPublic(version=inventory.version, sites=len(inventory.sites), boxes=len(inventory.boxes))


@router.post(
    "/reload",
    summary="Take the sites directory again, whole or not at all",
    response_model=InventoryChangePublic,
    responses=error_responses(409),
)
def reload_inventory(
    controller: ControllerDep, principal: PrincipalDep, actor: ActorDep, body: ReloadBody | None = None
) -> InventoryChangePublic:
    """Read the controller's sites directory again and put it in force whole (what changed is answered), or
    refuse it whole: 422 listing every problem, 409 when it does not hold ``expect_version``."""
    authorize(principal, "reload-inventory", None)
    try:
        change = controller.reload_inventory(expect_version=body.expect_version if body else None)
    except InventoryError as exc:
        raise Invalid(
            f"the sites directory was refused whole, the inventory in force stays: {len(exc.problems)} problem(s): "
            + "; ".join(str(p) for p in exc.problems)
        ) from exc
    except InventoryVersionMismatch as exc:
        raise Conflict(str(exc)) from exc
    public = _change_public(change, controller)
    record_change(
        controller, inventory_reloaded(controller.clock.now(), actor, change, sites=public.sites, boxes=public.boxes)
    )
    return public


def _change_public(change: InventoryChange, controller: ControllerDep) -> InventoryChangePublic:
    inventory = controller.state.inventory
    return InventoryChangePublic(
        version=change.version,
        previous_version=change.previous_version,
        changed=change.changed,
        sites=len(inventory.sites),
        boxes=len(inventory.boxes),
        sites_added=list(change.sites_added),
        sites_removed=list(change.sites_removed),
        boxes_added=list(change.boxes_added),
        boxes_removed=list(change.boxes_removed),
        boxes_moved=list(change.boxes_moved),
        adopted=list(change.adopted),
    )
