"""The notification file: where alerts go (channels, routes, timing, DingTalk limits) and when they fire (the
alert rules), read from one Kubernetes-style manifest (``apiVersion: edgefleet.io/v1``, ``kind: Notifications``).

``load_notifications(path, environ=..., inventory=...)`` reads the file, resolves the DingTalk secrets
(``secretFrom: {env: NAME}`` or ``secretFile: PATH``; an inline ``secret`` is taken with a warning, for demos) and
robot tokens (``tokenFrom: {env: NAME}`` or ``tokenFile: PATH``, added to the URL as its ``access_token``; a token
written in the URL is still taken),
builds the pure modules' ``Routes`` and ``AlertRules``, runs their ``validate_routes`` and ``validate``, and returns
a ``NotificationConfig`` - or raises ``NotificationConfigError`` listing every problem with file, line, field and
reason; nothing is half-loaded. Called by the controller at start-up (and on reload) and by the CLI's check
command; the senders (``delivery``) get each channel's ``ChannelTarget`` (URL, secret, headers) from the result.

Secrets never leave this module in a printable form: ``ChannelTarget``'s repr shows the URL through ``redact``
(``credentials.mask_url``), which masks query values (a DingTalk robot URL carries its ``access_token`` there),
passwords and token-like path segments; every secret and token read is registered with
``credentials.hide_in_logs``. docs/alerting.md ("Notification file") describes the fields;
notifications.example.yaml shows them.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit

import msgspec
from msgspec import Meta, Struct

from edgefleet.cloud.alerting.alerts import AlertingError, AlertKind, Severity
from edgefleet.cloud.alerting.allowing import UrlPattern, UrlPatternError, admitted, parse_pattern
from edgefleet.cloud.alerting.routes import (
    CHANNEL_KINDS,
    DEFAULT_DINGTALK_MAX_BYTES,
    DEFAULT_DINGTALK_PER_MINUTE,
    DEFAULT_GROUP_INTERVAL_S,
    DEFAULT_GROUP_WAIT_S,
    DEFAULT_REPEAT_INTERVAL_S,
    DEFAULT_TIMEZONE,
    EVENT_LEVELS,
    ROLLOUT_EVENTS,
    Channel,
    ChannelKind,
    EventLevel,
    RolloutEvent,
    Route,
    Routes,
    Timing,
    validate_routes,
)
from edgefleet.cloud.alerting.rules import AlertRules, Overrides, Thresholds, validate
from edgefleet.credentials import SecretFileError, hide_in_logs, mask_url, read_secret_file
from edgefleet.errors import Problem
from edgefleet.ids import ID_PATTERN, SiteId
from edgefleet.inventory import Inventory
from edgefleet.manifests import Document, ManifestPath, camel, check_kind, convert, dotted, read_documents

log = logging.getLogger(__name__)

API_VERSION: Final = "edgefleet.io/v1"
KIND: Final = "Notifications"
FIELDS_DOC: Final = "docs/alerting.md"
# URLs of robots and webhooks are short; a megabyte "URL" is a pasted body.
MAX_URL_CHARS: Final = 2048

Id = Annotated[str, Meta(pattern=ID_PATTERN, max_length=63)]
Text = Annotated[str, Meta(min_length=1, max_length=200)]
Url = Annotated[str, Meta(min_length=1, max_length=MAX_URL_CHARS)]
EnvName = Annotated[str, Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=200)]
# Seconds as a number, or a duration text such as "30s", "5m", "4h", "1h30m".
Duration = float | str


class NotificationConfigError(AlertingError):
    """The notification file cannot be used; nothing of it was taken. ``problems`` says where and why."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"the notification file has {len(problems)} problem(s):\n{lines}")


# --- the file's schema (camelCase in YAML) ----------------------------------------------------------------


class _Manifest(Struct, kw_only=True, forbid_unknown_fields=True, rename="camel"):
    pass


class SecretFrom(_Manifest, kw_only=True):
    env: EnvName


class ChannelSpec(_Manifest, kw_only=True):
    name: Id
    kind: ChannelKind
    url: Url
    secret: str | None = None
    secret_from: SecretFrom | None = None
    secret_file: Text | None = None
    token_from: SecretFrom | None = None
    token_file: Text | None = None
    headers: dict[str, str] = {}


