"""A central cluster's platform policy (issue 18): what the company's customised platform enforced, as declarative
fields of the ``Cluster`` manifest (``spec.policy``), with overrides per namespace.

- ``overcommit``: CPU and memory ratios; a workload sets limits and its requests are the limits divided by the
  ratio (``requests_from_limits``), rounded to the unit (millicores, Mi) and never above the limits.
- ``hostGroups``: named node label selectors; ``hostGroup`` (cluster-wide or per namespace) is where workloads go.
- ``exclusiveHosts``: a host group kept for some namespaces or apps, always or in a daily window in the cluster's
  local time (``00:00-06:00``); made real with the taint ``EXCLUSIVE_TAINT`` and matching tolerations.
- ``antiAffinity``: groups of apps that should avoid each other's nodes (soft: preferred pod anti-affinity).
- ``events``: rules that pick which Kubernetes Events are forwarded (level, involved kind, namespace, reason;
  include and exclude).

``check_policy`` reads a ``PolicySpec`` into a frozen ``ClusterPolicy`` or lists every problem (field and reason;
the inventory's loader adds file and line), so a bad policy is refused whole. Everything here is pure: quantities
are parsed and formatted exactly (``fractions``), windows are minutes of the day, and the time of day is always the
caller's. Called by ``edgefleet.inventory`` (loading), ``edgefleet.cloud.rollouts.policy`` (rendering) and
``edgefleet.cloud.clusters.auditing`` (the audit). docs/central-clusters.md describes every field.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Annotated, Final, Literal

from msgspec import Meta, Struct

Name = Annotated[str, Meta(min_length=1, max_length=63)]

# The taint that keeps an exclusive host group for its workloads (value: the host group), and its effect: new pods
# without the toleration are not scheduled there; those already running stay (the audit reports them).
EXCLUSIVE_TAINT: Final = "edgefleet.io/exclusive"
EXCLUSIVE_EFFECT: Final = "NoSchedule"
# The label apps are known by, in anti-affinity groups and exclusive host grants.
APP_LABEL: Final = "app.kubernetes.io/name"
DAY_MINUTES: Final = 24 * 60
# Kubernetes names: a namespace is a DNS-1123 label; a label value at most 63 letters, digits, '-', '_', '.'.
_NAMESPACE_RE: Final = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_LABEL_VALUE_RE: Final = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_LABEL_KEY_RE: Final = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_WINDOW_RE: Final = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")
_QUANTITY_RE: Final = re.compile(r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E|[eE][+-]?\d+)?$")
_SUFFIX: Final[dict[str, Fraction]] = {
    "": Fraction(1),
    "m": Fraction(1, 1000),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
    **{s: Fraction(1024**i) for i, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"), start=1)},
}
# The unit computed requests are rounded to: a millicore of CPU, a mebibyte of memory.
CPU_UNIT: Final = Fraction(1, 1000)
MEMORY_UNIT: Final = Fraction(1024**2)
OVERCOMMITTED: Final = ("cpu", "memory")


# --- the manifest's fields ----------------------------------------------------------------------------------------


class _Manifest(Struct, kw_only=True, forbid_unknown_fields=True, rename="camel"):
    pass


class OvercommitSpec(_Manifest, kw_only=True):
    """Limits over requests; 1 means requests equal limits. Checked by ``check_policy`` (at least 1)."""

    cpu: float | None = None
    memory: float | None = None


class HostGroupSpec(_Manifest, kw_only=True):
    match_labels: Annotated[dict[str, str], Meta(min_length=1)]


class ExclusiveHostsSpec(_Manifest, kw_only=True):
    host_group: Name
    # HH:MM-HH:MM in the cluster's time zone, may pass midnight; none: always exclusive.
    window: str | None = None
    # Who may use the hosts while they are exclusive: workloads in these namespaces or of these apps.
    namespaces: list[Name] = []
    apps: list[Name] = []


class AntiAffinitySpec(_Manifest, kw_only=True):
    name: Name
    apps: Annotated[list[Name], Meta(min_length=2)]


class EventRuleSpec(_Manifest, kw_only=True):
    action: Literal["include", "exclude"]
    level: Literal["Normal", "Warning"] | None = None
    kinds: list[Name] = []
    namespaces: list[Name] = []
    reasons: list[Annotated[str, Meta(min_length=1, max_length=128)]] = []


class NamespacePolicySpec(_Manifest, kw_only=True):
    overcommit: OvercommitSpec | None = None
    host_group: Name | None = None
    # False: the audit skips the namespace (kube-system, the platform's own).
    audit: bool = True


class PolicySpec(_Manifest, kw_only=True):
    overcommit: OvercommitSpec | None = None
    host_groups: dict[str, HostGroupSpec] = {}
    host_group: Name | None = None
    exclusive_hosts: list[ExclusiveHostsSpec] = []
    anti_affinity: list[AntiAffinitySpec] = []
    events: list[EventRuleSpec] = []
    namespaces: dict[str, NamespacePolicySpec] = {}


# --- parsed values ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ratios:
    """CPU and memory overcommit; None where the policy sets none (requests are left as the workload gives them)."""

    cpu: Fraction | None = None
    memory: Fraction | None = None

    def of(self, resource: str) -> Fraction | None:
        return self.cpu if resource == "cpu" else self.memory if resource == "memory" else None


@dataclass(frozen=True, slots=True)
class Window:
    """A daily window, (start, end) minutes after midnight; ``end`` before ``start`` when it passes midnight."""

    start: int
    end: int

    def __str__(self) -> str:
        return "-".join(f"{m // 60:02}:{m % 60:02}" for m in (self.start, self.end))

    def spans(self) -> list[tuple[int, int]]:
        """The window as half-open minute ranges within one day."""
        if self.start < self.end:
            return [(self.start, self.end)]
        return [(self.start, DAY_MINUTES), (0, self.end)] if self.end else [(self.start, DAY_MINUTES)]

    def covers(self, local: dt.datetime) -> bool:
        minute = local.hour * 60 + local.minute
        return any(a <= minute < b for a, b in self.spans())


@dataclass(frozen=True, slots=True)
class ExclusiveHosts:
    host_group: str
    window: Window | None
    namespaces: tuple[str, ...]
    apps: tuple[str, ...]

    def open_at(self, local: dt.datetime) -> bool:
        """Whether the hosts are kept for their workloads at the cluster-local time ``local``."""
        return self.window is None or self.window.covers(local)

    def admits(self, namespace: str, app: str | None) -> bool:
        return namespace in self.namespaces or (app is not None and app in self.apps)


@dataclass(frozen=True, slots=True)
class EventRule:
    action: Literal["include", "exclude"]
    level: str | None
    kinds: tuple[str, ...]
    namespaces: tuple[str, ...]
    reasons: tuple[str, ...]

    def matches(self, level: str, kind: str, namespace: str, reason: str) -> bool:
        return (
            (self.level is None or level == self.level)
            and (not self.kinds or kind in self.kinds)
            and (not self.namespaces or namespace in self.namespaces)
            and (not self.reasons or reason in self.reasons)
        )


@dataclass(frozen=True, slots=True)
class NamespacePolicy:
    ratios: Ratios | None
    host_group: str | None
    audit: bool


@dataclass(frozen=True, slots=True)
class ClusterPolicy:
    """A cluster's checked policy; ``ClusterPolicy()`` is no policy at all."""

    ratios: Ratios = field(default_factory=Ratios)
    host_groups: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    host_group: str | None = None
    exclusive: tuple[ExclusiveHosts, ...] = ()
    anti_affinity: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    events: tuple[EventRule, ...] = ()
    namespaces: Mapping[str, NamespacePolicy] = field(default_factory=dict)

    def ratios_in(self, namespace: str) -> Ratios:
        """The namespace's ratios: its own where it sets them, else the cluster's."""
        own = self.namespaces.get(namespace)
        if own is None or own.ratios is None:
            return self.ratios
        return Ratios(
            own.ratios.cpu if own.ratios.cpu is not None else self.ratios.cpu,
            own.ratios.memory if own.ratios.memory is not None else self.ratios.memory,
        )

    def host_group_in(self, namespace: str) -> str | None:
        own = self.namespaces.get(namespace)
        return own.host_group if own is not None and own.host_group is not None else self.host_group

    def audited(self, namespace: str) -> bool:
        own = self.namespaces.get(namespace)
        return own is None or own.audit

    def avoided_by(self, app: str) -> list[str]:
        """The apps ``app`` should avoid (the others of every anti-affinity group it is in), sorted."""
        return sorted({other for apps in self.anti_affinity.values() if app in apps for other in apps if other != app})

    def exclusive_for(self, namespace: str, app: str | None) -> list[ExclusiveHosts]:
        """The exclusive host groups the workload may use (and so tolerates)."""
        return [e for e in self.exclusive if e.admits(namespace, app)]

    def forwards(self, level: str, kind: str, namespace: str, reason: str) -> bool:
        """Whether an Event is forwarded: no exclude rule matches it, and an include rule does (no include rule:
        every Event not excluded)."""
        rules = self.events
        if any(r.action == "exclude" and r.matches(level, kind, namespace, reason) for r in rules):
            return False
        includes = [r for r in rules if r.action == "include"]
        return not includes or any(r.matches(level, kind, namespace, reason) for r in includes)


