"""Releases: what version of an app goes to the fleet, and how it is rolled out (issue 15), as declarative YAML.

A file in ``releases/`` follows the Kubernetes manifest style (``apiVersion: edgefleet.io/v1``, ``kind: Release``)::

    apiVersion: edgefleet.io/v1
    kind: Release
    metadata:
      name: sorting-recognition-3.6.0
    spec:
      app: sorting-recognition              # scan-upload or sorting-recognition
      version: 3.6.0
      images:                               # container name -> image; pinned by digest when the rollout starts
        sorting-recognition: registry.local:5000/edgefleet/sorting-recognition:3.6.0
      model:                                # sorting-recognition only: the recognition model, shipped as one unit
        name: rough-handling
        version: 2026.11.2
        sha256: 3f5a...                     # 64 hex digits
        url: https://models.local/rough-handling/2026.11.2.onnx
      config: {detector.threshold: "0.62"}  # a ConfigMap's data
      env: {LOG_LEVEL: info}
      resources:
        requests: {cpu: "2", memory: 4Gi, nvidia.com/gpu: "1"}
        limits: {cpu: "4", memory: 8Gi, nvidia.com/gpu: "1"}
      overrides:                            # later entries win; a site override beats a GPU-model one
        - gpuModels: [NVIDIA T4]
          config: {detector.threshold: "0.55"}
        - sites: [sh-pudong]
          env: {LOG_LEVEL: debug}
      strategy:
        canary: {sites: [], coverHardware: true}   # named sites, and/or enough to cover every GPU model and driver
        waves: ["10%", "50%", "100%"]        # after the canary; cumulative shares of the sites left, or counts (5)
        maxInFlight: 10                      # sites being changed at once
        soak: 10m                            # each wave's sites must pass their gates this long
        approvalBefore: [1]                  # waves (1 = the first after the canary) that wait for a promotion
        failureThreshold: {sites: 3, percentOfWave: 20}
        gates: {runningPercent: 90, healthTolerancePercent: 10}
        blackouts:                           # in each site's local time
          - {daily: "20:00-02:00", reason: sorting peak}
          - {dates: "2026-11-10..2026-11-12", reason: Double 11, sites: []}   # empty: every site
      rollback: false                        # true: this release may replace a newer one

This module holds the manifest's types (msgspec Structs, camelCase on the wire, like ``inventory``) and their loader:
``load_release`` (a file) and ``load_release_text`` (what the API receives) check every field against the
inventory and return a frozen ``Release`` of parsed values (waves, soak seconds, blackout windows), or raise
``ReleaseError`` with every problem - file, line, camelCase field and reason - so nothing is ever half-loaded.
What is accepted but deserves a look (an image given by tag only) comes back as ``Release.warnings``.
``load_releases`` reads a directory (``edgefleet releases validate``). ``pin_release_text`` writes a manifest's
images pinned by digest in place (what a rollout stores when it starts; ``registry_of`` says which registry an image
is resolved through, ``edgefleet.cloud.registry`` asks it). The parsers of durations, windows and waves
are pure functions of their text. Planning, gates and rendering live in ``edgefleet.cloud.rollouts``.
docs/releases.md describes every field and refusal.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Final, Literal, get_args

import msgspec
from msgspec import Meta, Struct

from edgefleet.errors import Problem, ReleaseError
from edgefleet.ids import SiteId
from edgefleet.inventory import Inventory
from edgefleet.manifests import Document, ManifestPath, check_kind, convert, parse_documents, read_documents

API_VERSION: Final = "edgefleet.io/v1"
KIND: Final = "Release"

AppName = Literal["scan-upload", "sorting-recognition"]
APPS: Final[tuple[str, ...]] = get_args(AppName)

Id = Annotated[str, Meta(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)]
Text = Annotated[str, Meta(min_length=1, max_length=200)]
Percent = Annotated[float, Meta(ge=0, le=100)]


class _Manifest(Struct, kw_only=True, forbid_unknown_fields=True, rename="camel"):
    pass


class ModelSpec(_Manifest, kw_only=True):
    name: Text
    version: Text
    # Checked by the loader, which can say what is wrong (msgspec's regex message can't).
    sha256: Text
    url: Text


class ResourcesSpec(_Manifest, kw_only=True):
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}


class OverrideSpec(_Manifest, kw_only=True):
    """Applies to the sites named and/or the boxes of the GPU models named (at least one of the two)."""

    sites: list[Id] = []
    gpu_models: list[Text] = []
    config: dict[str, str] = {}
    env: dict[str, str] = {}
    resources: ResourcesSpec | None = None


class CanarySpec(_Manifest, kw_only=True):
    sites: list[Id] = []
    # Add sites until every GPU model and driver version of the fleet is in the canary.
    cover_hardware: bool = True


class BlackoutSpec(_Manifest, kw_only=True):
    """A window in which no site is started: ``daily`` ("HH:MM-HH:MM", may pass midnight) or ``dates``
    ("YYYY-MM-DD..YYYY-MM-DD", inclusive), in each site's own time zone; ``sites`` empty means every site."""

    daily: str | None = None
    dates: str | None = None
    reason: Text
    sites: list[Id] = []


