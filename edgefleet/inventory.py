"""The site inventory: every site (transfer center or central cluster), its boxes, and the Kubernetes clusters
that hold them, as declarative YAML files.

Files in ``sites/`` follow the Kubernetes manifest style (``apiVersion: edgefleet.io/v1``, ``kind: Site`` or
``kind: Cluster``, ``metadata``, ``spec``). ``load_inventory`` reads every file, checks each field and the whole
set (unique ids, known time zones, GPU boxes that say which GPU, every site on a declared cluster of the right
role, no node claimed twice), and either returns the complete inventory or raises ``InventoryError`` with every
problem found - file, line, field and reason - so nothing is ever half-loaded.
Called by ``edgefleet sites validate``, by the controller at start-up and by the simulator.

How a site's Kubernetes nodes are found (docs/inventory.md): a transfer center's boxes are KubeEdge nodes of a
``kubeedge-host`` cluster, selected by their node group's label (``NODE_GROUP_LABEL=<nodeGroup>``, one group per
site); a central site is a whole ``central`` cluster. A box's node name is its id unless it says ``nodeName``.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Final, Literal, get_args

import msgspec
from msgspec import Meta, Struct

from edgefleet.errors import InventoryError, Problem
from edgefleet.ids import ID_PATTERN, BoxId, ClusterId, SiteId
from edgefleet.manifests import Document, ManifestPath, check_kind, convert, dotted, read_documents
from edgefleet.policies import ClusterPolicy, PolicySpec, check_policy

API_VERSION: Final = "edgefleet.io/v1"
KIND: Final = "Site"
CLUSTER_KIND: Final = "Cluster"
DEFAULT_INTERVAL_S: Final = 10.0
# Three missed beats: one lost message or a slow hop must not make a box look lost.
DEFAULT_MISSED_BEATS: Final = 3
# KubeEdge's NodeGroup controller puts this label on every member node, valued the group's name.
NODE_GROUP_LABEL: Final = "apps.kubeedge.io/belonging-to"
# A Kubernetes node name is a DNS-1123 subdomain: dot-separated labels, at most 253 characters.
NODE_NAME_MAX: Final = 253
_NODE_NAME_RE: Final = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

Id = Annotated[str, Meta(pattern=ID_PATTERN, max_length=63)]
Text = Annotated[str, Meta(min_length=1, max_length=200)]
SiteKind = Literal["transfer-center", "central"]
BoxRole = Literal["edge-node", "gpu-box", "cluster-node"]
ClusterRole = Literal["kubeedge-host", "central"]
# The role a site's cluster must have: a transfer center's nodes join a KubeEdge host; a central site is a cluster.
CLUSTER_ROLE_OF: Final[dict[SiteKind, ClusterRole]] = {"transfer-center": "kubeedge-host", "central": "central"}


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
    # Checked against _NODE_NAME_RE by the loader, which can say what a node name is (msgspec's regex message can't).
    node_name: Annotated[str, Meta(min_length=1, max_length=NODE_NAME_MAX)] | None = None


class HeartbeatSpec(_Manifest, kw_only=True):
    interval_seconds: Annotated[float, Meta(gt=0, le=3600)] = DEFAULT_INTERVAL_S
    missed_beats: Annotated[int, Meta(ge=1, le=100)] = DEFAULT_MISSED_BEATS


class SiteSpec(_Manifest, kw_only=True):
    kind: SiteKind
    display_name: Text
    region: Text
    timezone: Text
    cluster: Id
    # A label value, so at most 63 characters; the default is the site id. Refused on a central site.
    node_group: Id | None = None
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


class ClusterSpec(_Manifest, kw_only=True):
    role: ClusterRole
    context: Text
    region: Text
    # The cluster's local time, for its policy's exclusive windows (an IANA zone, as a site's).
    timezone: Text | None = None
    # A central cluster's platform policy (edgefleet.policies, docs/central-clusters.md).
    policy: PolicySpec | None = None


class ClusterManifest(_Manifest, kw_only=True):
    api_version: str
    kind: str
    metadata: Metadata
    spec: ClusterSpec


@dataclass(frozen=True, slots=True)
class Box:
    id: BoxId
    site: SiteId
    role: BoxRole
    model: str | None
    gpu: GpuSpec | None
    # The Kubernetes node name when the manifest gives one (``nodeName``); ``node_name`` says which applies.
    node: str | None = None
    # The box's own node labels (``labels``): what a central cluster's host groups select nodes by.
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def node_name(self) -> str:
        """The box's Kubernetes node name in its site's cluster: ``nodeName`` if given, else the box id."""
        return self.node if self.node is not None else self.id


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
    # The cluster that holds the site's nodes.
    cluster: ClusterId
    # A transfer center's KubeEdge node group (its nodes carry ``NODE_GROUP_LABEL=<node_group>``); None for a
    # central site, which is its whole cluster.
    node_group: str | None = None

    @property
    def node_selector(self) -> str | None:
        """The label selector of the site's nodes in its cluster; None for a central site (every node)."""
        return f"{NODE_GROUP_LABEL}={self.node_group}" if self.node_group is not None else None


