"""The simulated side of the agent's three sample seams (``edgefleet.agent.sources``): host, GPUs and apps.

Each simulated box owns one of each. Readings follow a slow, mean-reverting random walk so charts look like a
working sorting line rather than noise, and every stream is seeded from the simulator's seed and the box id:
the same seed gives the same readings, sample for sample. The GPU probe takes the box's overheat fault as a
callable so that a fault's start and end need no bookkeeping here. Built by ``simulator.boxes``.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from edgefleet.agent.apps import DEFAULT_METASERVER_URL, PodList, apps_from_pods, limit_apps
from edgefleet.agent.throttle_reasons import HW_THERMAL_SLOWDOWN, SW_THERMAL_SLOWDOWN, decode_throttle_reasons
from edgefleet.inventory import Box
from edgefleet.messages import AppReport, AppState, GpuReport, GpuSample, HostSample

GIB: Final = 1024**3
NO_GPU_REASON: Final = "no GPU in this box"
APP_SOURCE: Final = "simulator"


@dataclass(frozen=True, slots=True)
class GpuModel:
    memory_bytes: int
    power_limit_w: float
    idle_power_w: float


# Board figures from the vendors' data sheets, rounded; a model not listed gets the generic one.
GPU_MODELS: Final[Mapping[str, GpuModel]] = {
    "NVIDIA T4": GpuModel(16 * GIB, 70.0, 10.0),
    "NVIDIA A2": GpuModel(16 * GIB, 60.0, 8.0),
    "NVIDIA L4": GpuModel(24 * GIB, 72.0, 12.0),
    "NVIDIA A10": GpuModel(24 * GIB, 150.0, 20.0),
}
GENERIC_GPU: Final = GpuModel(16 * GIB, 100.0, 15.0)

# An idle GPU sits near the room's temperature plus a few degrees; each % of load adds about half a degree.
GPU_IDLE_C: Final = 32.0
GPU_C_PER_PERCENT: Final = 0.45
# The temperatures from which a hot GPU shows NVML's thermal throttle reasons. The simulated GPU sets those bits in a
# mask and decodes it with the agent's own decoder, so its reasons are spelt as a real box's are.
SW_THERMAL_C: Final = 90.0
HW_THERMAL_C: Final = 95.0
# A corrected ECC error now and then is normal on a datacenter GPU; uncorrected ones are a fault of their own.
ECC_CORRECTED_PER_SAMPLE: Final = 0.002


@dataclass(frozen=True, slots=True)
class _HostShape:
    cores: int
    memory_bytes: int
    disk_bytes: int


HOST_SHAPES: Final[Mapping[str, _HostShape]] = {
    "gpu-box": _HostShape(32, 128 * GIB, 1920 * 10**9),
    "edge-node": _HostShape(8, 32 * GIB, 480 * 10**9),
    "cluster-node": _HostShape(64, 256 * GIB, 3840 * 10**9),
}

# The apps each role runs and the releases out in the fleet; each site runs one of them (a rollout midway).
APPS_BY_ROLE: Final[Mapping[str, tuple[str, ...]]] = {
    "gpu-box": ("sorting-recognition",),
    "edge-node": ("scan-upload",),
    "cluster-node": (),
}
RELEASES: Final[Mapping[str, tuple[str, ...]]] = {
    "sorting-recognition": ("3.4.2", "3.5.0"),
    "scan-upload": ("1.12.0", "1.13.1"),
}


def site_release(seed: int, site: str, app: str) -> str:
    """The release of ``app`` that ``site`` runs when the simulation starts (from the seed: the same every run)."""
    return stream(seed, site, "apps", app).choice(RELEASES[app])


def stream(seed: int, *parts: str) -> random.Random:
    """A random stream of its own for one purpose of one box; str seeds hash the same in every process."""
    return random.Random(":".join((str(seed), *parts)))


def _walk(value: float, mean: float, rng: random.Random, *, step: float, low: float, high: float) -> float:
    """One step of a mean-reverting random walk, kept within [low, high]."""
    value += rng.gauss(0.0, step) + 0.1 * (mean - value)
    return min(high, max(low, value))


class SimulatedHostProbe:
    """CPU, load, memory and disk of a box of the box's role."""

    def __init__(self, box: Box, *, seed: int) -> None:
        self._shape = HOST_SHAPES[box.role]
        self._rng = stream(seed, box.id, "host")
        self._cpu_mean = self._rng.uniform(20.0, 70.0)
        self._cpu = self._cpu_mean
        self._memory_mean = self._rng.uniform(0.35, 0.7)
        self._memory_used = self._memory_mean
        self._disk_used = self._rng.uniform(0.2, 0.6)
        load = self._cpu / 100.0 * self._shape.cores
        self._loads = [load, load, load]

    def sample(self) -> HostSample:
        rng = self._rng
        self._cpu = _walk(self._cpu, self._cpu_mean, rng, step=4.0, low=1.0, high=100.0)
        self._memory_used = _walk(self._memory_used, self._memory_mean, rng, step=0.01, low=0.05, high=0.98)
        # Logs and images fill the disk slowly; cleanup jobs free a little now and then.
        self._disk_used = min(0.99, max(0.05, self._disk_used + rng.uniform(-0.0004, 0.0005)))
        instant = self._cpu / 100.0 * self._shape.cores
        # The kernel's load averages are exponential means over 1, 5 and 15 minutes.
        self._loads = [
            old + (instant - old) * weight for old, weight in zip(self._loads, (0.3, 0.08, 0.03), strict=True)
        ]
        return HostSample(
            cpu_percent=round(self._cpu, 1),
            load1=round(self._loads[0], 2),
            load5=round(self._loads[1], 2),
            load15=round(self._loads[2], 2),
            memory_total_bytes=self._shape.memory_bytes,
            memory_available_bytes=int(self._shape.memory_bytes * (1.0 - self._memory_used)),
            disk_path="/",
            disk_total_bytes=self._shape.disk_bytes,
            disk_free_bytes=int(self._shape.disk_bytes * (1.0 - self._disk_used)),
        )


