"""The mapping from the provider's groups to roles and sites: the first listed group a person is in decides,
site-staff groups add up their sites, a person in no listed group gets no principal, and every problem of the
file is reported with its line, all at once; the OIDC settings refuse what is missing or unsafe, naming the
variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgefleet.cloud.access.oidc_config import GroupMappingError, oidc_from_env, parse_groups
from edgefleet.cloud.settings import Settings
from edgefleet.ids import SiteId

MAPPING = """\
groups:
  fleet-admins: admin
  ops: {role: ops}
  sh-pudong-staff: {role: site-staff, sites: [sh-pudong]}
  bj-daxing-staff: {role: site-staff, sites: [bj-daxing]}
  readers: viewer
"""


@pytest.mark.parametrize(
    ("groups", "role", "sites"),
    [
        (["readers", "fleet-admins"], "admin", None),  # the file's order decides, not the claim's
        (["ops", "readers"], "ops", None),
        (["bj-daxing-staff", "sh-pudong-staff", "readers"], "site-staff", {"sh-pudong", "bj-daxing"}),
        (["readers", "unknown-group"], "viewer", None),
    ],
)
def test_the_first_listed_group_decides(groups: list[str], role: str, sites: set[str] | None) -> None:
    found = parse_groups(MAPPING, where="groups.yaml").principal("li.wei", groups)
    assert found is not None
    assert found.role == role
    assert found.sites == (None if sites is None else frozenset(SiteId(s) for s in sites))


def test_no_listed_group_no_principal() -> None:
    assert parse_groups(MAPPING, where="groups.yaml").principal("guest", ["contractors"]) is None
    assert parse_groups(MAPPING, where="groups.yaml").principal("guest", []) is None


def test_every_problem_is_reported_with_its_line() -> None:
    bad = """\
groups:
  fleet-admins: root
  staff: site-staff
  ops: {role: ops, sites: [sh-pudong]}
  readers: viewer
  readers: viewer
extra: 1
"""
    with pytest.raises(GroupMappingError) as refused:
        parse_groups(bad, where="groups.yaml")
    message = str(refused.value)
    assert "groups.yaml:2: group 'fleet-admins': unknown role 'root'" in message
    assert "groups.yaml:3: group 'staff': role 'site-staff' needs its sites" in message
    assert "groups.yaml:4: group 'ops': role 'ops' covers every site" in message
    assert "groups.yaml:6: group 'readers' is listed twice" in message
    assert "groups.yaml:7: unknown key 'extra'" in message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("groups: [a, b\n", "groups.yaml:2: not valid YAML"),
        ("- fleet-admins\n", "groups.yaml:1: expected a mapping"),
        ("groups: {}\n", "must map at least one group"),
    ],
)
def test_a_file_that_is_no_mapping_says_so(text: str, message: str) -> None:
    with pytest.raises(GroupMappingError, match=message):
        parse_groups(text, where="groups.yaml")


def oidc_env(tmp_path: Path, **changes: str) -> dict[str, str]:
    groups = tmp_path / "groups.yaml"
    groups.write_text(MAPPING)
    env = {
        "EDGEFLEET_OIDC_ISSUER": "https://sso.example.com/realms/ops",
        "EDGEFLEET_OIDC_CLIENT_ID": "edgefleet",
        "EDGEFLEET_OIDC_CLIENT_SECRET": "s3cret-from-the-provider",
        "EDGEFLEET_OIDC_REDIRECT_URI": "https://fleet.example.com/auth/oidc/callback",
        "EDGEFLEET_OIDC_GROUPS_FILE": str(groups),
    }
    env.update(changes)
    return {k: v for k, v in env.items() if v}


def test_the_settings_read_the_provider_and_its_mapping(tmp_path: Path) -> None:
    settings = Settings.from_env({**oidc_env(tmp_path), "EDGEFLEET_DATABASE_URL": f"sqlite:///{tmp_path}/c.db"})
    assert settings.oidc is not None
    assert settings.oidc.issuer == "https://sso.example.com/realms/ops"
    assert "s3cret" not in repr(settings)
    assert len(settings.oidc.groups.rules) == 5
    assert oidc_from_env({}) is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"EDGEFLEET_OIDC_CLIENT_ID": ""}, "EDGEFLEET_OIDC_CLIENT_ID must be"),
        ({"EDGEFLEET_OIDC_ISSUER": "http://sso.example.com"}, "use https://"),
        ({"EDGEFLEET_OIDC_REDIRECT_URI": "https://fleet.example.com/"}, "expected this controller's callback"),
        ({"EDGEFLEET_OIDC_CLIENT_SECRET": ""}, "the client secret must be"),
        ({"EDGEFLEET_OIDC_GROUPS_FILE": "/no/such/groups.yaml"}, "cannot read the group mapping file"),
        ({"EDGEFLEET_OIDC_ISSUER": ""}, "set without EDGEFLEET_OIDC_ISSUER"),
    ],
)
def test_a_provider_half_set_up_is_refused_naming_the_variable(
    tmp_path: Path, changes: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        oidc_from_env(oidc_env(tmp_path, **changes))


def test_the_cookie_setting_takes_three_words(tmp_path: Path) -> None:
    database = {"EDGEFLEET_DATABASE_URL": f"sqlite:///{tmp_path}/c.db"}
    assert Settings.from_env(database).cookie_secure is None
    assert Settings.from_env({**database, "EDGEFLEET_COOKIE_SECURE": "true"}).cookie_secure is True
    with pytest.raises(ValueError, match="EDGEFLEET_COOKIE_SECURE='yes': expected auto, true or false"):
        Settings.from_env({**database, "EDGEFLEET_COOKIE_SECURE": "yes"})