@dataclass(frozen=True, slots=True)
class Cluster:
    id: ClusterId
    role: ClusterRole
    # The kubeconfig context the controller reaches the cluster through.
    context: str
    region: str
    source: str
    timezone: str | None = None
    policy: ClusterPolicy = field(default_factory=ClusterPolicy)


@dataclass(frozen=True, slots=True)
class Inventory:
    sites: dict[SiteId, Site]
    boxes: dict[BoxId, Box]
    # What the files said, as a short content hash (``inventory_version``): the controller's log and /healthz
    # name the version in force, and ``edgefleet sites apply`` checks the controller reads what it applies.
    version: str = ""
    clusters: dict[ClusterId, Cluster] = field(default_factory=dict)

    def site_boxes(self, site: SiteId) -> list[Box]:
        return [self.boxes[b] for b in self.sites[site].boxes]

    def cluster_sites(self, cluster: ClusterId) -> list[Site]:
        return [s for s in self.sites.values() if s.cluster == cluster]


# Site ids the controller uses itself: fleet-level alerts (the controller cannot hear the fleet) carry "fleet".
RESERVED_SITE_IDS: Final = frozenset({SiteId("fleet")})

_CHOICES: Final[dict[str, tuple[str, ...]]] = {"role": get_args(BoxRole), "kind": get_args(SiteKind)}
_CLUSTER_CHOICES: Final[dict[str, tuple[str, ...]]] = {"role": get_args(ClusterRole)}
_FIELDS_DOC: Final = "docs/inventory.md"
ManifestLines = dict[ManifestPath, int]


@dataclass(slots=True)
class _Read:
    """What the files hold, before the checks across files: the manifests that parsed, with their file and
    lines, and the names the broken ones seem to carry (so one typo is not reported again by every site)."""

    sites: list[tuple[SiteManifest, ManifestLines, str]] = field(default_factory=list)
    clusters: list[tuple[ClusterManifest, ManifestLines, str]] = field(default_factory=list)
    broken_clusters: set[str] = field(default_factory=set)
    clusters_named_by_broken: set[str] = field(default_factory=set)


def _peek(document: Document, *path: str) -> str | None:
    """The text at ``path`` in a document that did not convert, if there is one."""
    value: object = document.data
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, str) else None


def _read_file(file: Path, read: _Read, problems: list[Problem]) -> None:
    shown = str(file)
    for document in read_documents(file, problems):
        if not check_kind(document, shown, API_VERSION, (KIND, CLUSTER_KIND), problems):
            named = _peek(document, "spec", "cluster")
            if named is not None:  # looks like a site
                read.clusters_named_by_broken.add(named)
            else:  # may be a cluster
                read.broken_clusters.add(_peek(document, "metadata", "name") or "")
            continue
        if document.data["kind"] == CLUSTER_KIND:
            cluster = convert(
                document, ClusterManifest, shown, problems, choices=_CLUSTER_CHOICES, fields_doc=_FIELDS_DOC
            )
            if cluster is None:
                read.broken_clusters.add(_peek(document, "metadata", "name") or "")
            else:
                read.clusters.append((cluster, document.lines, shown))
            continue
        site = convert(document, SiteManifest, shown, problems, choices=_CHOICES, fields_doc=_FIELDS_DOC)
        if site is None:
            read.clusters_named_by_broken.add(_peek(document, "spec", "cluster") or "")
        else:
            read.sites.append((site, document.lines, shown))