@dataclass(slots=True)
class _GpuState:
    index: int
    uuid: str
    utilization_mean: float
    utilization: float
    temperature: float
    ecc_corrected: int


class SimulatedGpuProbe:
    """The box's GPUs as its inventory entry says (model, count, driver); none for edge and cluster nodes.

    ``overheat`` returns, at each sample, the GPUs held at a fixed temperature by a fault: {index: degrees C}.
    """

    def __init__(self, box: Box, *, seed: int, overheat: Callable[[], Mapping[int, float]] | None = None) -> None:
        self._spec = box.gpu
        self._overheat = overheat
        self._rng = stream(seed, box.id, "gpu")
        self._model = GPU_MODELS.get(box.gpu.model, GENERIC_GPU) if box.gpu else GENERIC_GPU
        self._gpus: list[_GpuState] = []
        for index in range(box.gpu.count if box.gpu else 0):
            mean = self._rng.uniform(35.0, 85.0)
            self._gpus.append(
                _GpuState(
                    index=index,
                    uuid=f"GPU-{uuid.UUID(int=self._rng.getrandbits(128), version=4)}",
                    utilization_mean=mean,
                    utilization=mean,
                    temperature=GPU_IDLE_C + GPU_C_PER_PERCENT * mean,
                    ecc_corrected=self._rng.randrange(0, 5),
                )
            )

    def sample(self) -> GpuReport:
        if self._spec is None:
            return GpuReport(available=False, reason=NO_GPU_REASON)
        held = self._overheat() if self._overheat else {}
        return GpuReport(
            available=True,
            driver_version=self._spec.driver_version,
            gpus=[self._sample_one(gpu, held.get(gpu.index)) for gpu in self._gpus],
        )

    def _sample_one(self, gpu: _GpuState, held_c: float | None) -> GpuSample:
        rng = self._rng
        model = self._model
        gpu.utilization = _walk(gpu.utilization, gpu.utilization_mean, rng, step=5.0, low=0.0, high=100.0)
        target = GPU_IDLE_C + GPU_C_PER_PERCENT * gpu.utilization + rng.gauss(0.0, 0.5)
        # A heat sink lags the load: the temperature moves a third of the way to its target per sample.
        gpu.temperature += (target - gpu.temperature) / 3.0
        temperature = gpu.temperature if held_c is None else held_c
        if rng.random() < ECC_CORRECTED_PER_SAMPLE:
            gpu.ecc_corrected += 1
        throttle = 0
        if temperature >= SW_THERMAL_C:
            throttle |= SW_THERMAL_SLOWDOWN
        if temperature >= HW_THERMAL_C:
            throttle |= HW_THERMAL_SLOWDOWN
        power = model.idle_power_w + (model.power_limit_w - model.idle_power_w) * gpu.utilization / 100.0
        # Model weights stay loaded (about a quarter of the memory); batches take more under load.
        memory_used = int(model.memory_bytes * (0.25 + 0.5 * gpu.utilization / 100.0))
        return GpuSample(
            index=gpu.index,
            name=self._spec.model if self._spec else "",
            uuid=gpu.uuid,
            utilization_percent=round(gpu.utilization, 1),
            memory_used_bytes=memory_used,
            memory_total_bytes=model.memory_bytes,
            temperature_c=round(temperature, 1),
            power_w=round(min(power, model.power_limit_w), 1),
            throttle_reasons=decode_throttle_reasons(throttle),
            ecc_corrected_errors=gpu.ecc_corrected,
            ecc_uncorrected_errors=0,
        )


