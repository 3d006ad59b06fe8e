"""Kubernetes-style YAML manifests read with the line of every field, so each problem can say where it is.

Shared by the loaders of declarative files: the site inventory (``inventory.load_inventory``) and the notification
file (``cloud.alerting.config.load_notifications``). ``read_documents`` parses a file into plain data plus a map
from every field's path to its line; ``check_kind`` checks ``apiVersion``/``kind``; ``convert`` validates a
document against a msgspec type and turns msgspec's error into a ``Problem`` (file, line, camelCase field, reason)
instead of a traceback. Problems are appended to a list the caller owns, so a loader reports every problem of
every file at once and loads nothing when there is one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import msgspec
import yaml

from edgefleet.errors import Problem

ManifestPath = tuple[str | int, ...]
T = TypeVar("T")

_LOADER = yaml.SafeLoader("")
# libyaml composes ~10x faster than the pure-Python parser; both build the same node tree.
_FAST_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_PATH_PART = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]")
_ERROR_AT = re.compile(r" - at `\$([^`]*)`$")
_UNKNOWN_FIELD = re.compile(r"Object contains unknown field `([^`]+)`")
ID_REASON: Final = "must be an id: lower-case letters, digits and '-', at most 63, starting and ending alphanumeric"


@dataclass(frozen=True, slots=True)
class Document:
    """One YAML document as plain Python data, with the line (1-based) of every mapping key and list item."""

    data: Any
    lines: dict[ManifestPath, int]

    def line(self, path: ManifestPath) -> int | None:
        """The line of ``path``, or of its nearest ancestor that has one."""
        while path not in self.lines and path:
            path = path[:-1]
        return self.lines.get(path)


def _to_python(node: yaml.Node, path: ManifestPath, lines: dict[ManifestPath, int]) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = yaml.SafeLoader.construct_scalar(_LOADER, key_node) if isinstance(key_node, yaml.ScalarNode) else None
            if key is None:
                raise yaml.MarkedYAMLError(
                    problem="mapping keys must be plain strings", problem_mark=key_node.start_mark
                )
            out[key] = _to_python(value_node, (*path, key), lines)
            # A key's own line, not its value's: for a nested mapping the value starts on the next line.
            lines[(*path, key)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(item, (*path, i), lines) for i, item in enumerate(node.value)]
    return _LOADER.construct_object(node, deep=True)


def read_documents(file: Path, problems: list[Problem]) -> list[Document]:
    """Every non-empty YAML document of ``file``; a file that cannot be read or parsed adds a problem instead."""
    shown = str(file)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(shown, None, "", f"cannot be read: {exc}"))
        return []
    return parse_documents(text, shown, problems)


def parse_documents(text: str, shown: str, problems: list[Problem]) -> list[Document]:
    """Every non-empty YAML document of ``text`` (named ``shown`` in problems: a file, or what an API received)."""
    try:
        nodes = list(yaml.compose_all(text, Loader=_FAST_LOADER))
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        problems.append(Problem(shown, line, "", f"is not valid YAML: {exc.problem}"))
        return []
    except yaml.reader.ReaderError as exc:  # a character YAML refuses (a control character): no mark, a position
        line = text.count("\n", 0, exc.position) + 1
        problems.append(Problem(shown, line, "", f"is not valid YAML: {exc.reason} (character #x{exc.character:04x})"))
        return []
    documents = []
    for node in nodes:
        if node is None:
            continue
        lines: dict[ManifestPath, int] = {}
        try:
            data = _to_python(node, (), lines)
        except yaml.MarkedYAMLError as exc:
            line = exc.problem_mark.line + 1 if exc.problem_mark else None
            problems.append(Problem(shown, line, "", f"is not valid YAML: {exc.problem}"))
            continue
        finally:
            # The constructor remembers every node it built (PyYAML clears that only in construct_document, which
            # we do not call): without this, every inventory reload would keep the last one's nodes alive.
            _LOADER.constructed_objects.clear()
            _LOADER.recursive_objects.clear()
        documents.append(Document(data, lines))
    return documents


def check_kind(
    document: Document, shown: str, api_version: str, kind: str | tuple[str, ...], problems: list[Problem]
) -> bool:
    """Whether ``document`` is a mapping of the expected ``apiVersion`` and ``kind`` (or one of ``kind``); adds a
    problem if not."""
    kinds = (kind,) if isinstance(kind, str) else kind
    data = document.data
    if not isinstance(data, dict):
        problems.append(
            Problem(shown, document.lines.get(()), "", "a manifest must be a mapping (apiVersion, kind, ...)")
        )
        return False
    if data.get("apiVersion") != api_version or data.get("kind") not in kinds:
        problems.append(
            Problem(
                shown,
                document.lines.get(("kind",), document.lines.get(())),
                "apiVersion/kind",
                f"expected apiVersion {api_version!r} and kind {' or '.join(repr(k) for k in kinds)}, "
                f"got {data.get('apiVersion')!r} and {data.get('kind')!r}",
            )
        )
        return False
    return True


def convert(
    document: Document,
    type_: type[T],
    shown: str,
    problems: list[Problem],
    *,
    choices: Mapping[str, tuple[str, ...]] | None = None,
    fields_doc: str,
) -> T | None:
    """``document`` as ``type_`` (a msgspec Struct with camelCase names), or None after adding the first problem
    msgspec found. ``choices`` lists the allowed values of enum fields by their Python name, for the message;
    ``fields_doc`` is the page that lists the fields (named when a field is unknown)."""
    try:
        return msgspec.convert(document.data, type_)
    except msgspec.ValidationError as exc:
        path, reason = _parse_error_path(str(exc))
        unknown = _UNKNOWN_FIELD.match(reason)
        if unknown:
            path = (*path, unknown.group(1))
        named = [p for p in path if isinstance(p, str)]
        if reason.startswith("Invalid enum value") and named and choices and named[-1] in choices:
            reason += f"; expected one of {', '.join(choices[named[-1]])}"
        if unknown:
            reason += f" (check its spelling and indentation; {fields_doc} lists the fields)"
        if "matching regex" in reason:
            reason = ID_REASON
        camel_path = tuple(camel(p) if isinstance(p, str) else p for p in path)
        problems.append(Problem(shown, document.line(camel_path), dotted(camel_path), reason))
        return None


def _parse_error_path(message: str) -> tuple[ManifestPath, str]:
    """Split msgspec's "reason - at `$.a.b[0]`" into a path and the reason."""
    match = _ERROR_AT.search(message)
    if not match:
        return (), message
    path: list[str | int] = []
    for name, index in _PATH_PART.findall(match.group(1)):
        path.append(name if name else int(index))
    return tuple(path), message[: match.start()]


def dotted(path: ManifestPath) -> str:
    """``("spec", "boxes", 1, "gpu")`` -> ``spec.boxes[1].gpu``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def camel(name: str) -> str:
    """``driver_version`` -> ``driverVersion``: a Python field name as the manifest spells it."""
    head, *rest = name.split("_")
    return head + "".join(w.capitalize() for w in rest)