class RouteSpec(_Manifest, kw_only=True):
    channels: list[str] = []
    sites: list[Id] | None = None
    regions: list[Text] | None = None
    severities: list[Severity] | None = None
    kinds: list[AlertKind] | None = None
    # Rollout events this route takes (docs/alerting.md, "Rollout notifications"); such a route takes no alerts.
    rollouts: list[RolloutEvent] | None = None
    # Central clusters' Event levels this route takes (docs/central-clusters.md); it takes nothing else.
    events: list[EventLevel] | None = None


class TimingSpec(_Manifest, kw_only=True):
    group_wait: Duration = DEFAULT_GROUP_WAIT_S
    group_interval: Duration = DEFAULT_GROUP_INTERVAL_S
    repeat_interval: Duration = DEFAULT_REPEAT_INTERVAL_S


class DingTalkSpec(_Manifest, kw_only=True):
    per_minute: int = DEFAULT_DINGTALK_PER_MINUTE
    max_bytes: int = DEFAULT_DINGTALK_MAX_BYTES


class RulesSpec(_Manifest, kw_only=True):
    # Checked field by field below (units, names, suggestions), not by msgspec.
    defaults: dict[str, Any] = {}
    sites: dict[str, dict[str, Any]] = {}
    models: dict[str, dict[str, Any]] = {}


class NotificationsSpec(_Manifest, kw_only=True):
    timezone: Text = DEFAULT_TIMEZONE
    timing: TimingSpec = msgspec.field(default_factory=TimingSpec)
    dingtalk: DingTalkSpec = msgspec.field(default_factory=DingTalkSpec)
    channels: Annotated[list[ChannelSpec], Meta(min_length=1)]
    routes: list[RouteSpec] = []
    default_channels: list[str] = []
    rules: RulesSpec = msgspec.field(default_factory=RulesSpec)
    # SCHEME://HOST[:PORT] patterns every channel URL must match (``allowing``); empty: any URL.
    allowed_urls: list[Url] = []


class Metadata(_Manifest, kw_only=True):
    name: Id
    labels: dict[str, str] = {}


class NotificationsManifest(_Manifest, kw_only=True):
    api_version: str
    kind: str
    metadata: Metadata
    spec: NotificationsSpec


_CHOICES: Final[dict[str, tuple[str, ...]]] = {
    "kind": CHANNEL_KINDS,
    "severities": tuple(str(s) for s in Severity),
    "kinds": tuple(str(k) for k in AlertKind),
    "rollouts": ROLLOUT_EVENTS,
    "events": EVENT_LEVELS,
}


