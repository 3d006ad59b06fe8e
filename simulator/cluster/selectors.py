"""Label and field selectors as the Kubernetes API server reads them (``?labelSelector=``, ``?fieldSelector=``).

Label selectors follow apimachinery's grammar: requirements joined by commas, each one of ``key``, ``!key``,
``key=value``, ``key==value``, ``key!=value``, ``key in (a,b)``, ``key notin (a,b)``, ``key>1``, ``key<1``.
``!=`` and ``notin`` also match objects without the key, as in Kubernetes. Field selectors are ``field=value``,
``field==value`` or ``field!=value`` joined by commas, with ``\\``, ``\\,`` and ``\\=`` escaping; which fields a
kind accepts is the resource's business (``resources.Resource.fields``). Pure; the store and the server call these.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

Operator = Literal["in", "notin", "exists", "!", "gt", "lt"]

_NAME: Final = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_DNS_SUBDOMAIN: Final = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# The characters that end an identifier in the lexer (apimachinery's labels.isSpecialSymbol and whitespace).
_SPECIAL: Final = frozenset("=!(),<>")
_MAX_VALUE: Final = 63


class SelectorError(ValueError):
    """A selector that cannot be parsed; the message is the API server's 400 answer."""


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    operator: Operator
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        has = self.key in labels
        if self.operator == "exists":
            return has
        if self.operator == "!":
            return not has
        if self.operator == "in":
            return has and labels[self.key] in self.values
        if self.operator == "notin":
            return not has or labels[self.key] not in self.values
        if not has:
            return False
        try:
            have = int(labels[self.key])
        except ValueError:
            return False
        (limit,) = (int(v) for v in self.values)
        return have > limit if self.operator == "gt" else have < limit