# --- quantities ---------------------------------------------------------------------------------------------------


def parse_quantity(text: str) -> Fraction:
    """A Kubernetes quantity (``250m``, ``1.5``, ``4Gi``, ``1e3``) as an exact number of base units (cores,
    bytes); raises ValueError for anything else."""
    match = _QUANTITY_RE.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is no quantity (such as 250m, 2, 4Gi)")
    number, suffix = Fraction(match.group(1)), match.group(2) or ""
    if suffix[:1] in {"e", "E"} and suffix not in _SUFFIX:
        return number * Fraction(10) ** int(suffix[1:])
    return number * _SUFFIX[suffix]


def unit_of(resource: str) -> Fraction:
    return CPU_UNIT if resource == "cpu" else MEMORY_UNIT


def format_quantity(resource: str, value: Fraction) -> str:
    """A computed request as Kubernetes writes it: whole cores or millicores for CPU; Gi, Mi or bytes for memory."""
    if resource == "cpu":
        if value.denominator == 1:
            return str(value.numerator)
        milli = value * 1000
        return f"{milli.numerator}m" if milli.denominator == 1 else str(float(value))
    if value.denominator == 1 and value.numerator % (1024**3) == 0 and value.numerator:
        return f"{value.numerator // 1024**3}Gi"
    if value.denominator == 1 and value.numerator % (1024**2) == 0 and value.numerator:
        return f"{value.numerator // 1024**2}Mi"
    return str(math.ceil(value))


