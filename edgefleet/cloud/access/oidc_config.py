"""Sign-in through the company's OpenID Connect provider: its settings (``EDGEFLEET_OIDC_*``) and the mapping file
that turns the provider's ``groups`` claim into a role and sites.

The mapping file (``EDGEFLEET_OIDC_GROUPS_FILE``), in YAML::

    groups:
      fleet-admins: admin
      release-managers: release-manager
      sh-pudong-staff: {role: site-staff, sites: [sh-pudong]}

The first group of the file that the person is in decides their role; when that role is ``site-staff``, every
site-staff group they are in adds its sites. A person in no group of the file is refused at sign-in with a
message that says so. Every problem in the file is reported with its line (``groups.yaml:4: ...``), all at once.

Pure but for reading the file; ``Settings.from_env`` calls ``oidc_from_env`` so that a bad file stops
``edgefleet cloud serve`` with one line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import yaml

from edgefleet.cloud.access.authorizing import ROLES, SCOPED_ROLES, Principal, Role
from edgefleet.credentials import SecretFileError, hide_in_logs, read_secret_file
from edgefleet.ids import SiteId

ENV_ISSUER: Final = "EDGEFLEET_OIDC_ISSUER"
ENV_CLIENT_ID: Final = "EDGEFLEET_OIDC_CLIENT_ID"
ENV_CLIENT_SECRET: Final = "EDGEFLEET_OIDC_CLIENT_SECRET"
ENV_CLIENT_SECRET_FILE: Final = "EDGEFLEET_OIDC_CLIENT_SECRET_FILE"
ENV_REDIRECT_URI: Final = "EDGEFLEET_OIDC_REDIRECT_URI"
ENV_GROUPS_FILE: Final = "EDGEFLEET_OIDC_GROUPS_FILE"
ENV_GROUPS_CLAIM: Final = "EDGEFLEET_OIDC_GROUPS_CLAIM"
DEFAULT_GROUPS_CLAIM: Final = "groups"


class GroupMappingError(ValueError):
    """The mapping file cannot be used; the message lists every problem with its line."""


@dataclass(frozen=True, slots=True)
class GroupRule:
    group: str
    role: Role
    sites: frozenset[SiteId] | None


@dataclass(frozen=True, slots=True)
class GroupMapping:
    rules: tuple[GroupRule, ...]

    def principal(self, name: str, groups: Iterable[str]) -> Principal | None:
        """Who ``name`` is by the groups the provider says they are in; None when no group of the file is theirs."""
        held = set(groups)
        matched = [rule for rule in self.rules if rule.group in held]
        if not matched:
            return None
        first = matched[0]
        if first.role not in SCOPED_ROLES:
            return Principal(name=name, role=first.role)
        sites: set[SiteId] = set()
        for rule in matched:
            if rule.role == first.role and rule.sites:
                sites |= rule.sites
        return Principal(name=name, role=first.role, sites=frozenset(sites))


@dataclass(frozen=True, slots=True)
class OidcSettings:
    issuer: str
    client_id: str
    client_secret: str = field(repr=False)
    # Where the provider sends the browser back: this controller's /auth/oidc/callback as the browser reaches it.
    redirect_uri: str
    groups: GroupMapping
    groups_claim: str = DEFAULT_GROUPS_CLAIM


def load_groups(path: Path) -> GroupMapping:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise GroupMappingError(f"cannot read the group mapping file {str(path)!r}: {exc}") from None
    return parse_groups(text, where=str(path))


def parse_groups(text: str, *, where: str) -> GroupMapping:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise GroupMappingError(f"{where}{line}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    problems: list[str] = []

    def at(node: yaml.Node, message: str) -> None:
        problems.append(f"{where}:{node.start_mark.line + 1}: {message}")

    groups_node: yaml.Node | None = None
    if not isinstance(root, yaml.MappingNode):
        raise GroupMappingError(
            f"{where}:1: expected a mapping with 'groups:' (group name: role); see docs/security.md"
        )
    for key, value in root.value:
        if key.value == "groups":
            groups_node = value
        else:
            at(key, f"unknown key {key.value!r}; the file holds 'groups:' only")
    rules: list[GroupRule] = []
    if groups_node is None or not isinstance(groups_node, yaml.MappingNode) or not groups_node.value:
        at(groups_node or root, "'groups' must map at least one group name to a role (fleet-admins: admin)")
    else:
        seen: set[str] = set()
        for key, value in groups_node.value:
            rule = _rule(key, value, at)
            if rule is None:
                continue
            if rule.group in seen:
                at(key, f"group {rule.group!r} is listed twice; keep one")
                continue
            seen.add(rule.group)
            rules.append(rule)
    if problems:
        raise GroupMappingError("; ".join(problems))
    return GroupMapping(tuple(rules))


def _rule(key: yaml.Node, value: yaml.Node, at: Callable[[yaml.Node, str], None]) -> GroupRule | None:
    if not isinstance(key, yaml.ScalarNode) or not str(key.value).strip():
        at(key, "a group name must be text")
        return None
    group = str(key.value)
    role_text: str | None = None
    sites: frozenset[SiteId] | None = None
    if isinstance(value, yaml.ScalarNode):
        role_text = str(value.value)
    elif isinstance(value, yaml.MappingNode):
        for field_key, field_value in value.value:
            if field_key.value == "role" and isinstance(field_value, yaml.ScalarNode):
                role_text = str(field_value.value)
            elif field_key.value == "sites" and isinstance(field_value, yaml.SequenceNode):
                names = [str(item.value) for item in field_value.value if isinstance(item, yaml.ScalarNode)]
                if len(names) != len(field_value.value) or not names:
                    at(field_value, f"group {group!r}: 'sites' must be a list of site names")
                    return None
                sites = frozenset(SiteId(n) for n in names)
            else:
                at(field_key, f"group {group!r}: unknown or malformed {field_key.value!r}; use role: and sites: [...]")
                return None
    else:
        at(value, f"group {group!r}: expected a role, or {{role: ..., sites: [...]}}")
        return None
    role = next((r for r in ROLES if r == role_text), None)
    if role is None:
        at(value, f"group {group!r}: unknown role {role_text!r}; use one of {', '.join(ROLES)}")
        return None
    if role in SCOPED_ROLES and not sites:
        at(value, f"group {group!r}: role {role!r} needs its sites: {{role: {role}, sites: [site-name]}}")
        return None
    if role not in SCOPED_ROLES and sites is not None:
        at(value, f"group {group!r}: role {role!r} covers every site; drop 'sites', or use role 'site-staff'")
        return None
    return GroupRule(group=group, role=role, sites=sites)


def oidc_from_env(environ: Mapping[str, str]) -> OidcSettings | None:
    """The provider's settings, or None when ``EDGEFLEET_OIDC_ISSUER`` is unset (no provider: local users only).
    Raises ValueError naming the variable for anything missing or malformed."""
    issuer = environ.get(ENV_ISSUER, "").strip()
    if not issuer:
        others = [e for e in (ENV_CLIENT_ID, ENV_REDIRECT_URI, ENV_GROUPS_FILE) if environ.get(e, "").strip()]
        if others:
            raise ValueError(f"{', '.join(others)} set without {ENV_ISSUER}; set the provider's issuer URL too")
        return None
    _check_url(issuer, ENV_ISSUER)
    missing = [e for e in (ENV_CLIENT_ID, ENV_REDIRECT_URI, ENV_GROUPS_FILE) if not environ.get(e, "").strip()]
    if missing:
        raise ValueError(f"{ENV_ISSUER} is set, so {', '.join(missing)} must be too (docs/security.md, 'Sign-in')")
    redirect_uri = environ[ENV_REDIRECT_URI].strip()
    _check_url(redirect_uri, ENV_REDIRECT_URI)
    if not urlsplit(redirect_uri).path.endswith("/auth/oidc/callback"):
        raise ValueError(
            f"{ENV_REDIRECT_URI}={redirect_uri!r}: expected this controller's callback, https://HOST/auth/oidc/callback"
        )
    secret = environ.get(ENV_CLIENT_SECRET, "").strip()
    secret_file = environ.get(ENV_CLIENT_SECRET_FILE, "").strip()
    if secret and secret_file:
        raise ValueError(f"both {ENV_CLIENT_SECRET} and {ENV_CLIENT_SECRET_FILE} are set; keep one")
    if secret_file:
        try:
            secret = read_secret_file(Path(secret_file))
        except SecretFileError as exc:
            raise ValueError(f"{ENV_CLIENT_SECRET_FILE}: {exc}") from None
    if not secret:
        raise ValueError(f"{ENV_ISSUER} is set, so the client secret must be: set {ENV_CLIENT_SECRET_FILE}")
    hide_in_logs(secret)
    try:
        groups = load_groups(Path(environ[ENV_GROUPS_FILE].strip()))
    except GroupMappingError as exc:
        raise ValueError(f"{ENV_GROUPS_FILE}: {exc}") from None
    return OidcSettings(
        issuer=issuer.rstrip("/"),
        client_id=environ[ENV_CLIENT_ID].strip(),
        client_secret=secret,
        redirect_uri=redirect_uri,
        groups=groups,
        groups_claim=environ.get(ENV_GROUPS_CLAIM, "").strip() or DEFAULT_GROUPS_CLAIM,
    )


def _check_url(value: str, name: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{name}={value!r}: expected an https:// URL")
    if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"{name}={value!r}: sign-in over plain http leaks codes and cookies; use https://")