@dataclass(frozen=True, slots=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        have = labels or {}
        return all(r.matches(have) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements


def _tokens(text: str) -> list[str]:
    tokens: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in _SPECIAL:
            two = text[i : i + 2]
            if two in ("==", "!="):
                tokens.append(two)
                i += 2
            else:
                tokens.append(ch)
                i += 1
        else:
            start = i
            while i < len(text) and not text[i].isspace() and text[i] not in _SPECIAL:
                i += 1
            tokens.append(text[start:i])
    return tokens


def _check_key(key: str) -> None:
    prefix, slash, name = key.rpartition("/")
    problem = None
    if slash and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        problem = "prefix part must be a lowercase RFC 1123 subdomain"
    elif not name or len(name) > _MAX_VALUE or not _NAME.match(name):
        problem = (
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an"
            " alphanumeric character, at most 63 characters"
        )
    if problem:
        raise SelectorError(f'unable to parse requirement: Invalid value: "{key}": {problem}')


def _check_value(value: str) -> None:
    if len(value) > _MAX_VALUE or not _NAME.match(value):
        raise SelectorError(
            f'unable to parse requirement: Invalid value: "{value}": a valid label must be an empty string or'
            " consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric"
            " character, at most 63 characters"
        )


def _is_identifier(token: str) -> bool:
    return token not in _SPECIAL and token not in ("==", "!=")


def parse_labels(text: str) -> LabelSelector:
    """Parse ``?labelSelector=``; an empty string selects everything. Raises SelectorError."""
    tokens = _tokens(text)
    requirements: list[Requirement] = []
    i = 0

    def expect_identifier(what: str) -> str:
        nonlocal i
        if i >= len(tokens) or not _is_identifier(tokens[i]):
            found = tokens[i] if i < len(tokens) else "end of string"
            raise SelectorError(f"unable to parse requirement: found '{found}', expected: {what}")
        i += 1
        return tokens[i - 1]

    while i < len(tokens):
        if tokens[i] == "!":
            i += 1
            key = expect_identifier("identifier after '!'")
            _check_key(key)
            requirements.append(Requirement(key, "!"))
        else:
            key = expect_identifier("identifier")
            _check_key(key)
            op = tokens[i] if i < len(tokens) else ","
            if op == ",":
                requirements.append(Requirement(key, "exists"))
            elif op in ("=", "==", "!="):
                i += 1
                value = tokens[i] if i < len(tokens) and _is_identifier(tokens[i]) else ""
                if value:
                    i += 1
                _check_value(value)
                requirements.append(Requirement(key, "notin" if op == "!=" else "in", frozenset({value})))
            elif op in ("<", ">"):
                i += 1
                value = expect_identifier("integer")
                try:
                    int(value)
                except ValueError:
                    raise SelectorError(
                        f"unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer, not"
                        f" {value!r}"
                    ) from None
                requirements.append(Requirement(key, "gt" if op == ">" else "lt", frozenset({value})))
            elif op in ("in", "notin"):
                i += 1
                if i >= len(tokens) or tokens[i] != "(":
                    raise SelectorError(
                        f"unable to parse requirement: found '{tokens[i] if i < len(tokens) else 'end of string'}', expected: '('"
                    )
                i += 1
                values: set[str] = set()
                while True:
                    value = tokens[i] if i < len(tokens) and _is_identifier(tokens[i]) else ""
                    if value:
                        i += 1
                    _check_value(value)
                    values.add(value)
                    if i < len(tokens) and tokens[i] == ",":
                        i += 1
                        continue
                    if i < len(tokens) and tokens[i] == ")":
                        i += 1
                        break
                    raise SelectorError("unable to parse requirement: found end of string, expected: ')'")
                requirements.append(Requirement(key, op, frozenset(values)))  # type: ignore[arg-type]
            else:
                raise SelectorError(
                    f"unable to parse requirement: found '{op}', expected: in, notin, =, ==, !=, gt, lt"
                )
        if i < len(tokens):
            if tokens[i] != ",":
                raise SelectorError(f"found '{tokens[i]}', expected: ',' or 'end of string'")
            i += 1
            if i >= len(tokens):
                raise SelectorError("found 'end of string', expected: identifier")
    return LabelSelector(tuple(requirements))


@dataclass(frozen=True, slots=True)
class FieldRequirement:
    field: str
    value: str
    equal: bool


@dataclass(frozen=True, slots=True)
class FieldSelector:
    requirements: tuple[FieldRequirement, ...] = ()

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return all((field_value(obj, r.field) == r.value) == r.equal for r in self.requirements)


def _split_unescaped(text: str, separator: str) -> list[str]:
    parts, current, escaped = [], [], False
    for ch in text:
        if escaped:
            current.append("\\" + ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if escaped:
        current.append("\\")
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    out, escaped = [], False
    for ch in text:
        if escaped:
            if ch not in "\\,=":
                raise SelectorError(f"invalid field selector: invalid escape sequence: \\{ch}")
            out.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        else:
            out.append(ch)
    if escaped:
        raise SelectorError("invalid field selector: unterminated escape sequence")
    return "".join(out)


def parse_fields(text: str, allowed: tuple[str, ...]) -> FieldSelector:
    """Parse ``?fieldSelector=`` for a kind that accepts ``allowed``; raises SelectorError."""
    requirements = []
    for part in _split_unescaped(text, ","):
        if not part.strip():
            continue
        field, value, equal = _split_requirement(part)
        field = _unescape(field)
        if field not in allowed:
            raise SelectorError(f"field label not supported: {field}")
        requirements.append(FieldRequirement(field, _unescape(value), equal))
    return FieldSelector(tuple(requirements))


def _split_requirement(part: str) -> tuple[str, str, bool]:
    for op, equal in (("!=", False), ("==", True), ("=", True)):
        index = _find_unescaped(part, op)
        if index >= 0:
            return part[:index].strip(), part[index + len(op) :], equal
    raise SelectorError(f"invalid selector: '{part}'; can't understand '{part}'")


def _find_unescaped(text: str, op: str) -> int:
    i = 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text.startswith(op, i):
            return i
        i += 1
    return -1


def field_value(obj: Mapping[str, Any], field: str) -> str:
    """The value a field selector compares: a dotted path into the object, "" when absent; booleans in Go's
    spelling (``spec.unschedulable=false`` matches a node that does not say)."""
    value: Any = obj
    for part in field.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if field == "spec.unschedulable":
        return "true" if value else "false"
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)