class FailureThresholdSpec(_Manifest, kw_only=True):
    """Abort when more than ``sites`` sites failed, or more than ``percent_of_wave`` of one wave's sites."""

    sites: Annotated[int, Meta(ge=0)] = 3
    percent_of_wave: Percent = 20.0


class GatesSpec(_Manifest, kw_only=True):
    # The new version must run on at least this share of the site's boxes for the whole soak.
    running_percent: Percent = 90.0
    # The app's health figures may be at most this much worse than the site's own on the previous version.
    health_tolerance_percent: Percent = 10.0


class StrategySpec(_Manifest, kw_only=True):
    canary: CanarySpec = msgspec.field(default_factory=CanarySpec)
    # A count may be written unquoted (``[5, "100%"]``), and a soak of ``0``; both are read as their text.
    waves: list[str | int] = msgspec.field(default_factory=lambda: ["10%", "50%", "100%"])
    max_in_flight: Annotated[int, Meta(ge=1)] = 10
    soak: str | int = "10m"
    approval_before: list[Annotated[int, Meta(ge=1)]] = []
    failure_threshold: FailureThresholdSpec = msgspec.field(default_factory=FailureThresholdSpec)
    gates: GatesSpec = msgspec.field(default_factory=GatesSpec)
    blackouts: list[BlackoutSpec] = []


class AutoscalingSpec(_Manifest, kw_only=True):
    """A HorizontalPodAutoscaler of the app's Deployment at central sites: replicas between the two, aiming at
    the average utilization (percent of requests) of CPU and/or memory."""

    min_replicas: int
    max_replicas: int
    cpu_utilization: int | None = None
    memory_utilization: int | None = None


class ReleaseSpec(_Manifest, kw_only=True):
    app: AppName
    version: Text
    images: Annotated[dict[str, str], Meta(min_length=1)]
    model: ModelSpec | None = None
    config: dict[str, str] = {}
    env: dict[str, str] = {}
    resources: ResourcesSpec = msgspec.field(default_factory=ResourcesSpec)
    overrides: list[OverrideSpec] = []
    strategy: StrategySpec = msgspec.field(default_factory=StrategySpec)
    rollback: bool = False
    autoscaling: AutoscalingSpec | None = None


class Metadata(_Manifest, kw_only=True):
    # Checked by the loader (``_RELEASE_NAME_RE``): an id that may hold dots, as in ``scan-upload-1.14.0``.
    name: Text
    labels: dict[str, str] = {}


class ReleaseManifest(_Manifest, kw_only=True):
    api_version: str
    kind: str
    metadata: Metadata
    spec: ReleaseSpec


# --- parsed values ----------------------------------------------------------------------------------------

