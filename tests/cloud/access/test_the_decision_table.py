"""Every role x every action x (its own site, another site, fleet-wide): the decision table as the people who
hold the roles would state it, written here independently of ``GRANTS`` so that a change to either shows."""

from __future__ import annotations

import pytest

from edgefleet.cloud.access.authorizing import ACTIONS, ROLES, Action, Principal, PrincipalError, Role, authorize
from edgefleet.ids import SiteId

OWN = SiteId("berlin-1")
OTHER = SiteId("paris-2")

# What each role may do where it can see, by action; "-" may not. Scope is checked separately below.
TABLE: dict[Action, dict[Role, bool]] = {
    #                    admin  release-manager  ops   site-staff  viewer
    "read": dict(zip(ROLES, (True, True, True, True, True), strict=True)),
    "read-audit": dict(zip(ROLES, (True, True, True, True, False), strict=True)),
    "acknowledge": dict(zip(ROLES, (True, True, True, True, False), strict=True)),
    "silence": dict(zip(ROLES, (True, True, True, True, False), strict=True)),
    "hold-site": dict(zip(ROLES, (True, True, True, True, False), strict=True)),
    "plan-rollout": dict(zip(ROLES, (True, True, False, False, False), strict=True)),
    "start-rollout": dict(zip(ROLES, (True, True, False, False, False), strict=True)),
    "command-rollout": dict(zip(ROLES, (True, True, True, False, False), strict=True)),
    "reload-inventory": dict(zip(ROLES, (True, False, True, False, False), strict=True)),
    "restart-cluster": dict(zip(ROLES, (True, False, True, False, False), strict=True)),
    "manage-tokens": dict(zip(ROLES, (True, False, False, False, False), strict=True)),
    # Site staff install their own site's boxes; the other roles have no box to install.
    "enroll-box": dict(zip(ROLES, (True, False, False, True, False), strict=True)),
}


def test_the_table_names_every_role_and_action() -> None:
    assert ROLES == ("admin", "release-manager", "ops", "site-staff", "viewer")
    assert set(TABLE) == set(ACTIONS)


def principal_of(role: Role) -> Principal:
    return Principal(name=f"a-{role}", role=role, sites=frozenset({OWN}) if role == "site-staff" else None)


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("role", ROLES)
def test_each_role_on_its_own_site_another_site_and_the_fleet(role: Role, action: Action) -> None:
    principal = principal_of(role)
    granted = TABLE[action][role]
    own = authorize(principal, action, OWN)
    other = authorize(principal, action, OTHER)
    fleet = authorize(principal, action, None)

    assert own.outcome == ("allowed" if granted else "forbidden")
    if role == "site-staff":
        # Another site's object is as good as absent (404); fleet-wide is refused outright (403).
        assert other.outcome == "hidden"
        assert fleet.outcome == "forbidden"
        assert OTHER not in other.reason
    else:
        assert other.outcome == own.outcome
        assert fleet.outcome == own.outcome
    assert own.allowed == granted


def test_a_refusal_says_who_and_what() -> None:
    decision = authorize(principal_of("viewer"), "acknowledge", OWN)
    assert decision.outcome == "forbidden"
    assert "'a-viewer'" in decision.reason
    assert "acknowledge" in decision.reason


def test_lists_keep_only_the_sites_a_principal_sees() -> None:
    staff = principal_of("site-staff")
    assert [s for s in (OWN, OTHER, None) if staff.may_see(s)] == [OWN]
    assert all(principal_of("viewer").may_see(s) for s in (OWN, OTHER, None))


@pytest.mark.parametrize(
    ("role", "sites", "hint"),
    [
        ("site-staff", None, "needs at least one site"),
        ("site-staff", frozenset(), "needs at least one site"),
        ("viewer", frozenset({OWN}), "drop --site"),
        ("admin", frozenset({OWN}), "drop --site"),
        ("root", None, "unknown role 'root'"),
    ],
)
def test_a_principal_that_cannot_exist_is_refused(role: str, sites: frozenset[SiteId] | None, hint: str) -> None:
    with pytest.raises(PrincipalError, match=hint):
        Principal(name="x", role=role, sites=sites)  # type: ignore[arg-type]
