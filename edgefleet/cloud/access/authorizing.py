"""The one decision table of access: may this principal take this action on this site (or fleet-wide)?

Roles, in the words of the people who hold them:

- ``admin``: everything, everywhere, tokens included.
- ``release-manager``: ships releases: plans, starts and commands rollouts, holds sites, and answers alerts.
- ``ops``: runs the fleet: answers alerts, holds sites, commands (pauses, aborts) running rollouts, reloads the
  inventory and restarts clusters; does not plan or start rollouts.
- ``site-staff``: the people at one or more sites: read, acknowledge, silence and hold their own sites only.
- ``viewer``: reads everything, changes nothing.

Scope comes before the role: a site-scoped principal asking about another site gets ``hidden`` (the API answers
404, so that the other site's existence leaks no more than its data), and asking for something fleet-wide (a
rollout, a cluster, every site's metrics) gets ``forbidden``. Lists that mix sites filter per item with
``may_see`` instead of refusing.

Pure: no clock, no I/O. ``tests/cloud/access/test_the_decision_table.py`` checks every role x action x
(own site, other site, fleet-wide).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, get_args

from edgefleet.ids import SiteId

Role = Literal["admin", "release-manager", "ops", "site-staff", "viewer"]
ROLES: Final[tuple[Role, ...]] = get_args(Role)

Action = Literal[
    "read",
    "read-audit",
    "acknowledge",
    "silence",
    "hold-site",
    "plan-rollout",
    "start-rollout",
    "command-rollout",
    "reload-inventory",
    "restart-cluster",
    "manage-tokens",
    "enroll-box",
]
ACTIONS: Final[tuple[Action, ...]] = get_args(Action)

# Roles that may be scoped to sites. Only site staff are: a release manager or ops scoped to a site would hold
# fleet-wide actions (rollouts, clusters) that no single site can contain.
SCOPED_ROLES: Final[frozenset[Role]] = frozenset({"site-staff"})

# What each role may do on what it can see. Kept as data so that the docs and the tests read the same table.
GRANTS: Final[dict[Role, frozenset[Action]]] = {
    "admin": frozenset(ACTIONS),
    "release-manager": frozenset(
        {
            "read",
            "read-audit",
            "acknowledge",
            "silence",
            "hold-site",
            "plan-rollout",
            "start-rollout",
            "command-rollout",
        }
    ),
    "ops": frozenset(
        {
            "read",
            "read-audit",
            "acknowledge",
            "silence",
            "hold-site",
            "command-rollout",
            "reload-inventory",
            "restart-cluster",
        }
    ),
    # Site staff install their own site's boxes, so they mint that site's enrollment tokens (and no other's).
    "site-staff": frozenset({"read", "read-audit", "acknowledge", "silence", "hold-site", "enroll-box"}),
    "viewer": frozenset({"read"}),
}


class PrincipalError(ValueError):
    """A principal that cannot exist (site staff with no site, a viewer scoped to sites); the message says how
    to fix it."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who calls: a name (the actor recorded for every action), a role, and the sites it is scoped to
    (``None``: every site; only site staff are scoped)."""

    name: str
    role: Role
    sites: frozenset[SiteId] | None = None

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise PrincipalError(f"unknown role {self.role!r}; use one of {', '.join(ROLES)}")
        if self.role in SCOPED_ROLES and not self.sites:
            raise PrincipalError(f"role {self.role!r} needs at least one site; name them with --site")
        if self.role not in SCOPED_ROLES and self.sites is not None:
            raise PrincipalError(f"role {self.role!r} covers every site; drop --site, or use role 'site-staff'")

    def may_see(self, site: SiteId | None) -> bool:
        """Whether ``site``'s data belongs in this principal's lists; ``None`` stands for fleet-wide data."""
        if self.sites is None:
            return True
        return site is not None and site in self.sites


Outcome = Literal["allowed", "forbidden", "hidden"]


@dataclass(frozen=True, slots=True)
class Decision:
    """``allowed``; ``forbidden`` (the API answers 403: a known caller lacking the role); ``hidden`` (404: the
    object lies outside the caller's sites). ``reason`` is for the person refused, and names no other site."""

    outcome: Outcome
    reason: str

    @property
    def allowed(self) -> bool:
        return self.outcome == "allowed"


def authorize(principal: Principal, action: Action, site: SiteId | None) -> Decision:
    """Decide whether ``principal`` may take ``action`` on ``site`` (``None``: something fleet-wide)."""
    if principal.sites is not None:
        if site is None:
            return Decision("forbidden", f"{principal.name!r} is scoped to its sites; fleet-wide data is not theirs")
        if site not in principal.sites:
            return Decision("hidden", "not found")
    if action not in GRANTS[principal.role]:
        return Decision(
            "forbidden",
            f"{principal.name!r} ({principal.role}) may not {action}; ask an admin for a role that may",
        )
    return Decision("allowed", "allowed")
