"""The site inventory: every site (transfer center or central cluster) and its boxes, as declarative YAML files.

Files in ``sites/`` follow the Kubernetes manifest style (``apiVersion: edgefleet.io/v1``, ``kind: Site``,
``metadata``, ``spec``). ``load_inventory`` reads every file, checks each field and the whole set (unique ids,
known time zones, GPU boxes that say which GPU), and either returns the complete inventory or raises
``InventoryError`` with every problem found - file, line, field and reason - so nothing is ever half-loaded.
Called by ``edgefleet sites validate``, by the controller at start-up and by the simulator.
"""

from __future__ import annotations

import hashlib
import zoneinfo
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Final, Literal, get_args

import msgspec
from msgspec import Meta, Struct

from edgefleet.errors import InventoryError, Problem
from edgefleet.ids import ID_PATTERN, BoxId, SiteId
from edgefleet.manifests import ManifestPath, check_kind, convert, read_documents

API_VERSION: Final = "edgefleet.io/v1"
KIND: Final = "Site"
DEFAULT_INTERVAL_S: Final = 10.0
# Three missed beats: one lost message or a slow hop must not make a box look lost.
DEFAULT_MISSED_BEATS: Final = 3

Id = Annotated[str, Meta(pattern=ID_PATTERN, max_length=63)]
Text = Annotated[str, Meta(min_length=1, max_length=200)]
SiteKind = Literal["transfer-center", "central"]
BoxRole = Literal["edge-node", "gpu-box", "cluster-node"]


class _Manifest(Struct, kw_only=True, forbid_unknown_fields=True, rename="camel"):
    pass


class GpuSpec(_Manifest, kw_only=True):
    model: Text
    count: Annotated[int, Meta(ge=1, le=16)]
    driver_version: Text


class BoxSpec(_Manifest, kw_only=True):
    name: Id
    role: BoxRole
    model: Text | None = None
    gpu: GpuSpec | None = None
    labels: dict[str, str] = {}


class HeartbeatSpec(_Manifest, kw_only=True):
    interval_seconds: Annotated[float, Meta(gt=0, le=3600)] = DEFAULT_INTERVAL_S
    missed_beats: Annotated[int, Meta(ge=1, le=100)] = DEFAULT_MISSED_BEATS


class SiteSpec(_Manifest, kw_only=True):
    kind: SiteKind
    display_name: Text
    region: Text
    timezone: Text
    address: Text | None = None
    heartbeat: HeartbeatSpec = msgspec.field(default_factory=HeartbeatSpec)
    boxes: Annotated[list[BoxSpec], Meta(min_length=1)]


class Metadata(_Manifest, kw_only=True):
    name: Id
    labels: dict[str, str] = {}


class SiteManifest(_Manifest, kw_only=True):
    api_version: str
    kind: str
    metadata: Metadata
    spec: SiteSpec


@dataclass(frozen=True, slots=True)
class Box:
    id: BoxId
    site: SiteId
    role: BoxRole
    model: str | None
    gpu: GpuSpec | None


@dataclass(frozen=True, slots=True)
class Site:
    id: SiteId
    kind: SiteKind
    display_name: str
    region: str
    timezone: str
    interval_s: float
    missed_beats: int
    boxes: tuple[BoxId, ...]
    source: str


@dataclass(frozen=True, slots=True)
class Inventory:
    sites: dict[SiteId, Site]
    boxes: dict[BoxId, Box]
    # What the files said, as a short content hash (``inventory_version``): the controller's log and /healthz
    # name the version in force, and ``edgefleet sites apply`` checks the controller reads what it applies.
    version: str = ""

    def site_boxes(self, site: SiteId) -> list[Box]:
        return [self.boxes[b] for b in self.sites[site].boxes]


# Site ids the controller uses itself: fleet-level alerts (the controller cannot hear the fleet) carry "fleet".
RESERVED_SITE_IDS: Final = frozenset({SiteId("fleet")})

_CHOICES: Final[dict[str, tuple[str, ...]]] = {"role": get_args(BoxRole), "kind": get_args(SiteKind)}
ManifestLines = dict[ManifestPath, int]


