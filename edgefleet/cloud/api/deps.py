"""What the API's routes depend on: the controller they read (behind a small protocol, so tests pass an
in-memory one) and the one access check every route goes through.

``create_app`` puts the controller and the settings into the lifespan state; routes take them as
``ControllerDep`` and ``SettingsDep``, alerting as ``AlertingDep`` (the typed ``AlertService``, 503 where it does not
run), rollouts as ``RolloutsDep`` (``rollouts.service.RolloutService``, 503 likewise), and the caller as ``PrincipalDep``. Routes depend on this module and never on each other. Every route names the action it takes and the site it touches to ``authorize``, which asks the one
decision table (``edgefleet.cloud.access.authorizing``); who calls is filled in by ``require_access``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Final, Protocol

from fastapi import Depends, Request

from edgefleet.clock import Clock
from edgefleet.cloud.access.authorizing import Action, Principal
from edgefleet.cloud.access.authorizing import authorize as decide
from edgefleet.cloud.alerting.service import AlertService
from edgefleet.cloud.api.errors import Forbidden, NotFound, Unavailable
from edgefleet.cloud.fleet import FleetState, HealthPoint, InventoryChange
from edgefleet.cloud.hearing import Hearing, IngestStats
from edgefleet.cloud.k8s.gateway import ClusterGateway
from edgefleet.cloud.k8s.health import ClusterHealth
from edgefleet.cloud.leading import Leadership
from edgefleet.cloud.restarts import Restarts
from edgefleet.cloud.rollouts.service import RolloutService
from edgefleet.cloud.saving import SavingHealth
from edgefleet.cloud.settings import Settings
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


# Until ``require_access`` reads a token (issue 17's next step), every caller stands for an administrator of
# every site: exactly as open as the API was before roles existed, but now stated through the decision table,
# so that every route already names the action it takes and only this function has to change.
ANONYMOUS: Final = Principal(name="anonymous", role="admin")


def require_access(request: Request) -> Principal:
    """The one access check every route goes through (a router-level dependency of every router).

    Today it admits every caller as ``ANONYMOUS``; identity reads the caller's bearer token from ``request``
    here and refuses the unknown with 401.
    """
    return ANONYMOUS


PrincipalDep = Annotated[Principal, Depends(require_access)]


def authorize(principal: Principal, action: Action, site: SiteId | None) -> None:
    """Refuse unless ``access.authorizing.authorize`` allows ``action`` on ``site`` (None: something
    fleet-wide): 403 for a known caller lacking the role, 404 for another site's object (as if absent)."""
    decision = decide(principal, action, site)
    if decision.outcome == "hidden":
        # Says nothing of what exists beyond the caller's sites.
        raise NotFound("not found among the sites you may see; GET /api/v1/sites lists them")
    if decision.outcome == "forbidden":
        raise Forbidden(decision.reason)
