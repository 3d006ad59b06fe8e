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
        waves: ["10%", "50%", "100%"]        # after the canary; percentages of the sites left, or counts ("5")
        maxInFlight: 10                      # sites being changed at once
        soak: 10m                            # each wave's sites must pass their gates this long
        approvalBefore: [1]                  # waves (1 = the first after the canary) that wait for a promotion
        failureThreshold: {sites: 3, percentOfWave: 20}
        gates: {runningPercent: 90, healthTolerancePercent: 10}
        blackouts:                           # in each site's local time
          - {daily: "20:00-02:00", reason: sorting peak}
          - {dates: "2026-11-10..2026-11-12", reason: Double 11, sites: []}   # empty: every site
      rollback: false                        # true: this release may replace a newer one

This module holds the manifest's types (msgspec Structs, camelCase on the wire, like ``inventory``). Loading and
checking a file (``load_release``, with file, line, field and reason for every problem) lives here too; planning,
gates and rendering live in ``edgefleet.cloud.rollouts``.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal, get_args

import msgspec
from msgspec import Meta, Struct

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
    sha256: Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$")]
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
    waves: list[str] = msgspec.field(default_factory=lambda: ["10%", "50%", "100%"])
    max_in_flight: Annotated[int, Meta(ge=1)] = 10
    soak: str = "10m"
    approval_before: list[Annotated[int, Meta(ge=1)]] = []
    failure_threshold: FailureThresholdSpec = msgspec.field(default_factory=FailureThresholdSpec)
    gates: GatesSpec = msgspec.field(default_factory=GatesSpec)
    blackouts: list[BlackoutSpec] = []


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


class Metadata(_Manifest, kw_only=True):
    name: Id
    labels: dict[str, str] = {}


class ReleaseManifest(_Manifest, kw_only=True):
    api_version: str
    kind: str
    metadata: Metadata
    spec: ReleaseSpec