def _load_file(file: Path, problems: list[Problem]) -> list[tuple[SiteManifest, ManifestLines]]:
    shown = str(file)
    loaded = []
    for document in read_documents(file, problems):
        if not check_kind(document, shown, API_VERSION, KIND, problems):
            continue
        manifest = convert(document, SiteManifest, shown, problems, choices=_CHOICES, fields_doc="docs/inventory.md")
        if manifest is not None:
            loaded.append((manifest, document.lines))
    return loaded


def load_inventory(directory: Path) -> Inventory:
    """Read every ``*.yaml``/``*.yml`` under ``directory``; raises InventoryError listing every problem."""
    problems: list[Problem] = []
    if not directory.is_dir():
        raise InventoryError([Problem(str(directory), None, "", "is not a directory of site manifests")])
    files = sorted(p for p in directory.rglob("*") if p.suffix in {".yaml", ".yml"} and p.is_file())
    if not files:
        raise InventoryError(
            [Problem(str(directory), None, "", "holds no site manifests (*.yaml); see docs/inventory.md")]
        )
    sites: dict[SiteId, Site] = {}
    boxes: dict[BoxId, Box] = {}
    where: dict[str, str] = {}
    for file in files:
        for manifest, lines in _load_file(file, problems):
            shown = str(file)
            spec = manifest.spec
            site_id = SiteId(manifest.metadata.name)
            if site_id in RESERVED_SITE_IDS:
                problems.append(
                    Problem(
                        shown,
                        lines.get(("metadata", "name")),
                        "metadata.name",
                        f"{site_id!r} is reserved (fleet-wide alerts carry it); name the site otherwise",
                    )
                )
                continue
            if site_id in sites:
                problems.append(
                    Problem(
                        shown,
                        lines.get(("metadata", "name")),
                        "metadata.name",
                        f"site {site_id!r} is already defined in {sites[site_id].source}",
                    )
                )
                continue
            if spec.timezone not in _timezones():
                problems.append(
                    Problem(
                        shown,
                        lines.get(("spec", "timezone")),
                        "spec.timezone",
                        f"{spec.timezone!r} is no IANA time zone (for example 'Asia/Shanghai')",
                    )
                )
            site_boxes: list[BoxId] = []
            for i, box in enumerate(spec.boxes):
                path: ManifestPath = ("spec", "boxes", i)
                if box.name in where:
                    problems.append(
                        Problem(
                            shown,
                            lines.get((*path, "name")),
                            f"spec.boxes[{i}].name",
                            f"box {box.name!r} is already defined in {where[box.name]}",
                        )
                    )
                    continue
                if box.role == "gpu-box" and box.gpu is None:
                    problems.append(
                        Problem(
                            shown,
                            lines.get(path),
                            f"spec.boxes[{i}].gpu",
                            "a gpu-box must say which GPU it has (gpu: {model, count, driverVersion})",
                        )
                    )
                where[box.name] = shown
                box_id = BoxId(box.name)
                boxes[box_id] = Box(box_id, site_id, box.role, box.model, box.gpu)
                site_boxes.append(box_id)
            sites[site_id] = Site(
                id=site_id,
                kind=spec.kind,
                display_name=spec.display_name,
                region=spec.region,
                timezone=spec.timezone,
                interval_s=spec.heartbeat.interval_seconds,
                missed_beats=spec.heartbeat.missed_beats,
                boxes=tuple(site_boxes),
                source=shown,
            )
    if problems:
        raise InventoryError(problems)
    return Inventory(sites=sites, boxes=boxes, version=inventory_version(directory, files))


# Enough hex digits that two inventories of one fleet never share a version, few enough to read in a log line.
VERSION_CHARS: Final = 12


def inventory_version(directory: Path, files: list[Path] | None = None) -> str:
    """A content hash of the site manifests under ``directory`` (their paths below it and their bytes): the same
    files give the same version on any machine."""
    if files is None:
        files = sorted(p for p in directory.rglob("*") if p.suffix in {".yaml", ".yml"} and p.is_file())
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.relative_to(directory).as_posix().encode() + b"\0")
        digest.update(file.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:VERSION_CHARS]


_ZONES: set[str] | None = None


def _timezones() -> set[str]:
    global _ZONES  # noqa: PLW0603 - read once; the zone database does not change while we run
    if _ZONES is None:
        _ZONES = zoneinfo.available_timezones()
    return _ZONES