def _did_you_mean(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _load_clusters(
    read: _Read, problems: list[Problem]
) -> tuple[dict[ClusterId, Cluster], dict[ClusterId, int | None]]:
    """The declared clusters, and the line of each one's name."""
    clusters: dict[ClusterId, Cluster] = {}
    name_lines: dict[ClusterId, int | None] = {}
    by_context: dict[str, Cluster] = {}
    for manifest, lines, shown in read.clusters:
        cluster_id = ClusterId(manifest.metadata.name)
        if cluster_id in clusters:
            problems.append(
                Problem(
                    shown,
                    lines.get(("metadata", "name")),
                    "metadata.name",
                    f"cluster {cluster_id!r} is already defined in {clusters[cluster_id].source}",
                )
            )
            continue
        spec = manifest.spec
        if spec.context in by_context:
            other = by_context[spec.context]
            # Two names for one cluster would let two sites claim one node unseen.
            problems.append(
                Problem(
                    shown,
                    lines.get(("spec", "context")),
                    "spec.context",
                    f"context {spec.context!r} is already that of cluster {other.id!r} ({other.source}); "
                    "declare each cluster once",
                )
            )
            continue
        policy = _check_cluster_policy(spec, lines, shown, problems)
        cluster = Cluster(cluster_id, spec.role, spec.context, spec.region, shown, spec.timezone, policy)
        clusters[cluster_id] = cluster
        name_lines[cluster_id] = lines.get(("metadata", "name"))
        by_context[spec.context] = cluster
    return clusters, name_lines


def _line(lines: ManifestLines, path: ManifestPath) -> int | None:
    """The line of ``path``, or of its nearest ancestor that has one."""
    while path not in lines and path:
        path = path[:-1]
    return lines.get(path)


def _check_cluster_policy(
    spec: ClusterSpec, lines: ManifestLines, shown: str, problems: list[Problem]
) -> ClusterPolicy:
    """The cluster's policy, its problems (and its time zone's) added to ``problems``."""
    if spec.timezone is not None and spec.timezone not in _timezones():
        problems.append(
            Problem(
                shown,
                lines.get(("spec", "timezone")),
                "spec.timezone",
                f"{spec.timezone!r} is no IANA time zone (for example 'Asia/Shanghai')",
            )
        )
    if spec.policy is None:
        return ClusterPolicy()
    if spec.role != "central":
        problems.append(
            Problem(
                shown,
                lines.get(("spec", "policy")),
                "spec.policy",
                "a platform policy applies to a central cluster; a kubeedge-host cluster's sites have none",
            )
        )
        return ClusterPolicy()
    policy, found = check_policy(spec.policy, has_timezone=spec.timezone is not None)
    for problem in found:
        path: ManifestPath = ("spec", "policy", *problem.path)
        problems.append(Problem(shown, _line(lines, path), dotted(path), problem.reason))
    return policy


@dataclass(slots=True)
class _Claims:
    """Who holds what in each cluster, so a second claim can name the first."""

    node_groups: dict[tuple[str, str], Site] = field(default_factory=dict)
    central_sites: dict[str, Site] = field(default_factory=dict)
    nodes: dict[tuple[str, str], tuple[BoxId, SiteId, str]] = field(default_factory=dict)


def _check_placement(
    site: Site, spec: SiteSpec, lines: ManifestLines, clusters: dict[ClusterId, Cluster], read: _Read
) -> list[Problem]:
    """Whether the site's cluster is declared and of the role its kind needs, and a node group only where one
    applies."""
    shown = site.source
    cluster_line = lines.get(("spec", "cluster"))
    out = []
    cluster = clusters.get(site.cluster)
    if cluster is None:
        if site.cluster not in read.broken_clusters:  # that cluster's own problem is reported already
            out.append(
                Problem(
                    shown,
                    cluster_line,
                    "spec.cluster",
                    f"names cluster {site.cluster!r}, which no kind: Cluster manifest declares"
                    + _did_you_mean(site.cluster, list(clusters)),
                )
            )
    elif cluster.role != CLUSTER_ROLE_OF[site.kind]:
        why = (
            "a transfer center's boxes are KubeEdge nodes of a kubeedge-host cluster"
            if site.kind == "transfer-center"
            else "a central site is a whole central cluster"
        )
        out.append(
            Problem(
                shown,
                cluster_line,
                "spec.cluster",
                f"{why}; {site.cluster!r} is a {cluster.role} cluster ({cluster.source})",
            )
        )
    if site.kind == "central" and spec.node_group is not None:
        out.append(
            Problem(
                shown,
                lines.get(("spec", "nodeGroup")),
                "spec.nodeGroup",
                "a central site is its whole cluster and selects no node group; remove nodeGroup",
            )
        )
    return out


def _check_claims(site: Site, spec: SiteSpec, lines: ManifestLines, claims: _Claims) -> list[Problem]:
    """Whether the site claims a node group, a central cluster or a node another site holds already."""
    shown = site.source
    out = []
    if site.node_group is not None:
        key = (site.cluster, site.node_group)
        other = claims.node_groups.setdefault(key, site)
        if other is not site:
            given = spec.node_group is not None
            out.append(
                Problem(
                    shown,
                    lines.get(("spec", "nodeGroup") if given else ("spec", "cluster")),
                    "spec.nodeGroup",
                    f"node group {site.node_group!r}{'' if given else ' (the site id, by default)'} on cluster "
                    f"{site.cluster!r} is already that of site {other.id!r} ({other.source}); each site has its own",
                )
            )
    if site.kind == "central":
        other = claims.central_sites.setdefault(site.cluster, site)
        if other is not site:
            out.append(
                Problem(
                    shown,
                    lines.get(("spec", "cluster")),
                    "spec.cluster",
                    f"cluster {site.cluster!r} is already central site {other.id!r} ({other.source}); "
                    "a central cluster is one site",
                )
            )
    for i, box in enumerate(spec.boxes):
        node = box.node_name if box.node_name is not None else box.name
        held = claims.nodes.setdefault((site.cluster, node), (BoxId(box.name), site.id, shown))
        if held[0] != box.name:  # the same box id twice is reported as that
            given = box.node_name is not None
            out.append(
                Problem(
                    shown,
                    lines.get(("spec", "boxes", i, "nodeName" if given else "name")),
                    f"spec.boxes[{i}].{'nodeName' if given else 'name'}",
                    f"node {node!r} of cluster {site.cluster!r} is already box {held[0]!r} of site {held[1]!r} "
                    f"({held[2]}); a node is one box",
                )
            )
    return out


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
    read = _Read()
    for file in files:
        _read_file(file, read, problems)
    clusters, cluster_lines = _load_clusters(read, problems)
    claims = _Claims()
    named_clusters = set(read.clusters_named_by_broken)
    sites: dict[SiteId, Site] = {}
    boxes: dict[BoxId, Box] = {}
    where: dict[str, str] = {}
    for manifest, lines, shown in read.sites:
        spec = manifest.spec
        named_clusters.add(spec.cluster)
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
            if box.node_name is not None and not _NODE_NAME_RE.match(box.node_name):
                problems.append(
                    Problem(
                        shown,
                        lines.get((*path, "nodeName")),
                        f"spec.boxes[{i}].nodeName",
                        f"{box.node_name!r} is no Kubernetes node name: lower-case letters, digits, '-' and '.', "
                        "starting and ending with a letter or digit",
                    )
                )
            where[box.name] = shown
            box_id = BoxId(box.name)
            boxes[box_id] = Box(box_id, site_id, box.role, box.model, box.gpu, box.node_name, dict(box.labels))
            site_boxes.append(box_id)
        site = Site(
            id=site_id,
            kind=spec.kind,
            display_name=spec.display_name,
            region=spec.region,
            timezone=spec.timezone,
            interval_s=spec.heartbeat.interval_seconds,
            missed_beats=spec.heartbeat.missed_beats,
            boxes=tuple(site_boxes),
            source=shown,
            cluster=ClusterId(spec.cluster),
            node_group=(spec.node_group or site_id) if spec.kind == "transfer-center" else None,
        )
        problems += _check_placement(site, spec, lines, clusters, read)
        problems += _check_claims(site, spec, lines, claims)
        sites[site_id] = site
    for cluster in clusters.values():
        if cluster.id not in named_clusters:
            problems.append(
                Problem(
                    cluster.source,
                    cluster_lines[cluster.id],
                    "metadata.name",
                    f"cluster {cluster.id!r} holds no site; name it in a site's spec.cluster, or remove it",
                )
            )
    if problems:
        raise InventoryError(problems)
    return Inventory(sites=sites, boxes=boxes, version=inventory_version(directory, files), clusters=clusters)


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