def request_for(resource: str, limit: Fraction, ratio: Fraction) -> Fraction:
    """``limit / ratio`` rounded to the nearest unit (at least one unit), never above ``limit``: within a unit of
    the exact share, and a limit below one unit is its own request."""
    unit = unit_of(resource)
    units = math.floor(limit / ratio / unit + Fraction(1, 2))
    return min(max(units, 1) * unit, limit)


def requests_from_limits(limits: Mapping[str, str], requests: Mapping[str, str], ratios: Ratios) -> dict[str, str]:
    """The container's requests under ``ratios``: CPU and memory computed from their limits where both a limit and
    a ratio are set; every other request (a GPU's, one without a limit) as given."""
    out = dict(requests)
    for resource in OVERCOMMITTED:
        ratio, limit = ratios.of(resource), limits.get(resource)
        if ratio is None or limit is None:
            continue
        out[resource] = format_quantity(resource, request_for(resource, parse_quantity(limit), ratio))
    return dict(sorted(out.items()))


# --- windows ------------------------------------------------------------------------------------------------------


def parse_window(text: str) -> Window:
    """``HH:MM-HH:MM`` (may pass midnight; ``24:00`` may end it); raises ValueError saying what is wrong."""
    match = _WINDOW_RE.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is no window: use HH:MM-HH:MM in the cluster's local time, such as 00:00-06:00")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or m1 > 59:
        raise ValueError(f"{text!r} starts at no time of day (00:00 to 23:59)")
    if m2 > 59 or h2 > 24 or (h2 == 24 and m2 != 0):
        raise ValueError(f"{text!r} ends at no time of day (00:00 to 24:00)")
    start, end = h1 * 60 + m1, (h2 * 60 + m2) % DAY_MINUTES
    if start == end:
        raise ValueError(f"{text!r} starts where it ends; leave the window out to keep the hosts always")
    return Window(start, end)