# --- what the loader returns ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChannelTarget:
    """Where and how to send to one channel. The URL, secret and headers are left out of repr and str."""

    channel: Channel
    url: str = field(repr=False)
    secret: str | None = field(default=None, repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    # The file's allowedUrls; the senders refuse a URL none admits (empty: any URL).
    allowed: tuple[UrlPattern, ...] = ()

    @property
    def shown(self) -> str:
        """The URL as logs may show it (``redact``)."""
        return redact(self.url)

    def __str__(self) -> str:
        return f"{self.channel} ({self.shown})"


@dataclass(frozen=True, slots=True)
class NotificationConfig:
    """A checked notification file: the routes and rules for the pure modules, the targets for the senders, and
    what was allowed but should be looked at (``warnings``: inline secrets, unused channels)."""

    source: str
    routes: Routes
    rules: AlertRules
    targets: Mapping[str, ChannelTarget]
    warnings: tuple[Problem, ...] = ()


def redact(url: str) -> str:
    """``url`` safe to log (``credentials.mask_url``): query values, the password and token-like path segments
    become ``***``.

    ``https://oapi.dingtalk.com/robot/send?access_token=abc`` -> ``https://oapi.dingtalk.com/robot/send?access_token=***``
    """
    return mask_url(url)


# --- loading ----------------------------------------------------------------------------------------------


class _Check:
    """The problems and warnings of one file, each placed at the line of its path."""

    def __init__(self, shown: str, document: Document) -> None:
        self.shown = shown
        self.document = document
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []
        # Routes (and ``("spec", "routes")`` for the default channels) that named a channel that does not exist.
        self.unnamed: set[ManifestPath] = set()

    def problem(self, path: ManifestPath, reason: str) -> None:
        self.problems.append(Problem(self.shown, self.document.line(path), dotted(path), reason))

    def warn(self, path: ManifestPath, reason: str) -> None:
        self.warnings.append(Problem(self.shown, self.document.line(path), dotted(path), reason))


def load_notifications(
    path: Path, *, environ: Mapping[str, str] | None = None, inventory: Inventory | None = None
) -> NotificationConfig:
    """Read and check the notification file at ``path``. ``environ`` holds the variables ``secretFrom`` names
    (``os.environ`` when None); with ``inventory``, sites, regions and box models must exist in it. Raises
    NotificationConfigError with every problem found."""
    shown = str(path)
    problems: list[Problem] = []
    documents = read_documents(path, problems)
    if problems:
        raise NotificationConfigError(problems)
    if len(documents) != 1:
        found = "no manifest" if not documents else f"{len(documents)} manifests"
        raise NotificationConfigError(
            [Problem(shown, None, "", f"holds {found}; expected exactly one of kind {KIND!r} (see {FIELDS_DOC})")]
        )
    document = documents[0]
    if not check_kind(document, shown, API_VERSION, KIND, problems):
        raise NotificationConfigError(problems)
    manifest = convert(document, NotificationsManifest, shown, problems, choices=_CHOICES, fields_doc=FIELDS_DOC)
    if manifest is None:
        raise NotificationConfigError(problems)
    check = _Check(shown, document)
    spec = manifest.spec
    environ = os.environ if environ is None else environ
    allowed = _allowed(spec.allowed_urls, check)
    targets = _targets(spec.channels, check, environ, base=path.parent, allowed=allowed)
    routes = _routes(spec, targets, check, inventory)
    rules = _rules(spec.rules, check)
    if routes is not None:
        for problem in validate_routes(routes):
            where, reason = _route_problem_path(problem)
            # A route whose channel names were wrong is short of channels: that was said already.
            if where[:3] not in check.unnamed:
                check.problem(where, reason)
    if rules is not None:
        for rule_problem in validate(rules, inventory):
            check.problem(_rule_problem_path(rule_problem.path), _file_words(rule_problem.reason))
    if check.problems or routes is None or rules is None:
        raise NotificationConfigError(check.problems)
    for warning in check.warnings:
        log.warning(
            "Accepted notification file with a warning",
            extra={"file": warning.file, "line": warning.line, "field": warning.field, "reason": warning.reason},
        )
    return NotificationConfig(shown, routes, rules, targets, tuple(check.warnings))


def _allowed(patterns: Sequence[str], check: _Check) -> tuple[UrlPattern, ...]:
    parsed: list[UrlPattern] = []
    for i, text in enumerate(patterns):
        try:
            parsed.append(parse_pattern(text))
        except UrlPatternError as exc:
            check.problem(("spec", "allowedUrls", i), str(exc))
    return tuple(parsed)


def _targets(
    channels: Sequence[ChannelSpec],
    check: _Check,
    environ: Mapping[str, str],
    *,
    base: Path,
    allowed: tuple[UrlPattern, ...] = (),
) -> dict[str, ChannelTarget]:
    targets: dict[str, ChannelTarget] = {}
    first_at: dict[str, int] = {}
    for i, spec in enumerate(channels):
        where: ManifestPath = ("spec", "channels", i)
        if spec.name in first_at:
            check.problem(
                (*where, "name"), f"channel {spec.name!r} is already defined at spec.channels[{first_at[spec.name]}]"
            )
            continue
        first_at[spec.name] = i
        token = _token(spec, where, check, environ, base)
        url = _check_url(spec, token, where, check)
        if not admitted(url, allowed):
            check.problem(
                (*where, "url"),
                f"{redact(url)!r} is not admitted by spec.allowedUrls; add its SCHEME://HOST[:PORT] there if this "
                "receiver is meant, or send elsewhere",
            )
        secret = _secret(spec, where, check, environ, base)
        hide_in_logs(secret, token)
        headers = dict(spec.headers)
        if headers and spec.kind == "dingtalk":
            check.problem((*where, "headers"), "a DingTalk robot takes no headers; it is secured by its secret")
        for name, value in headers.items():
            if not _HEADER_NAME.match(name):
                check.problem((*where, "headers", name), f"{name!r} is no HTTP header name (letters, digits, '-')")
            elif "\n" in value or "\r" in value:
                check.problem((*where, "headers", name), "a header value must be one line")
        targets[spec.name] = ChannelTarget(Channel(spec.kind, spec.name), url, secret, headers, allowed)
    return targets


_HEADER_NAME: Final = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")


def _check_url(spec: ChannelSpec, token: str | None, where: ManifestPath, check: _Check) -> str:
    """The URL to send to: the file's, with the robot's token added as ``access_token`` when it came apart."""
    try:
        parts = urlsplit(spec.url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        check.problem((*where, "url"), f"{redact(spec.url)!r} is no URL: {exc}")
        return spec.url
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        check.problem((*where, "url"), f"{redact(spec.url)!r} is no http:// or https:// URL with a host")
        return spec.url
    if parts.fragment:
        check.problem((*where, "url"), "a URL to send to has no #fragment; remove it")
    in_url = "access_token" in dict(parse_qsl(parts.query))
    if spec.kind != "dingtalk":
        return spec.url
    if in_url and token is not None:
        given = "tokenFrom" if spec.token_from is not None else "tokenFile"
        check.problem(
            (*where, given), f"the URL carries an access_token and {given} gives one too; give the token one way"
        )
        return spec.url
    if token is not None:
        return f"{spec.url}{'&' if parts.query else '?'}{urlencode({'access_token': token})}"
    if not in_url and spec.token_from is None and spec.token_file is None:  # a token source that failed said so
        check.problem(
            (*where, "url"),
            "a DingTalk robot's URL carries its token: give it with tokenFrom: {env: NAME} or tokenFile: PATH, "
            "or write https://oapi.dingtalk.com/robot/send?access_token=...",
        )
    return spec.url


def _token(spec: ChannelSpec, where: ManifestPath, check: _Check, environ: Mapping[str, str], base: Path) -> str | None:
    """A DingTalk robot's token from ``tokenFrom`` or ``tokenFile``; None when the file gives neither."""
    if spec.token_from is not None and spec.token_file is not None:
        check.problem((*where, "tokenFile"), "give the token one way: tokenFrom or tokenFile, not both")
        return None
    given = "tokenFrom" if spec.token_from is not None else "tokenFile" if spec.token_file is not None else None
    if given is None:
        return None
    if spec.kind != "dingtalk":
        check.problem(
            (*where, given), f"only DingTalk robots take a token; a {spec.kind} channel takes credentials in headers"
        )
        return None
    if spec.token_from is not None:
        return _from_env(spec.token_from.env, (*where, "tokenFrom", "env"), check, environ)
    assert spec.token_file is not None
    return _read_secret_file(spec.token_file, (*where, "tokenFile"), check, base)


def _from_env(name: str, path: ManifestPath, check: _Check, environ: Mapping[str, str]) -> str | None:
    if name not in environ:
        check.problem(path, f"the environment variable {name} is not set; export it before starting the controller")
        return None
    return _non_empty(environ[name], path, check, f"the environment variable {name} is empty")


def _secret(
    spec: ChannelSpec, where: ManifestPath, check: _Check, environ: Mapping[str, str], base: Path
) -> str | None:
    given = [
        name
        for name, value in (("secret", spec.secret), ("secretFrom", spec.secret_from), ("secretFile", spec.secret_file))
        if value is not None
    ]
    if len(given) > 1:
        check.problem((*where, given[1]), f"give the secret one way: {' or '.join(given)}, not both")
        return None
    if given and spec.kind != "dingtalk":
        check.problem(
            (*where, given[0]),
            f"only DingTalk robots sign messages; a {spec.kind} channel takes credentials in headers",
        )
        return None
    if spec.secret is not None:
        check.warn(
            (*where, "secret"),
            "the signing secret is written in the file; keep it out of version control with "
            "secretFrom: {env: NAME} or secretFile: PATH",
        )
        return _non_empty(spec.secret, (*where, "secret"), check, "the secret is empty")
    if spec.secret_from is not None:
        return _from_env(spec.secret_from.env, (*where, "secretFrom", "env"), check, environ)
    if spec.secret_file is not None:
        return _read_secret_file(spec.secret_file, (*where, "secretFile"), check, base)
    if spec.kind == "dingtalk":
        check.warn(
            where,
            f"the DingTalk robot {spec.name!r} has no signing secret: it must then be secured by keywords or an "
            "IP allow-list in DingTalk; add secretFrom: {env: NAME} if it signs",
        )
    return None


def _read_secret_file(name: str, path: ManifestPath, check: _Check, base: Path) -> str | None:
    file = Path(name).expanduser()
    if not file.is_absolute():
        file = base / file
    try:
        return read_secret_file(file)
    except SecretFileError as exc:
        check.problem(path, str(exc))
        return None


def _non_empty(value: str, path: ManifestPath, check: _Check, reason: str) -> str | None:
    # Secrets are pasted and saved by editors with a trailing newline that DingTalk's signature does not have.
    value = value.strip()
    if not value:
        check.problem(path, reason)
        return None
    return value


def _routes(
    spec: NotificationsSpec, targets: Mapping[str, ChannelTarget], check: _Check, inventory: Inventory | None
) -> Routes | None:
    known = sorted(targets)
    used: set[str] = set()

    def channels_of(names: Sequence[str], where: ManifestPath) -> tuple[Channel, ...]:
        out = []
        for j, name in enumerate(names):
            if name in targets:
                out.append(targets[name].channel)
                used.add(name)
            else:
                check.problem((*where, j), f"no channel is named {name!r}{_suggest(name, known)}")
                check.unnamed.add(where[:3] if where[1] == "routes" else ("spec", "routes"))
        return tuple(dict.fromkeys(out))

    routes = []
    for i, route in enumerate(spec.routes):
        where: ManifestPath = ("spec", "routes", i)
        if inventory is not None:
            _check_known(route.sites, sorted(inventory.sites), (*where, "sites"), "site", check)
            regions = sorted({s.region for s in inventory.sites.values()})
            _check_known(route.regions, regions, (*where, "regions"), "region", check)
        routes.append(
            Route(
                channels=channels_of(route.channels, (*where, "channels")),
                sites=frozenset(SiteId(s) for s in route.sites) if route.sites is not None else None,
                regions=frozenset(route.regions) if route.regions is not None else None,
                severities=frozenset(route.severities) if route.severities is not None else None,
                kinds=frozenset(route.kinds) if route.kinds is not None else None,
                rollouts=frozenset(route.rollouts) if route.rollouts is not None else None,
                events=frozenset(route.events) if route.events is not None else None,
            )
        )
    default = channels_of(spec.default_channels, ("spec", "defaultChannels"))
    for i, channel in enumerate(spec.channels):
        if channel.name not in used and targets.get(channel.name, None) is not None:
            check.warn(
                ("spec", "channels", i, "name"),
                f"channel {channel.name!r} is in no route and not a default channel: nothing is sent to it",
            )
            used.add(channel.name)  # once, even when the name is defined twice
    group_wait = _seconds(spec.timing.group_wait, ("spec", "timing", "groupWait"), check)
    group_interval = _seconds(spec.timing.group_interval, ("spec", "timing", "groupInterval"), check)
    repeat_interval = _seconds(spec.timing.repeat_interval, ("spec", "timing", "repeatInterval"), check)
    if group_wait is None or group_interval is None or repeat_interval is None:
        return None
    return Routes(
        routes=tuple(routes),
        default=default,
        timing=Timing(group_wait_s=group_wait, group_interval_s=group_interval, repeat_interval_s=repeat_interval),
        timezone=spec.timezone,
        dingtalk_per_minute=spec.dingtalk.per_minute,
        dingtalk_max_bytes=spec.dingtalk.max_bytes,
    )


def _check_known(
    values: Sequence[str] | None, known: Sequence[str], where: ManifestPath, what: str, check: _Check
) -> None:
    for j, value in enumerate(values or ()):
        if value not in known:
            check.problem((*where, j), f"{what} {value!r} is not in the inventory{_suggest(value, known)}")


def _suggest(name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


_DURATION_PART: Final = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION: Final = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+")
_UNIT_S: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: object) -> float | None:
    """Seconds from a number or a text such as ``30s``, ``5m``, ``1h30m``, ``500ms``; None when it is neither, or
    when it is no finite number (NaN, ``inf``, ``1e999``): no store keeps those, and no deadline is that far."""
    try:
        seconds = _duration_s(value)
    except (ValueError, OverflowError):  # float() of a text that is no number, or of an int beyond any float
        return None
    return seconds if seconds is not None and math.isfinite(seconds) else None


def _duration_s(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if _DURATION.fullmatch(text):
            return sum(float(n) * _UNIT_S[unit] for n, unit in _DURATION_PART.findall(text))
        return float(text)
    return None


def _seconds(value: object, path: ManifestPath, check: _Check) -> float | None:
    seconds = parse_duration(value)
    if seconds is None:
        check.problem(path, f"{value!r} is no duration; write seconds (90) or a duration such as 30s, 5m, 4h")
    return seconds


# --- rules ------------------------------------------------------------------------------------------------

# Every threshold as the file spells it: camelCase, and a "_s" field without its unit (it takes a duration).
_RULE_KEYS: Final[dict[str, str]] = {
    (camel(f.name[:-2]) if f.name.endswith("_s") else camel(f.name)): f.name for f in dataclasses.fields(Overrides)
}
_RULE_FILE_KEYS: Final[dict[str, str]] = {name: key for key, name in _RULE_KEYS.items()}


def _rules(spec: RulesSpec, check: _Check) -> AlertRules | None:
    before = len(check.problems)
    base: ManifestPath = ("spec", "rules")
    defaults = _threshold_values(spec.defaults, (*base, "defaults"), check)
    sites = {
        SiteId(site): Overrides(**_threshold_values(values, (*base, "sites", site), check))
        for site, values in spec.sites.items()
    }
    models = {
        model: Overrides(**_threshold_values(values, (*base, "models", model), check))
        for model, values in spec.models.items()
    }
    if len(check.problems) > before:
        return None
    return AlertRules(defaults=Thresholds(**defaults), sites=sites, models=models)


def _threshold_values(values: Mapping[str, Any], where: ManifestPath, check: _Check) -> dict[str, Any]:
    if not isinstance(values, dict):
        check.problem(where, f"expected a mapping of thresholds, got {type(values).__name__}")
        return {}
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = _RULE_KEYS.get(key)
        if name is None:
            check.problem(
                (*where, key),
                f"{key!r} is no threshold{_suggest(key, list(_RULE_KEYS))} "
                f"(check its spelling and indentation; {FIELDS_DOC} lists them)",
            )
            continue
        if name.endswith("_s"):
            seconds = _seconds(value, (*where, key), check)
            if seconds is not None:
                out[name] = seconds
        else:
            # Type and range are validate's to check, so that its reasons (with the defaults) are shown.
            out[name] = value
    return out


def _rule_problem_path(path: str) -> ManifestPath:
    """``sites.bj-daxing.gpu_temperature_c`` (rules.validate's path) -> the file's path to that field."""
    section, _, rest = path.partition(".")
    base: ManifestPath = ("spec", "rules", section)
    if section == "defaults":
        return (*base, _RULE_FILE_KEYS.get(rest, rest)) if rest else base
    for name, key in _RULE_FILE_KEYS.items():
        if rest.endswith(f".{name}"):
            return (*base, rest[: -len(name) - 1], key)
    return (*base, rest) if rest else base


_ROUTE_FIELDS: Final[dict[str, ManifestPath]] = {
    "group_wait_s": ("spec", "timing", "groupWait"),
    "group_interval_s": ("spec", "timing", "groupInterval"),
    "repeat_interval_s": ("spec", "timing", "repeatInterval"),
    "dingtalk_per_minute": ("spec", "dingtalk", "perMinute"),
    "dingtalk_max_bytes": ("spec", "dingtalk", "maxBytes"),
    "timezone": ("spec", "timezone"),
}
_ROUTE_AT: Final = re.compile(r"^routes\[(\d+)\](?:\.(\w+))?")


def _route_problem_path(reason: str) -> tuple[ManifestPath, str]:
    """Where a ``validate_routes`` reason points in the file, and the reason in the file's words."""
    words = _route_words(reason)
    match = _ROUTE_AT.match(reason)
    if match:
        where: ManifestPath = ("spec", "routes", int(match.group(1)))
        return ((*where, match.group(2)) if match.group(2) else where), words
    for name, path in _ROUTE_FIELDS.items():
        if reason.startswith(name):
            return path, words
    if reason.startswith("no route"):
        return ("spec", "routes"), words
    return ("spec",), words


def _replace_words(text: str, words: Mapping[str, str]) -> str:
    pattern = re.compile(r"\b(" + "|".join(sorted(map(re.escape, words), key=len, reverse=True)) + r")\b")
    return pattern.sub(lambda m: words[m.group(1)], text)


_ROUTE_WORDS: Final = {name: dotted(path[1:]) for name, path in _ROUTE_FIELDS.items()}


def _route_words(reason: str) -> str:
    return _replace_words(reason, _ROUTE_WORDS)


def _file_words(reason: str) -> str:
    """A rules reason with Python field names replaced by the file's keys."""
    return _replace_words(reason, _RULE_FILE_KEYS)