class SimulatedAppSource:
    """The apps of the box's role, at the release its site runs (chosen per site from the seed)."""

    def __init__(self, box: Box, *, seed: int) -> None:
        apps = [
            AppState(name=name, version=site_release(seed, box.site, name), state="running")
            for name in APPS_BY_ROLE[box.role]
        ]
        self._report = AppReport(source=APP_SOURCE, apps=apps)

    def read(self) -> AppReport:
        return self._report

    def states(self) -> AppReport:
        return self._report


# Where a simulated box on a simulated cluster reads its pods: edgecore's MetaServer on the box, as the agent's
# MetaServerAppSource does on a real KubeEdge box.
METASERVER_SOURCE: Final = f"metaserver:{DEFAULT_METASERVER_URL}"
METASERVER_DOWN: Final = (
    f"cannot reach the KubeEdge MetaServer at {DEFAULT_METASERVER_URL}: Connection refused; is edgecore running "
    "with metaServer enabled?"
)


class NodePodsAppSource:
    """The apps of a box whose node is in a simulated cluster: the pods that cluster runs on its node, read with the
    agent's own ``apps_from_pods``, so the agent's view and Kubernetes' agree unless a fault parts them.

    ``pods()`` gives the node's pods as its MetaServer serves them, or None while edgecore is down (the MetaServer
    with it): then the report carries the agent's own error for an unreachable MetaServer and no apps.
    ``figures(app)`` gives a running app's health figures (``simulator.figures.SimulatedFigures``)."""

    def __init__(
        self,
        pods: Callable[[], list[dict[str, Any]] | None],
        *,
        figures: Callable[[AppState], dict[str, float] | None] | None = None,
    ) -> None:
        self._pods = pods
        self._figures = figures

    def read(self) -> AppReport:
        return self._read(figures=True)

    def states(self) -> AppReport:
        return self._read(figures=False)

    def _read(self, *, figures: bool) -> AppReport:
        pods = self._pods()
        if pods is None:
            return AppReport(source=METASERVER_SOURCE, error=METASERVER_DOWN)
        listed = msgspec.convert({"kind": "PodList", "items": pods}, PodList)
        apps, error = limit_apps(apps_from_pods(listed))
        if figures and self._figures is not None:
            # What the agent would scrape from each running pod's /metrics (``simulator.figures``).
            apps = [msgspec.structs.replace(app, figures=self._figures(app)) for app in apps]
        return AppReport(source=METASERVER_SOURCE, error=error, apps=apps)