def windows_overlap(a: Window | None, b: Window | None) -> bool:
    """Whether two exclusive windows share a minute (no window is the whole day)."""
    if a is None or b is None:
        return True
    return any(x1 < y2 and y1 < x2 for x1, x2 in a.spans() for y1, y2 in b.spans())


# --- checking -----------------------------------------------------------------------------------------------------

# A field path as the manifest spells it (camelCase fields, map keys as given), relative to spec.policy.
PolicyPath = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class PolicyProblem:
    path: PolicyPath
    reason: str


def _ratios(spec: OvercommitSpec | None, path: PolicyPath, out: list[PolicyProblem]) -> Ratios | None:
    if spec is None:
        return None
    values: dict[str, Fraction | None] = {}
    for resource in OVERCOMMITTED:
        given: float | None = getattr(spec, resource)
        if given is None:
            values[resource] = None
        elif not math.isfinite(given) or given < 1:
            why = "a ratio of 0 would divide by zero" if given == 0 else "a ratio below 1 would request above limits"
            out.append(
                PolicyProblem(
                    (*path, resource), f"{given} is no overcommit ratio: {why}; give 1 (requests = limits) or more"
                )
            )
            values[resource] = None
        else:
            values[resource] = Fraction(str(given))
    return Ratios(values["cpu"], values["memory"])


def _known_group(name: str | None, groups: Mapping[str, object], path: PolicyPath, out: list[PolicyProblem]) -> None:
    if name is not None and name not in groups:
        known = ", ".join(sorted(groups)) or "none: declare it under hostGroups"
        out.append(PolicyProblem(path, f"names host group {name!r}, which hostGroups has not (it has: {known})"))


def _names(values: list[str], path: PolicyPath, what: str, pattern: re.Pattern[str], out: list[PolicyProblem]) -> None:
    for i, value in enumerate(values):
        if not pattern.match(value):
            out.append(PolicyProblem((*path, i), f"{value!r} is no {what}"))


_NO_TIMEZONE: Final = "a window is in the cluster's local time"
_NAMESPACE_WHAT: Final = "namespace name (lower-case letters, digits and '-', at most 63)"
_APP_WHAT: Final = "app name (a label value: letters, digits, '-', '_' and '.', at most 63)"


def _shown(window: Window | None) -> str:
    return str(window) if window is not None else "always"