# Kubernetes: a label value (app.kubernetes.io/version carries the version) is at most 63 characters of these.
# A release's name labels its workloads (edgefleet.io/release), so it is a label value, and names its file: lower
# case, digits, '-' and '.', like a Kubernetes object name.
_RELEASE_NAME_RE: Final = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$")
_LABEL_VALUE_RE: Final = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
# A ConfigMap key and an environment variable's name, as the API server accepts them.
_CONFIG_KEY_RE: Final = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")
_ENV_NAME_RE: Final = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
# A resource quantity (``250m``, ``4Gi``, ``1``, ``1e3``).
_QUANTITY_RE: Final = re.compile(r"^[+]?(\d+(\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E|[eE][+-]?\d+)?$")
GPU_RESOURCE: Final = "nvidia.com/gpu"
# The model goes to the app's container as these variables (``edgefleet.cloud.rollouts.rendering``); a release
# may not set them itself.
MODEL_ENV: Final = {
    "name": "EDGEFLEET_MODEL_NAME",
    "version": "EDGEFLEET_MODEL_VERSION",
    "sha256": "EDGEFLEET_MODEL_SHA256",
    "url": "EDGEFLEET_MODEL_URL",
}
# The distribution spec's reference grammar (github.com/distribution/reference), with sha256 digests only.
_DOMAIN_PART: Final = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_PATH_PART: Final = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE_RE: Final = re.compile(
    rf"^(?:(?P<domain>{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*(?::[0-9]+)?|localhost(?::[0-9]+)?)/)?"
    rf"(?P<path>{_PATH_PART}(?:/{_PATH_PART})*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)
# An image reference's whole name is at most 255 characters (the distribution spec).
_IMAGE_NAME_MAX: Final = 255
# A soak longer than a week is a typo, not a plan.
SOAK_MAX_S: Final = 7 * 24 * 3600
_DURATION_RE: Final = re.compile(r"^(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?$")
_DAILY_RE: Final = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")
_DATES_RE: Final = re.compile(r"^(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})$")
_WAVE_RE: Final = re.compile(r"^(?:(?P<percent>\d+(?:\.\d+)?)%|(?P<count>\d+))$")
DAY_MINUTES: Final = 24 * 60


@dataclass(frozen=True, slots=True)
class ImageRef:
    """An image reference split as the distribution spec reads it; ``str()`` gives it back."""

    name: str
    tag: str | None
    digest: str | None

    def __str__(self) -> str:
        return self.name + (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")


def parse_image(text: str) -> ImageRef:
    """``registry.local:5000/edgefleet/app:1.2.3@sha256:<64 hex>``; raises ValueError saying what is wrong."""
    match = _IMAGE_RE.match(text)
    if match is None:
        raise ValueError(
            f"{text!r} is no image reference: expected [registry[:port]/]path[:tag][@sha256:<64 hex digits>], "
            "the path in lower case (for example registry.local:5000/edgefleet/scan-upload:1.14.0)"
        )
    domain, path = match.group("domain"), match.group("path")
    name = f"{domain}/{path}" if domain else path
    if len(name) > _IMAGE_NAME_MAX:
        raise ValueError(f"the image name is {len(name)} characters long; at most {_IMAGE_NAME_MAX} are allowed")
    if match.group("tag") is None and match.group("digest") is None:
        raise ValueError(f"{text!r} names neither a tag nor a digest; give the version's tag (and its digest)")
    return ImageRef(name, match.group("tag"), match.group("digest"))


# Docker's rule (github.com/distribution/reference): a first path component is a registry host only when it holds a
# '.' or a ':' or is ``localhost``; else the image is on Docker Hub, whose official images live under ``library/``.
DOCKER_HUB: Final = "docker.io"


def registry_of(ref: ImageRef) -> tuple[str, str]:
    """(registry host, repository) of an image, as a container runtime reads its name:
    ``registry.local:5000/edgefleet/app`` -> (``registry.local:5000``, ``edgefleet/app``); ``nginx`` ->
    (``docker.io``, ``library/nginx``)."""
    first, sep, rest = ref.name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return DOCKER_HUB, ref.name if sep else f"library/{ref.name}"


def _constant(text: str) -> Callable[[re.Match[str]], str]:
    return lambda _: text


def pin_release_text(text: str, shown: str, pinned: Mapping[str, str]) -> str:
    """The release manifest ``text`` with each image of ``pinned`` (container name -> the image reference pinned,
    ``name:tag@sha256:...``) written in place of the one it gives, every other byte (comments, order, quotes) kept:
    a rollout stores this, so every site it reaches, later or after a restart, gets the same digests. Raises
    ValueError when an image cannot be found on its line (an image written across lines)."""
    problems: list[Problem] = []
    documents = parse_documents(text, shown, problems)
    if problems or len(documents) != 1:
        raise ValueError(f"{shown} is not one release manifest; load it first")
    document = documents[0]
    images = ((document.data or {}).get("spec") or {}).get("images") or {}
    lines = text.splitlines(keepends=True)
    for container, image in pinned.items():
        before = images.get(container)
        line = document.lines.get(("spec", "images", container))
        if not isinstance(before, str) or line is None:
            raise ValueError(f"{shown} has no image for container {container!r}")
        # The reference as a whole word: not the start of a longer one (``app:1`` inside ``app:1.2``).
        whole = re.compile(rf"(?<![\w.:/@-]){re.escape(before)}(?![\w.:/@-])")
        # A function, not a template: the reference is put in as it is.
        new, count = whole.subn(_constant(image), lines[line - 1], count=1)
        if count != 1:
            raise ValueError(
                f"{shown}:{line}: spec.images[{container!r}]: cannot find {before!r} on its line to pin it; write the "
                "image on the same line as its container name"
            )
        lines[line - 1] = new
    return "".join(lines)


def parse_duration(text: str) -> int:
    """``1h30m``, ``10m``, ``90s``, ``0s`` (or ``0``) as seconds; raises ValueError saying what is wrong."""
    match = _DURATION_RE.match(text.strip())
    if text.strip() == "0":
        return 0
    if not text.strip() or match is None:
        raise ValueError(f"{text!r} is no duration: use hours, minutes and seconds such as 1h30m, 10m or 90s")
    parts = match.groupdict()
    return int(parts["h"] or 0) * 3600 + int(parts["m"] or 0) * 60 + int(parts["s"] or 0)


def format_duration(seconds: int) -> str:
    """The inverse of ``parse_duration``: 5400 -> ``1h30m``; 0 -> ``0s``."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    out = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") + (f"{secs}s" if secs else "")
    return out or "0s"


def parse_daily(text: str) -> tuple[int, int]:
    """``HH:MM-HH:MM`` as (start, end) minutes after midnight; the window may pass midnight (``20:00-02:00``);
    ``24:00`` may end it. Raises ValueError saying what is wrong."""
    match = _DAILY_RE.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is no daily window: use HH:MM-HH:MM in the site's local time, such as 20:00-02:00")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or m1 > 59:
        raise ValueError(f"{text!r} starts at no time of day (00:00 to 23:59)")
    if m2 > 59 or h2 > 24 or (h2 == 24 and m2 != 0):
        raise ValueError(f"{text!r} ends at no time of day (00:00 to 24:00)")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start == end % DAY_MINUTES:
        raise ValueError(f"{text!r} starts where it ends; a window must last between a minute and a day less one")
    return start, end


def parse_dates(text: str) -> tuple[dt.date, dt.date]:
    """``YYYY-MM-DD..YYYY-MM-DD`` (both days included); raises ValueError saying what is wrong."""
    match = _DATES_RE.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is no date range: use YYYY-MM-DD..YYYY-MM-DD, such as 2026-11-10..2026-11-12")
    try:
        first, last = (dt.date.fromisoformat(g) for g in match.groups())
    except ValueError as exc:
        raise ValueError(f"{text!r} holds no calendar date: {exc}") from None
    if last < first:
        raise ValueError(f"{text!r} ends before it starts")
    return first, last


@dataclass(frozen=True, slots=True)
class Wave:
    """One wave after the canary: a cumulative share (``percent``) or number (``count``) of the sites left after
    the canary that run the release once the wave is done. Exactly one of the two is set."""

    count: int | None = None
    percent: float | None = None

    def __str__(self) -> str:
        return f"{self.percent:g}%" if self.percent is not None else str(self.count)


def parse_wave(text: str) -> Wave:
    """``10%`` or ``5``; raises ValueError saying what is wrong."""
    match = _WAVE_RE.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is no wave: give a share of the sites such as '10%', or a number of sites")
    if match.group("percent") is not None:
        percent = float(match.group("percent"))
        if not 0 < percent <= 100:
            raise ValueError(f"{text!r}: a wave's share is more than 0% and at most 100%")
        return Wave(percent=percent)
    count = int(match.group("count"))
    if count < 1:
        raise ValueError(f"{text!r}: a wave holds at least one site")
    return Wave(count=count)


def check_waves(waves: list[Wave]) -> str | None:
    """Why this list of waves is no plan (None when it is one): not empty, each kind strictly increasing (they
    are cumulative, so a wave never repeats or undoes an earlier one), and the last reaching 100%."""
    if not waves:
        return "there must be at least one wave, and the last must be '100%'"
    last_percent: float | None = None
    last_count: int | None = None
    for i, wave in enumerate(waves):
        if wave.percent is not None:
            if last_percent is not None and wave.percent <= last_percent:
                return (
                    f"wave {i + 1} ({wave}) does not go beyond wave {i} ({last_percent:g}%): waves are cumulative "
                    "shares of the sites, so each must be larger than the one before"
                )
            last_percent = wave.percent
        if wave.count is not None:
            if last_count is not None and wave.count <= last_count:
                return (
                    f"wave {i + 1} ({wave}) does not go beyond an earlier one ({last_count}): waves are cumulative "
                    "numbers of sites, so each must be larger than the one before"
                )
            if last_percent is not None:
                return f"wave {i + 1} ({wave}) gives a number of sites after a share; give shares from then on"
            last_count = wave.count
    if waves[-1].percent != 100:
        return f"the last wave is {waves[-1]}; it must be '100%' so that every site gets the release"
    return None


@dataclass(frozen=True, slots=True)
class Blackout:
    """A window in which no site is started, in each site's local time: ``daily`` (start, end) minutes after
    midnight (``end`` before ``start`` when it passes midnight) or ``dates`` (first, last) inclusive. ``sites``
    empty means every site."""

    reason: str
    daily: tuple[int, int] | None = None
    dates: tuple[dt.date, dt.date] | None = None
    sites: tuple[SiteId, ...] = ()

    @property
    def kind(self) -> Literal["daily", "dates"]:
        return "daily" if self.daily is not None else "dates"

    @property
    def window(self) -> str:
        """The window as a release writes it (``20:00-02:00``, ``2026-11-10..2026-11-12``); parses back."""
        if self.dates is not None:
            return f"{self.dates[0].isoformat()}..{self.dates[1].isoformat()}"
        assert self.daily is not None
        return "-".join(f"{m // 60:02}:{m % 60:02}" for m in self.daily)

    def applies_to(self, site: SiteId) -> bool:
        return not self.sites or site in self.sites

    def covers(self, local: dt.datetime) -> bool:
        """Whether the site-local time ``local`` is inside the window."""
        if self.dates is not None:
            return self.dates[0] <= local.date() <= self.dates[1]
        assert self.daily is not None
        start, end = self.daily
        minute = local.hour * 60 + local.minute
        return start <= minute < end if start < end else minute >= start or minute < end


@dataclass(frozen=True, slots=True)
class Resources:
    requests: Mapping[str, str] = field(default_factory=dict)
    limits: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Model:
    name: str
    version: str
    sha256: str
    url: str


@dataclass(frozen=True, slots=True)
class Override:
    """Config, env and resources for the sites named and/or the boxes of the GPU models named."""

    sites: tuple[SiteId, ...]
    gpu_models: tuple[str, ...]
    config: Mapping[str, str]
    env: Mapping[str, str]
    resources: Resources | None

    @property
    def names_sites(self) -> bool:
        """A site override (applied after every GPU-model-only one)."""
        return bool(self.sites)

    def applies(self, site: SiteId, gpu_model: str | None) -> bool:
        return (not self.sites or site in self.sites) and (not self.gpu_models or gpu_model in self.gpu_models)


@dataclass(frozen=True, slots=True)
class Autoscaling:
    min_replicas: int
    max_replicas: int
    cpu_utilization: int | None
    memory_utilization: int | None


@dataclass(frozen=True, slots=True)
class Canary:
    sites: tuple[SiteId, ...]
    cover_hardware: bool


@dataclass(frozen=True, slots=True)
class Strategy:
    canary: Canary
    waves: tuple[Wave, ...]
    max_in_flight: int
    soak_s: int
    # Wave numbers (1 = the first after the canary) that wait for a promotion.
    approval_before: tuple[int, ...]
    failure_sites: int
    failure_percent_of_wave: float
    running_percent: float
    health_tolerance_percent: float
    blackouts: tuple[Blackout, ...]


@dataclass(frozen=True, slots=True)
class Release:
    """A checked release: everything a rollout needs, parsed. ``warnings`` are problems that do not refuse it."""

    name: str
    app: AppName
    version: str
    # Container name -> image reference; the app's own container is named as the app.
    images: Mapping[str, str]
    model: Model | None
    config: Mapping[str, str]
    env: Mapping[str, str]
    resources: Resources
    overrides: tuple[Override, ...]
    strategy: Strategy
    rollback: bool
    source: str
    labels: Mapping[str, str] = field(default_factory=dict)
    warnings: tuple[Problem, ...] = ()
    # A HorizontalPodAutoscaler at central sites (``spec.autoscaling``); None: replicas as rendered.
    autoscaling: Autoscaling | None = None

    @property
    def pinned(self) -> bool:
        """Whether every image is pinned by digest."""
        return all(parse_image(image).digest is not None for image in self.images.values())

    def pin(self, digests: Mapping[str, str]) -> Release:
        """This release with the images of ``digests`` (container name -> ``sha256:...``) pinned; the rollout does
        this when it starts, so image, model and config go out as one unit."""
        images = dict(self.images)
        for container, digest in digests.items():
            ref = parse_image(images[container])
            images[container] = str(ImageRef(ref.name, ref.tag, digest))
        return replace(self, images=images)


# --- loading ----------------------------------------------------------------------------------------------

_FIELDS_DOC: Final = "docs/releases.md"
_CHOICES: Final[dict[str, tuple[str, ...]]] = {"app": APPS}


class _Checker:
    """Collects the problems of one manifest, each at its field's line."""

    def __init__(self, shown: str, document: Document, inventory: Inventory) -> None:
        self.shown = shown
        self.document = document
        self.inventory = inventory
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []
        self.gpu_models = sorted(
            {b.gpu.model for b in inventory.boxes.values() if b.gpu is not None},
        )

    def add(self, path: ManifestPath, reason: str, *, warning: bool = False) -> None:
        # Paths are spelled as in the manifest (camelCase fields, map keys as given).
        problem = Problem(self.shown, self.document.line(path), _dotted(path), reason)
        (self.warnings if warning else self.problems).append(problem)

    def sites(self, path: ManifestPath, sites: list[str]) -> tuple[SiteId, ...]:
        for i, site in enumerate(sites):
            if site not in self.inventory.sites:
                self.add(
                    (*path, i),
                    f"names site {site!r}, which the inventory has not" + _did_you_mean(site, self.inventory.sites),
                )
        return tuple(SiteId(s) for s in sites)

    def models(self, path: ManifestPath, models: list[str]) -> tuple[str, ...]:
        for i, model in enumerate(models):
            if model not in self.gpu_models:
                known = ", ".join(self.gpu_models) or "none"
                self.add(
                    (*path, i),
                    f"names GPU model {model!r}, which no box of the inventory has"
                    + (_did_you_mean(model, self.gpu_models) or f" (the fleet has: {known})"),
                )
        return tuple(models)

    def mapping(self, path: ManifestPath, values: dict[str, str], *, env: bool) -> dict[str, str]:
        for key in values:
            if env and not _ENV_NAME_RE.match(key):
                self.add((*path, key), f"{key!r} is no environment variable name: letters, digits, '_', '-' and '.'")
            elif env and key in MODEL_ENV.values():
                self.add((*path, key), f"{key} is set from spec.model; remove it here")
            elif not env and not _CONFIG_KEY_RE.match(key):
                self.add((*path, key), f"{key!r} is no ConfigMap key: letters, digits, '-', '_' and '.'")
        return dict(values)

    def resources(self, path: ManifestPath, spec: ResourcesSpec) -> Resources:
        for part, values in (("requests", spec.requests), ("limits", spec.limits)):
            for name, quantity in values.items():
                if not _QUANTITY_RE.match(quantity):
                    self.add((*path, part, name), f"{quantity!r} is no quantity (such as 250m, 2, 4Gi)")
        gpu_request, gpu_limit = spec.requests.get(GPU_RESOURCE), spec.limits.get(GPU_RESOURCE)
        if gpu_request is not None and gpu_limit is not None and gpu_request != gpu_limit:
            self.add(
                (*path, "requests", GPU_RESOURCE),
                f"{GPU_RESOURCE} is requested {gpu_request} but limited {gpu_limit}; Kubernetes needs them equal",
            )
        return Resources(dict(spec.requests), dict(spec.limits))


def _did_you_mean(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def image_field(container: str) -> str:
    """The field a container's image is named by in problems: ``spec.images['scan-upload']``."""
    return _dotted(("spec", "images", container))


def _dotted(path: ManifestPath) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", part):
            out += f".{part}" if out else part
        else:  # a map key such as nvidia.com/gpu
            out += f"[{part!r}]"
    return out


def _check_images(c: _Checker, spec: ReleaseSpec) -> None:
    for container, image in spec.images.items():
        path: ManifestPath = ("spec", "images", container)
        if not re.match(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", container):
            c.add(path, f"{container!r} is no container name: lower-case letters, digits and '-', at most 63")
        try:
            ref = parse_image(image)
        except ValueError as exc:
            c.add(path, str(exc))
            continue
        if ref.digest is None:
            c.add(path, f"{image!r} is given by tag only; it is pinned by digest when the rollout starts", warning=True)
        # A version that is no label value is refused as such; its tag cannot match it anyway.
        if container == spec.app and ref.tag != spec.version and _LABEL_VALUE_RE.match(spec.version):
            c.add(
                path,
                f"the app's image is tagged {ref.tag or 'with nothing'}, not the release's version {spec.version}; "
                "the boxes report the version from the tag, so tag the image with the version",
            )
    if spec.app not in spec.images:
        c.add(
            ("spec", "images"),
            f"no container is named {spec.app!r}; the app's own image must be under its name "
            f"(images: {{{spec.app}: registry.local:5000/edgefleet/{spec.app}:{spec.version}}})",
        )


def _check_model(c: _Checker, spec: ReleaseSpec) -> Model | None:
    if spec.app == "sorting-recognition" and spec.model is None:
        c.add(("spec",), "sorting-recognition ships its recognition model: add spec.model (name, version, sha256, url)")
        return None
    if spec.app != "sorting-recognition" and spec.model is not None:
        c.add(("spec", "model"), f"{spec.app} runs no recognition model; remove spec.model")
        return None
    if spec.model is None:
        return None
    model = spec.model
    if not re.match(r"^[0-9a-f]{64}$", model.sha256):
        c.add(("spec", "model", "sha256"), "must be the model file's SHA-256: 64 lower-case hex digits")
    if not re.match(r"^https?://[^\s/]+/\S*$", model.url):
        c.add(("spec", "model", "url"), f"{model.url!r} is no http(s) URL to download the model from")
    return Model(model.name, model.version, model.sha256, model.url)


def _check_strategy(c: _Checker, spec: StrategySpec) -> Strategy:
    base: ManifestPath = ("spec", "strategy")
    canary = c.sites((*base, "canary", "sites"), spec.canary.sites)
    for i, site in enumerate(canary):
        found = c.inventory.sites.get(site)
        if found is not None and found.kind != "transfer-center":
            c.add(
                (*base, "canary", "sites", i),
                f"site {site!r} is a {found.kind} site; a canary is a transfer center, where the boxes are",
            )
    waves: list[Wave] = []
    for i, given in enumerate(spec.waves):
        try:
            waves.append(parse_wave(str(given)))
        except ValueError as exc:
            c.add((*base, "waves", i), str(exc))
    if len(waves) == len(spec.waves) and (why := check_waves(waves)) is not None:
        c.add((*base, "waves"), why)
    soak = 0
    try:
        soak = parse_duration(str(spec.soak))
        if soak > SOAK_MAX_S:
            c.add((*base, "soak"), f"{spec.soak!r} is longer than a week; give a soak of at most 168h")
    except ValueError as exc:
        c.add((*base, "soak"), str(exc))
    for i, wave in enumerate(spec.approval_before):
        if spec.waves and wave > len(spec.waves):  # no waves is refused as such
            c.add(
                (*base, "approvalBefore", i),
                f"there is no wave {wave}: the waves after the canary are numbered 1 to {len(spec.waves)}",
            )
    blackouts = []
    for i, spec_b in enumerate(spec.blackouts):
        path: ManifestPath = (*base, "blackouts", i)
        sites = c.sites((*path, "sites"), spec_b.sites)
        if (spec_b.daily is None) == (spec_b.dates is None):
            c.add(
                path,
                "a blackout gives either daily: HH:MM-HH:MM or dates: YYYY-MM-DD..YYYY-MM-DD, not "
                + ("neither" if spec_b.daily is None else "both"),
            )
            continue
        try:
            if spec_b.daily is not None:
                blackouts.append(Blackout(spec_b.reason, daily=parse_daily(spec_b.daily), sites=sites))
            elif spec_b.dates is not None:
                blackouts.append(Blackout(spec_b.reason, dates=parse_dates(spec_b.dates), sites=sites))
        except ValueError as exc:
            c.add((*path, "daily" if spec_b.daily is not None else "dates"), str(exc))
    return Strategy(
        canary=Canary(canary, spec.canary.cover_hardware),
        waves=tuple(waves),
        max_in_flight=spec.max_in_flight,
        soak_s=soak,
        approval_before=tuple(spec.approval_before),
        failure_sites=spec.failure_threshold.sites,
        failure_percent_of_wave=spec.failure_threshold.percent_of_wave,
        running_percent=spec.gates.running_percent,
        health_tolerance_percent=spec.gates.health_tolerance_percent,
        blackouts=tuple(blackouts),
    )


# kube-apiserver refuses an autoscaler of 0 replicas unless a feature gate allows it; a utilization is a percent
# of the requests and may exceed 100, but not by this much in any sane setting.
_UTILIZATION_MAX: Final = 1000


def _check_autoscaling(c: _Checker, spec: ReleaseSpec) -> Autoscaling | None:
    given = spec.autoscaling
    if given is None:
        return None
    path: ManifestPath = ("spec", "autoscaling")
    if spec.app != "scan-upload":
        c.add(path, f"{spec.app} runs as a DaemonSet, one pod per GPU box; only a Deployment (scan-upload) scales")
    if given.min_replicas < 1:
        c.add((*path, "minReplicas"), f"{given.min_replicas} replicas: an autoscaler keeps at least 1")
    if given.max_replicas < max(given.min_replicas, 1):
        c.add((*path, "maxReplicas"), f"{given.max_replicas} is below minReplicas ({given.min_replicas})")
    if given.cpu_utilization is None and given.memory_utilization is None:
        c.add(path, "an autoscaler aims at something: give cpuUtilization and/or memoryUtilization (percent)")
    for name, value, resource in (
        ("cpuUtilization", given.cpu_utilization, "cpu"),
        ("memoryUtilization", given.memory_utilization, "memory"),
    ):
        if value is None:
            continue
        if not 1 <= value <= _UTILIZATION_MAX:
            c.add(
                (*path, name), f"{value} is no utilization target: a percent of the requests, 1 to {_UTILIZATION_MAX}"
            )
        elif resource not in spec.resources.requests and resource not in spec.resources.limits:
            c.add(
                (*path, name),
                f"a utilization is a share of the {resource} request: give resources.limits.{resource} (or requests)",
            )
    return Autoscaling(given.min_replicas, given.max_replicas, given.cpu_utilization, given.memory_utilization)


def _check(document: Document, manifest: ReleaseManifest, shown: str, inventory: Inventory) -> Release | _Checker:
    c = _Checker(shown, document, inventory)
    spec = manifest.spec
    if not _RELEASE_NAME_RE.match(manifest.metadata.name):
        c.add(
            ("metadata", "name"),
            f"{manifest.metadata.name!r} is no release name: lower-case letters, digits, '-' and '.', at most 63, "
            "starting and ending with a letter or digit (such as scan-upload-1.14.0)",
        )
    if not _LABEL_VALUE_RE.match(spec.version):
        c.add(
            ("spec", "version"),
            f"{spec.version!r} cannot be a label value (app.kubernetes.io/version): letters, digits, '-', '_' "
            "and '.', at most 63, starting and ending with a letter or digit",
        )
    _check_images(c, spec)
    model = _check_model(c, spec)
    config = c.mapping(("spec", "config"), spec.config, env=False)
    env = c.mapping(("spec", "env"), spec.env, env=True)
    resources = c.resources(("spec", "resources"), spec.resources)
    if spec.app == "sorting-recognition" and GPU_RESOURCE not in spec.resources.limits:
        c.add(
            ("spec", "resources"),
            f'sorting-recognition gets no GPU without {GPU_RESOURCE} in limits (such as {GPU_RESOURCE}: "1")',
            warning=True,
        )
    overrides = []
    for i, spec_o in enumerate(spec.overrides):
        path: ManifestPath = ("spec", "overrides", i)
        if not spec_o.sites and not spec_o.gpu_models:
            c.add(path, "an override names the sites or the GPU models it applies to (sites: [...], gpuModels: [...])")
        elif spec_o.gpu_models and spec.app != "sorting-recognition":
            c.add(
                (*path, "gpuModels"),
                f"{spec.app} runs on edge nodes, which have no GPU: this override applies to no box",
                warning=True,
            )
        overrides.append(
            Override(
                sites=c.sites((*path, "sites"), spec_o.sites),
                gpu_models=c.models((*path, "gpuModels"), spec_o.gpu_models),
                config=c.mapping((*path, "config"), spec_o.config, env=False),
                env=c.mapping((*path, "env"), spec_o.env, env=True),
                resources=None if spec_o.resources is None else c.resources((*path, "resources"), spec_o.resources),
            )
        )
    strategy = _check_strategy(c, spec.strategy)
    autoscaling = _check_autoscaling(c, spec)
    if c.problems:
        return c
    return Release(
        name=manifest.metadata.name,
        app=spec.app,
        version=spec.version,
        images=dict(spec.images),
        model=model,
        config=config,
        env=env,
        resources=resources,
        overrides=tuple(overrides),
        strategy=strategy,
        rollback=spec.rollback,
        source=shown,
        labels=dict(manifest.metadata.labels),
        warnings=tuple(c.warnings),
        autoscaling=autoscaling,
    )


def _load(documents: list[Document], shown: str, inventory: Inventory, problems: list[Problem]) -> Release | None:
    if not documents:
        if not problems:
            problems.append(Problem(shown, None, "", "holds no release manifest; see docs/releases.md"))
        return None
    if len(documents) > 1:
        problems.append(
            Problem(shown, documents[1].lines.get(()), "", "holds more than one document; give each release a file")
        )
        return None
    document = documents[0]
    if not check_kind(document, shown, API_VERSION, KIND, problems):
        return None
    manifest = convert(document, ReleaseManifest, shown, problems, choices=_CHOICES, fields_doc=_FIELDS_DOC)
    if manifest is None:
        last = problems[-1]
        if last.field.startswith(("spec.config", "spec.env", "spec.overrides")) and "Expected `str`" in last.reason:
            # YAML reads 0.62, 8 and true as numbers and booleans; config and env values are text.
            problems[-1] = replace(last, reason=last.reason + '; quote the value ("0.62")')
        return None
    checked = _check(document, manifest, shown, inventory)
    if isinstance(checked, _Checker):
        problems += checked.problems
        return None
    return checked


def load_release(path: Path, inventory: Inventory) -> Release:
    """The release in the file ``path``, checked against ``inventory``; raises ReleaseError listing every problem."""
    problems: list[Problem] = []
    release = _load(read_documents(path, problems), str(path), inventory, problems)
    if release is None:
        raise ReleaseError(problems)
    return release


def load_release_text(text: str, shown_name: str, inventory: Inventory) -> Release:
    """The release in ``text`` (named ``shown_name`` in problems: what an API request carried)."""
    problems: list[Problem] = []
    release = _load(parse_documents(text, shown_name, problems), shown_name, inventory, problems)
    if release is None:
        raise ReleaseError(problems)
    return release


def release_files(paths: list[Path]) -> list[Path]:
    """The release files of ``paths``: each file as given, each directory's ``*.yaml``/``*.yml`` (not below)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix in {".yaml", ".yml"} and p.is_file())
        else:
            files.append(path)
    return files


def load_releases(paths: list[Path], inventory: Inventory) -> list[Release]:
    """Every release of ``paths`` (files and directories); raises ReleaseError listing every problem of every
    file, and a release name given twice."""
    problems: list[Problem] = []
    releases: list[Release] = []
    files = release_files(paths)
    if not files:
        raise ReleaseError([Problem(", ".join(map(str, paths)), None, "", "holds no release manifests (*.yaml)")])
    for file in files:
        documents = read_documents(file, problems)
        release = _load(documents, str(file), inventory, problems)
        if release is None:
            continue
        other = next((r for r in releases if r.name == release.name), None)
        if other is not None:
            problems.append(
                Problem(
                    str(file),
                    documents[0].lines.get(("metadata", "name")),
                    "metadata.name",
                    f"release {release.name!r} is already defined in {other.source}",
                )
            )
            continue
        releases.append(release)
    if problems:
        raise ReleaseError(problems)
    return releases