def check_policy(spec: PolicySpec, *, has_timezone: bool) -> tuple[ClusterPolicy, list[PolicyProblem]]:
    """``spec`` checked whole: the policy, and every problem (a policy with problems must not be used)."""
    out: list[PolicyProblem] = []
    ratios = _ratios(spec.overcommit, ("overcommit",), out) or Ratios()
    groups: dict[str, dict[str, str]] = {}
    for name, group in spec.host_groups.items():
        if not _NAMESPACE_RE.match(name):
            out.append(
                PolicyProblem(
                    ("hostGroups", name),
                    f"{name!r} is no host group name: lower-case letters, digits and '-', at most 63",
                )
            )
        for key, value in group.match_labels.items():
            if not _LABEL_KEY_RE.match(key) or len(key) > 253:
                out.append(PolicyProblem(("hostGroups", name, "matchLabels", key), f"{key!r} is no label key"))
            elif not _LABEL_VALUE_RE.match(value):
                out.append(PolicyProblem(("hostGroups", name, "matchLabels", key), f"{value!r} is no label value"))
        groups[name] = dict(group.match_labels)
    _known_group(spec.host_group, groups, ("hostGroup",), out)
    exclusive: list[ExclusiveHosts] = []
    for i, entry in enumerate(spec.exclusive_hosts):
        path: PolicyPath = ("exclusiveHosts", i)
        _known_group(entry.host_group, groups, (*path, "hostGroup"), out)
        _names(entry.namespaces, (*path, "namespaces"), _NAMESPACE_WHAT, _NAMESPACE_RE, out)
        _names(entry.apps, (*path, "apps"), _APP_WHAT, _LABEL_VALUE_RE, out)
        if not entry.namespaces and not entry.apps:
            out.append(PolicyProblem(path, "exclusive hosts are kept for someone: give namespaces and/or apps"))
        window = None
        if entry.window is not None:
            try:
                window = parse_window(entry.window)
            except ValueError as exc:
                out.append(PolicyProblem((*path, "window"), str(exc)))
                continue
            if not has_timezone and not any(p.reason.startswith(_NO_TIMEZONE) for p in out):
                out.append(PolicyProblem((*path, "window"), f"{_NO_TIMEZONE}: set spec.timezone"))
        for j, other in enumerate(exclusive):
            if other.host_group == entry.host_group and windows_overlap(other.window, window):
                out.append(
                    PolicyProblem(
                        (*path, "window" if entry.window is not None else "hostGroup"),
                        f"host group {entry.host_group!r} is exclusive {_shown(window)} here and {_shown(other.window)}"
                        f" in exclusiveHosts[{j}]: the windows overlap; merge them or make them disjoint",
                    )
                )
        exclusive.append(ExclusiveHosts(entry.host_group, window, tuple(entry.namespaces), tuple(entry.apps)))
    anti: dict[str, tuple[str, ...]] = {}
    for i, group_spec in enumerate(spec.anti_affinity):
        path = ("antiAffinity", i)
        _names(group_spec.apps, (*path, "apps"), _APP_WHAT, _LABEL_VALUE_RE, out)
        if group_spec.name in anti:
            out.append(PolicyProblem((*path, "name"), f"anti-affinity group {group_spec.name!r} is given twice"))
        if len(set(group_spec.apps)) < 2:
            out.append(PolicyProblem((*path, "apps"), "an anti-affinity group names at least two different apps"))
        anti[group_spec.name] = tuple(dict.fromkeys(group_spec.apps))
    events: list[EventRule] = []
    for i, rule in enumerate(spec.events):
        path = ("events", i)
        _names(rule.namespaces, (*path, "namespaces"), _NAMESPACE_WHAT, _NAMESPACE_RE, out)
        if rule.level is None and not (rule.kinds or rule.namespaces or rule.reasons):
            out.append(
                PolicyProblem(path, "a rule matches by level, kinds, namespaces and/or reasons: give at least one")
            )
        events.append(
            EventRule(rule.action, rule.level, tuple(rule.kinds), tuple(rule.namespaces), tuple(rule.reasons))
        )
    namespaces: dict[str, NamespacePolicy] = {}
    for name, own in spec.namespaces.items():
        path = ("namespaces", name)
        if not _NAMESPACE_RE.match(name):
            out.append(PolicyProblem(path, f"{name!r} is no {_NAMESPACE_WHAT}"))
        _known_group(own.host_group, groups, (*path, "hostGroup"), out)
        namespaces[name] = NamespacePolicy(
            _ratios(own.overcommit, (*path, "overcommit"), out), own.host_group, own.audit
        )
    policy = ClusterPolicy(ratios, groups, spec.host_group, tuple(exclusive), anti, tuple(events), namespaces)
    return policy, out
